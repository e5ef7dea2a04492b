"""scripts/recheck_fixed_point.py: its own code unpacker and the per-layer checks can fail."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from quantsurvey.compress.bit_pack import pack_codes
from quantsurvey.export import load_model
from quantsurvey.methods import StageContext, build_methods
from quantsurvey.models import create_model

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "recheck_fixed_point.py"
INFO = {"name": "resnet20", "num_classes": 10, "input_shape": [3, 32, 32], "params": {}}


def _script():
    spec = importlib.util.spec_from_file_location("recheck_fixed_point", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("bits", [1, 2, 3, 5, 8, 13, 16])
def test_its_own_unpacker_reads_what_the_framework_packs(bits):
    gen = torch.Generator().manual_seed(bits)
    codes = torch.randint(-2 ** (bits - 1), 2 ** (bits - 1), (37,), generator=gen)
    unpacked = _script().unpack(pack_codes(codes, bits), bits, 37)
    assert unpacked.tolist() == codes.tolist()


def test_the_layer_checks_pass_a_written_file_and_fail_a_wrong_one(tmp_path):
    gen = torch.Generator().manual_seed(3)
    batches = [torch.randn(8, 3, 32, 32, generator=gen) for _ in range(2)]
    ctx = StageContext(seed=0, run_dir=tmp_path, model_info=INFO, probe=lambda: batches[0],
                       train_batches=lambda n: batches[:n])
    model = create_model("resnet20", num_classes=10, input_shape=(3, 32, 32)).eval()
    (method,) = build_methods({"fixed_point": {"weight_bits": 3, "input_bits": 8}})
    method.before_training(model, ctx)
    method.after_training(model, ctx)
    script, qsdc = _script(), tmp_path / "model.qsdc"
    summary = {"config": {"compress": {"fixed_point": {"weight_bits": 3}}}}
    good = script.check_layers(qsdc, load_model(qsdc), summary)
    assert good["fixed_point_layers"] == 20 and set(good["bits"].values()) == {3}
    assert good["codes_in_range"] and good["blob_sizes_exact"]
    assert good["decoded_equals_code_x_step"] and good["bits_as_configured"]
    assert good["fixed_point_weights"] == sum(
        m.weight.numel() for m in model.modules() if isinstance(m, (torch.nn.Conv2d,
                                                                    torch.nn.Linear)))
    summary["config"]["compress"]["fixed_point"]["weight_bits"] = 4
    assert not script.check_layers(qsdc, load_model(qsdc), summary)["bits_as_configured"]
    moved = load_model(qsdc)
    with torch.no_grad():
        moved.fc.weight[0, 0] += 1e-3  # a decoder that disagrees with the file by one weight
    assert not script.check_layers(qsdc, moved, summary)["decoded_equals_code_x_step"]
    summary["config"]["compress"]["fixed_point"]["weight_bits"] = "float"  # but the file has some
    assert not script.check_layers(qsdc, load_model(qsdc), summary)["bits_as_configured"]


def test_the_input_watch_checks_signedness_against_the_config_and_the_levels(tmp_path):
    """act_signed auto: unsigned exactly where the raw input never goes below 0 (every ResNet-20
    layer input but the first conv's, which sees the images); a config of signed inputs, or an
    output off the quantizer's levels, fails."""
    gen = torch.Generator().manual_seed(4)
    batches = [torch.randn(8, 3, 32, 32, generator=gen) for _ in range(2)]
    ctx = StageContext(seed=0, run_dir=tmp_path, model_info=INFO, probe=lambda: batches[0],
                       train_batches=lambda n: batches[:n])
    model = create_model("resnet20", num_classes=10, input_shape=(3, 32, 32)).eval()
    (method,) = build_methods({"fixed_point": {"weight_bits": 4, "input_bits": 3,
                                               "act_signed": "auto"}})
    method.before_training(model, ctx)
    method.after_training(model, ctx)
    script = _script()

    def watched(configured, tamper=None):
        decoded = load_model(tmp_path / "model.qsdc").eval()
        watch = script.InputWatch(decoded)
        if tamper:
            q = watch.quantizers[tamper]
            plain = q.forward
            q.forward = lambda x: plain(x) + 0.3 * q.step  # between two levels
        with torch.no_grad():
            for x in batches:
                decoded(x)
        return watch.report(configured)

    auto = watched({"act_signed": "auto"})
    assert auto["input_quantizers"] == 20
    assert "conv1" not in auto["unsigned_inputs"] and len(auto["unsigned_inputs"]) == 19
    assert auto["signedness_as_configured"] and auto["input_levels_in_range"]
    assert not watched({})["signedness_as_configured"]  # the default is signed everywhere
    assert not watched({"act_signed": False})["signedness_as_configured"]
    assert not watched({"act_signed": "auto"}, tamper="fc")["input_levels_in_range"]


def test_the_configured_section_is_fixed_point_or_the_allocated_one():
    script = _script()
    allocated = {"config": {"compress": {"fixed_point": None,
                                         "fixed_point_allocated": {"act_signed": "auto"}}}}
    assert script.fixed_point_section(allocated) == {"act_signed": "auto"}
    assert script.fixed_point_section({"config": {"compress": {"fixed_point": {"weight_bits": 3}}}}
                                      ) == {"weight_bits": 3}
    assert script.fixed_point_section({}) == {}


def test_only_selects_by_glob_and_the_record_keeps_its_other_rows():
    spec = importlib.util.spec_from_file_location("recheck_binary",
                                                  SCRIPT.parent / "recheck_binary.py")
    binary = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(binary)
    runs = binary.REPO / "results" / "runs"
    files = [runs / "lin2016_fixed_point" / "resnet20_cifar10" / stage / "seed=0.qsdc"
             for stage in ("finetune_w2_a4", "finetune_w2_a8", "finetune_w16_a4")]
    assert binary.selected(files, None) == files
    assert binary.selected(files, ["lin2016_fixed_point/*/finetune_w*_a4/*"]) == \
        [files[0], files[2]]
    assert binary.selected(files, ["*/finetune_w2_a8/*", "*/finetune_w16_*"]) == files[1:]
    assert binary.selected(files, ["finetune_w2_a4"]) == []  # a glob on the whole path
    old = [{"file": "b", "agrees": True}, {"file": "d", "agrees": True}]
    new = [{"file": "d", "agrees": False}, {"file": "a", "agrees": True}]
    assert binary.merged(old, new) == [{"file": "a", "agrees": True},
                                       {"file": "b", "agrees": True},
                                       {"file": "d", "agrees": False}]


def test_only_that_matches_no_file_is_an_error_and_writes_no_record(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "cifar10", "--only", "lin2016/typo/*",
                           "--out", str(tmp_path / "rechecks")], capture_output=True, text=True)
    assert done.returncode != 0
    assert "--only lin2016/typo/* matches no seed=*.qsdc file" in done.stderr
    assert not (tmp_path / "rechecks").exists()

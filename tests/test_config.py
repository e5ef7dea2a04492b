"""Every experiment composes and validates; bad keys and values stop a run with one message."""

from __future__ import annotations

import subprocess
import sys

import pytest

from quantsurvey.config import validate_config
from quantsurvey.errors import ConfigError
from tests.conftest import EXPERIMENTS, compose_cfg


def test_experiments_exist():
    assert "han2015_pruning/lenet300_100_mnist" in EXPERIMENTS


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_validates(experiment):
    rc = validate_config(compose_cfg([f"experiment={experiment}"]))
    paper, setting = experiment.split("/")
    assert rc.paper == paper  # the key names the folder and the file
    if rc.setting != setting:  # a variant (<setting>_<variant>.yaml), filed under its setting
        import yaml

        from tests.conftest import REPO

        doc = yaml.safe_load((REPO / "conf" / "experiment" / f"{experiment}.yaml").read_text())
        assert setting.startswith(f"{rc.setting}_"), (rc.setting, setting)
        assert doc["defaults"][0] == f"{paper}/{rc.setting}", \
            f"a variant's defaults list its setting's experiment first: {doc['defaults']}"


def test_default_is_lenet300_float():
    rc = validate_config(compose_cfg([]))
    assert (rc.paper, rc.setting, rc.model.name, rc.data.name) == (
        "han2015_pruning", "lenet300_100_mnist", "lenet300_100", "mnist")


@pytest.mark.parametrize("override, message", [
    ("+modle.name=lenet5", "unknown config key 'modle'"),
    ("+data.batchsize=3", "Did you mean 'data.batch_size'?"),
    ("optim.lr=0", "optim.lr=0.0 must be > 0"),
    ("optim.lr=-1e-3", "optim.lr=-0.001 must be > 0"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0 must be > 0"),
    ("model.name=lenet6", "model.name='lenet6' is not allowed; choose one of:"),
    ("data.name=mnst", "Did you mean 'mnist'?"),
    ("optim.name=rmsprop", "optim.name='rmsprop' is not allowed"),
    ("sched.name=cosin", "Did you mean 'cosine'?"),
    ("optim.lr=fast", "'optim.lr'"),
    ("seed=-1", "seed=-1 must be >= 0"),
    ("trainer.strategy=fsdp", "trainer.strategy='fsdp' is not allowed; choose one of: auto, ddp"),
    ("trainer.num_nodes=2", "trainer.num_nodes=2 needs trainer.strategy=ddp"),
    ("trainer.num_nodes=0", "trainer.num_nodes=0 must be > 0"),
])
def test_bad_config_names_the_key(override, message):
    with pytest.raises(ConfigError) as info:
        validate_config(compose_cfg([override]))
    assert message in str(info.value)


def test_allowed_values_are_listed():
    with pytest.raises(ConfigError) as info:
        validate_config(compose_cfg(["data.name=imagenette"]))
    for name in ("mnist", "cifar10", "svhn", "imagenet", "synthetic"):
        assert name in str(info.value)


def test_cli_bad_value_exits_nonzero_with_one_message_and_writes_nothing(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "quantsurvey.cli", "optim.lr=0",
         f"paths.output_dir={tmp_path}", "data.download=false"],
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert out.stderr.startswith("quantsurvey: error: ")
    assert "optim.lr=0.0 must be > 0." in out.stderr and len(out.stderr.splitlines()) == 1
    assert "Traceback" not in out.stderr
    assert not list(tmp_path.rglob("summary.json")) and not list(tmp_path.rglob("*.ckpt"))


def test_cli_typo_in_key_exits_2_with_the_documented_message(tmp_path):
    """README: a typo such as `optim.lrr=0.1` stops the run with one message naming the key,
    the allowed keys and a close match, and exits with status 2 (Hydra's own error would exit
    with 1 and a different message)."""
    out = subprocess.run([sys.executable, "-m", "quantsurvey.cli", "optim.lrr=0.1",
                          f"paths.output_dir={tmp_path / 'out'}"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    (line,) = out.stderr.splitlines()  # one message
    assert line.startswith("quantsurvey: error: unknown config key 'optim.lrr'; allowed keys "
                           "under 'optim': ")
    assert line.endswith(". Did you mean 'optim.lr'?")
    allowed = line.split("under 'optim': ")[1].split(". Did you mean")[0].split(", ")
    assert {"lr", "momentum", "weight_decay", "name"} <= set(allowed) and "lrr" not in allowed
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert not (tmp_path / "out").exists()  # nothing written, not even the run directory


@pytest.mark.parametrize("trainer, reportable", [("ddp", True), ("gpu", True), ("smoke", False)])
def test_choosing_where_a_run_computes_keeps_it_reportable(trainer, reportable):
    """trainer=gpu / trainer=ddp change where a run computes, not its recipe (the global batch
    stays data.batch_size); trainer=smoke cuts its epochs."""
    from quantsurvey.cli import apply_overrides_policy

    overrides = [f"trainer={trainer}", "trainer.accelerator=cpu"]
    cfg = apply_overrides_policy(compose_cfg(overrides), overrides)
    assert (cfg.get("report_reason") is None) == reportable
    assert (cfg.budget == "custom") != reportable


def test_every_committed_run_has_the_architecture_its_settings_config_composes():
    """A setting names one network: the committed 3×4096 BNN rows were once filed under a config
    whose width was 2048 (`model.params.width=4096` on the command line), and the 2048 paper
    figure sat beside them. Every run summary in results/runs/ must have the model (name and
    parameters) and data set that `experiment=<paper>/<setting>` composes today."""
    import json

    from omegaconf import OmegaConf

    from tests.conftest import REPO

    composed, checked, wrong = {}, 0, []
    for path in sorted((REPO / "results" / "runs").glob("*/*/*/seed=*.json")):
        s = json.loads(path.read_text())
        if "model" not in s.get("config", {}):  # the storage-only re-encodings: no network
            continue
        key = f"{s['paper']}/{s['setting']}"
        assert key in EXPERIMENTS, f"{path}: no config conf/experiment/{key}.yaml"
        if key not in composed:
            cfg = compose_cfg([f"experiment={key}"])
            composed[key] = (OmegaConf.to_container(cfg.model, resolve=True), cfg.data.name)
        model, data = composed[key]
        run = s["config"]["model"]
        checked += 1
        if (run["name"], run.get("params"), s["config"]["data"]["name"]) != \
                (model["name"], model.get("params"), data):
            wrong.append(f"{path.relative_to(REPO)}: {run['name']} {run.get('params')} on "
                         f"{s['config']['data']['name']}, the config: {model['name']} "
                         f"{model.get('params')} on {data}")
    assert checked > 200 and not wrong, "\n".join(wrong)


def test_every_paper_figure_sits_beside_a_setting_a_config_composes():
    """A paper's figure in experiments/<paper>/reported.yaml is shown beside our rows of the
    same setting: under a setting name no config composes (XNOR-Net's `bn_alexnet_imagenet`,
    while its config composes `alexnet_xnor_imagenet`) it could never have a row beside it.
    Every reported setting is `experiment=<paper>/<setting>`, with the model and data set the
    row names."""
    import yaml

    from tests.conftest import REPO

    rows = [(doc["paper"], row) for path in sorted((REPO / "experiments").glob("*/reported.yaml"))
            for doc in [yaml.safe_load(path.read_text())] for row in doc["rows"]]
    assert len(rows) >= 40
    composed, wrong = {}, []
    for paper, row in rows:
        key = f"{paper}/{row['setting']}"
        if key not in EXPERIMENTS:
            wrong.append(f"{key}: reported, but no conf/experiment/{key}.yaml")
            continue
        if key not in composed:
            cfg = compose_cfg([f"experiment={key}"])
            composed[key] = (cfg.model.name, cfg.data.name)
        if composed[key] != (row["model"], row["dataset"]):
            wrong.append(f"{key}: reported as {row['model']} on {row['dataset']}, the config "
                         f"composes {composed[key][0]} on {composed[key][1]}")
    assert not wrong, "\n".join(sorted(set(wrong)))


def test_anwar_resnet20_mix_is_what_the_committed_sensitivity_chooses():
    """The `*_mix3` stages' per-layer weight bits are scripts/anwar_bit_mix.py's choice from the
    committed seed-0 sensitivity record (validation errors, storage of uniform 3-bit weights):
    a changed record, model or rule without a changed config fails here."""
    import json

    from quantsurvey.compress.sensitivity_allocation import sensitivity_bits
    from quantsurvey.models import create_model
    from quantsurvey.nn.layers import weight_layers
    from quantsurvey.pipeline import stage_configs
    from quantsurvey.provenance import REPO_ROOT

    record = json.loads((REPO_ROOT / "results" / "anwar2015_fixed_point" /
                         "sensitivity_resnet20_cifar10_seed0.json").read_text())
    errors: dict = {}
    for row in record["rows"]:
        errors.setdefault(row["layer"], {})[row["bits"]] = row["val_err"]
    model = create_model("resnet20", num_classes=10, input_shape=(3, 32, 32))
    sizes = {name: m.weight.numel() for name, m in weight_layers(model).items()}
    chosen = sensitivity_bits(errors, sizes, 3 * sum(sizes.values()))
    assert sum(sizes[n] * b for n, b in chosen.items()) <= 3 * sum(sizes.values())
    stages = {name: merged for name, merged, _ in stage_configs(
        compose_cfg(["experiment=anwar2015_fixed_point/resnet20_cifar10_mix3"]))}
    for stage in ("direct_mix3", "retrain_mix3"):
        assert dict(stages[stage].compress.fixed_point.weight_bits) == chosen, stage

"""The fixed-point methods on the seam: calibration statistics, steps from the rules, the packed
file's round-trip with activation quantizers, Lin et al.'s allocation, a fine-tuning run, the
grid stage names, and the bad inputs."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from quantsurvey.compress.container import read_container
from quantsurvey.compress.optimal_quantizer import optimal_step
from quantsurvey.errors import ConfigError
from quantsurvey.export import load_model
from quantsurvey.methods import StageContext, build_methods
from quantsurvey.models import create_model
from quantsurvey.nn.calibration import collect_statistics
from quantsurvey.nn.fixed_point import FixedPointWeight
from quantsurvey.nn.quant import find_transform, input_quantizer, output_quantizer
from quantsurvey.pipeline import stage_configs
from quantsurvey.train import train
from tests.conftest import compose_cfg

INFO = {"name": "resnet20", "num_classes": 10, "input_shape": [3, 32, 32], "params": {}}


def _ctx(tmp_path, seed=0):
    gen = torch.Generator().manual_seed(seed + 11)
    batches = [torch.randn(16, 3, 32, 32, generator=gen) for _ in range(4)]
    probe = torch.randn(8, 3, 32, 32, generator=gen)
    return StageContext(seed=seed, run_dir=tmp_path, model_info=INFO, probe=lambda: probe,
                        train_batches=lambda n: batches[:n])


def _trained_resnet():
    model = create_model("resnet20", num_classes=10, input_shape=(3, 32, 32))
    with torch.no_grad():  # batch-norm statistics of a 'trained' model
        model.train()(torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(1)))
    return model.eval()


def test_calibration_records_each_layers_tensors_and_changes_nothing():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    stats = collect_statistics(model, [x[:3], x[3:]], bins=8)
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    first = stats["0"]["input"]
    assert first.count == 20 and first.mean == pytest.approx(x.mean().item(), abs=1e-6)
    assert first.std == pytest.approx(x.std(unbiased=False).item(), rel=1e-5)
    assert first.max_abs == pytest.approx(x.abs().max().item())
    hidden = model[1](model[0](x))
    assert stats["2"]["input"].max_abs == pytest.approx(hidden.abs().max().item())
    assert stats["2"]["output"].max_abs == pytest.approx(model(x).abs().max().item(), rel=1e-6)
    assert sum(first.histogram) == 20 and len(first.histogram) == 8
    assert stats["0"]["weight"].std == pytest.approx(model[0].weight.std(unbiased=False).item(),
                                                     rel=1e-5)
    with pytest.raises(ValueError, match="at least one batch"):
        collect_statistics(model, [])


def test_sqnr_steps_are_sigma_times_the_optimal_step_rounded_to_a_power_of_two(tmp_path):
    model = _trained_resnet()
    (m,) = build_methods({"fixed_point": {"weight_bits": 4, "input_bits": {"fc": 6}}})
    info = m.before_training(model, _ctx(tmp_path))["fixed_point_layers"]
    w = model.layers[0].conv1.parametrizations.weight.original.detach()
    s = w.double().std(unbiased=False).item() * optimal_step(4, "gaussian", True)
    assert info["layers.0.conv1"]["weight"] == {"bits": 4, "step": 2.0 ** -round(-math.log2(s))}
    fc = info["fc"]["input"]
    assert fc["step"] == 2.0 ** -round(-math.log2(fc["std"] * optimal_step(6, "gaussian", True)))
    assert "input" not in info["conv1"]  # only the named layer's input is quantized
    assert not (tmp_path / "calibration.json").exists()  # nothing written before the export
    m.after_training(model, _ctx(tmp_path))
    calib = json.loads((tmp_path / "calibration.json").read_text())
    assert calib["fc"]["input"]["std"] == pytest.approx(fc["std"])


def test_auto_signed_activations_are_unsigned_after_relus_with_the_half_range_step(tmp_path):
    model = _trained_resnet()
    (m,) = build_methods({"fixed_point": {"weight_bits": "float", "input_bits": 4,
                                          "act_signed": "auto"}})
    info = m.before_training(model, _ctx(tmp_path))["fixed_point_layers"]
    # conv1 sees the (signed) image; every other layer a ReLU's output (or its average)
    assert info["conv1"]["input"]["signed"] is True
    unsigned = [n for n, e in info.items() if not e["input"]["signed"]]
    assert len(unsigned) == len(info) - 1 and "fc" in unsigned
    calib = m.calibration["fc"]["input"]
    assert calib["min"] >= 0
    sigma = math.sqrt(2 * (calib["std"] ** 2 + calib["mean"] ** 2))
    step = sigma * optimal_step(5, "gaussian", True)  # the (4 + 1)-bit signed quantizer's
    assert info["fc"]["input"]["step"] == 2.0 ** -round(-math.log2(step))
    fc = dict(model.named_modules())["fc"]
    codes = input_quantizer(fc).codes(torch.tensor([-1.0, 0.0, 1e9]))
    assert codes.tolist() == [0, 0, 15]  # 4 unsigned bits: 0 … 15
    signed, = build_methods({"fixed_point": {"weight_bits": "float", "input_bits": 4}})
    again = _trained_resnet()
    plain = signed.before_training(again, _ctx(tmp_path / "s"))["fixed_point_layers"]
    assert all(e["input"]["signed"] for e in plain.values())  # the default: signed, as before


@pytest.mark.parametrize("section", [
    {"weight_bits": 4, "input_bits": 4, "act_signed": "auto"},
    {"weight_bits": 3, "input_bits": 8, "output_bits": {"fc": 8}},
    {"weight_bits": {"conv": 2, "fc": "float"}, "weight_step": "l2", "power_of_two": False,
     "zero_level": False},
])
def test_the_packed_file_round_trips_with_its_activation_quantizers(tmp_path, section):
    model, ctx = _trained_resnet(), _ctx(tmp_path)
    (m,) = build_methods({"fixed_point": section})
    m.before_training(model, ctx)
    model.eval()
    expected = model(ctx.probe())
    decoded, info, metrics = m.after_training(model, ctx)
    decoded_again = load_model(tmp_path / "model.qsdc").eval()
    assert torch.equal(decoded_again(ctx.probe()), expected)
    fc = dict(decoded_again.named_modules())["fc"]
    assert (output_quantizer(fc) is not None) == ("output_bits" in section)
    assert (input_quantizer(fc) is not None) == ("input_bits" in section)
    for name, row in info["encoded"]["layers"].items():
        bits = row["bits"]
        assert row["stored_bytes"] == math.ceil(row["params"] * bits / 8) + 4, name
        weight = dict(decoded_again.named_modules())[name].weight
        assert len(weight.unique()) <= 2 ** bits
    quantized = [n for n, mod in model.named_modules() if find_transform(mod, FixedPointWeight)]
    assert sorted(info["encoded"]["layers"]) == sorted(quantized)
    assert metrics["compress/size_bytes"] == (tmp_path / "model.qsdc").stat().st_size
    header = read_container(tmp_path / "model.qsdc")[0]["activations"]
    flags = {q.get("signed", True) for layer in header.values() for q in layer.values()}
    quantized_acts = "input_bits" in section or "output_bits" in section
    assert flags == ({True, False} if section.get("act_signed") == "auto"
                     else {True} if quantized_acts else set())


def test_allocation_gives_the_biggest_layer_the_anchor_and_small_ones_more():
    model = _trained_resnet()
    (m,) = build_methods({"fixed_point_allocated": {"anchor_bits": 3, "kappa": 6.02}})
    bits = m.weight_bits(model)
    sizes = {n: mod.weight.numel() for n, mod in model.named_modules()
             if isinstance(mod, nn.Conv2d | nn.Linear)}
    biggest = max(sizes, key=sizes.get)
    assert bits[biggest] == 3
    for a in sizes:
        for b in sizes:
            if sizes[a] < sizes[b]:
                assert bits[a] >= bits[b]
    assert bits["conv1"] == math.floor(3 + 10 / 6.02 * math.log10(sizes[biggest] / 432) + 0.5)


@pytest.mark.parametrize("section,needle", [
    ({"weight_bits": 0}, "weight_bits=0 is not a bit-width: use an integer from 1 to 32"),
    ({"weight_bits": 33}, "weight_bits=33 is not a bit-width"),
    ({"input_bits": {"fc": 40}}, "input_bits.fc=40 is not a bit-width"),
    ({"weight_bits": "eight"}, "weight_bits='eight' is not a bit-width"),
    ({"calibration_batches": 0}, "calibration_batches=0 must be an integer ≥ 1"),
    ({"act_step": "l2"}, "act_step='l2' is not allowed; choose one of: sqnr, max"),
    ({"rounding": "up"}, "rounding='up' is not allowed"),
    ({"act_signed": "maybe"}, "act_signed='maybe': choose true, false or auto"),
    ({"weightbits": 3}, "Did you mean 'compress.fixed_point.weight_bits'?"),
])
def test_bad_fixed_point_configs_are_one_message(section, needle):
    with pytest.raises(ConfigError, match="compress.fixed_point") as err:
        build_methods({"fixed_point": section})
    assert needle in str(err.value)


def test_an_activation_bit_width_for_a_layer_that_is_not_there_is_refused():
    (m,) = build_methods({"fixed_point": {"input_bits": {"bn1": 8}}})
    with pytest.raises(ConfigError, match="compress.fixed_point.input_bits: 'bn1' is not a "
                                          "layer of this model"):
        m.check(_trained_resnet())


FP_RUN = ["data=synthetic", "model=lenet5", "trainer=smoke", "trainer.max_epochs=2",
          "trainer.limit_train_batches=3", "~pipeline", "seed=3"]


def test_a_bad_bit_width_stops_the_run_before_anything_is_written(tmp_path):
    with pytest.raises(ConfigError, match="weight_bits=64 is not a bit-width"):
        train(compose_cfg([*FP_RUN, f"paths.output_dir={tmp_path}",
                           "+compress.fixed_point.weight_bits=64"]), tmp_path / "run")
    assert not (tmp_path / "run" / "summary.json").exists()


def test_fine_tuning_trains_shadow_weights_and_stochastic_rounding_repeats(tmp_path):
    """Two identical runs with stochastic rounding give identical metrics (seeded draws), the
    latent weights moved, and the tested model is the decoded b-bit file."""
    args = [*FP_RUN, "+compress.fixed_point.weight_bits=4", "+compress.fixed_point.input_bits=8",
            "+compress.fixed_point.rounding=stochastic",
            "+compress.fixed_point.calibration_batches=2"]
    first = train(compose_cfg([*args, f"paths.output_dir={tmp_path}"]), tmp_path / "a")
    second = train(compose_cfg([*args, f"paths.output_dir={tmp_path}"]), tmp_path / "b")
    assert first == second
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["compression"]["encoded"]["identical_outputs"] is True
    assert first["compress/bits_per_weight"] == 4.0
    decoded = load_model(tmp_path / "a" / "model.qsdc")
    for name, mod in decoded.named_modules():
        if isinstance(mod, nn.Conv2d | nn.Linear):
            step = summary["compression"]["fixed_point_layers"][name]["weight"]["step"]
            codes = mod.weight / step
            assert torch.equal(codes, codes.round()) and codes.abs().max() <= 8


def test_grid_points_get_their_own_stage_directories():
    cfgs = [compose_cfg(["experiment=anwar2015_fixed_point/lenet5_mnist",
                         f"compress.fixed_point.weight_bits={b}",
                         f"compress.fixed_point.input_bits={a}"])
            for b, a in ((2, 8), (4, "float"))]
    names = [[rc.name for _, _, rc in stage_configs(c)] for c in cfgs]
    assert names == [["float", "direct_w2_a8", "retrain_w2_a8"],
                     ["float", "direct_w4_afloat", "retrain_w4_afloat"]]
    float_rc = stage_configs(cfgs[0])[0][2]
    assert float_rc.paper == "han2015_pruning" and not float_rc.compress.get("fixed_point")


def test_sweeping_a_declared_grid_axis_stays_reportable_and_other_keys_do_not():
    from quantsurvey.cli import apply_overrides_policy

    axis = ["compress.fixed_point.weight_bits=2"]
    cfg = apply_overrides_policy(compose_cfg(["experiment=anwar2015_fixed_point/lenet5_mnist",
                                              *axis]), axis)
    assert not cfg.get("report_reason") and cfg.budget == "cpu-20ep"
    other = ["compress.fixed_point.weight_step=max"]
    cfg = apply_overrides_policy(compose_cfg(["experiment=anwar2015_fixed_point/lenet5_mnist",
                                              *other]), other)
    assert "compress.fixed_point.weight_step" in cfg.report_reason and cfg.budget == "custom"


def test_tensor_statistics_by_hand():
    from quantsurvey.nn.calibration import BINS, TensorStats

    empty = TensorStats()
    assert empty.as_dict() == {"mean": 0.0, "std": 0.0, "max_abs": 0.0, "min": math.inf,
                               "count": 0, "histogram": []}
    one = TensorStats()
    one.add_moments(torch.tensor([3.0]))
    assert (one.mean, one.std, one.max_abs, one.minimum) == (3.0, 0.0, 3.0, 3.0)
    flat = TensorStats()  # E[x²] − E[x]² rounds to −1.7e-18 here: clamped, not complex
    flat.add_moments(torch.full((3,), 0.1, dtype=torch.float64))
    assert flat.std == 0.0
    stats = TensorStats()
    x = torch.tensor([-0.5, 0.1, 0.2, 0.3])  # mean 0.025
    stats.add_moments(x)
    assert stats.std == pytest.approx(math.sqrt((0.25 + 0.01 + 0.04 + 0.09) / 4 - 0.025 ** 2))
    stats.add_histogram(x, 4)  # over ±max |x| = ±0.5 (not the data's own range −0.5 … 0.3):
    assert stats.histogram == [1, 0, 2, 1]  # edges −0.5, −0.25, 0, 0.25, 0.5
    stats.add_histogram(x, 4)  # a second batch adds its counts
    assert stats.histogram == [2, 0, 4, 2]
    model = nn.Sequential(nn.Linear(3, 2))
    recorded = collect_statistics(model, [torch.randn(5, 3)])["0"]
    assert len(recorded["weight"].histogram) == BINS == 128  # the records' format
    assert sum(recorded["input"].histogram) == 15 and sum(recorded["output"].histogram) == 10


def test_a_quantizer_prints_its_format_and_whether_it_is_unsigned():
    """What `print(model)` shows of a fixed-point layer (an unsigned one after a ReLU)."""
    from quantsurvey.nn.fixed_point import FixedPointQuantizer

    assert repr(FixedPointQuantizer(4, 0.25, True, signed=False)) == \
        "FixedPointQuantizer(bits=4, step=0.25, zero_level=True, rounding=nearest, unsigned)"
    assert repr(FixedPointQuantizer(8, 0.125, False, rounding="stochastic")) == \
        "FixedPointQuantizer(bits=8, step=0.125, zero_level=False, rounding=stochastic)"


def test_stochastic_rounding_draws_anew_each_forward_and_no_two_seeds_share_a_draw():
    """Each training forward draws fresh noise from (seed, forwards so far): three forwards of
    seeds 0 and 1 give six different roundings, a new layer with the same seed repeats them,
    evaluation rounds to nearest without drawing, and so does training with 'nearest'."""
    w = torch.full((4000,), 0.5 * 0.25 + 0.25)  # halfway between the levels 0.25 and 0.5

    def roundings(seed):
        layer = FixedPointWeight(4, 0.25, rounding="stochastic", seed=seed).train()
        return [tuple(layer(w).tolist()) for _ in range(3)], layer

    draws0, layer0 = roundings(0)
    draws1, _ = roundings(1)
    assert len(set(draws0 + draws1)) == 6  # no draw repeats, within or across seeds
    assert roundings(0)[0] == draws0
    assert int(layer0.draws) == 3
    assert layer0.eval()(w).tolist() == [0.5] * 4000  # to nearest (1.5 steps → 2), no draw
    assert int(layer0.draws) == 3
    nearest = FixedPointWeight(4, 0.25, seed=0).train()  # training mode, round to nearest
    assert nearest(w).tolist() == [0.5] * 4000 and int(nearest.draws) == 0
    named = "".join(["stoch", "astic"])  # a name read from a config: equal, not identical
    assert FixedPointWeight(4, 0.25, rounding=named, seed=0).train()(w).tolist() == \
        list(draws0[0])

"""Trained ternary quantization (Zhu et al. 2017) and the fixed-scale ablation: value sets,
threshold, the paper's gradients (with the sign of ∂L/∂W_n corrected), the 2-bit file's
round-trip, and the bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from quantsurvey.compress.ternary_pack import pack_ternary, unpack_ternary
from quantsurvey.errors import CheckpointError, ConfigError
from quantsurvey.export import load_model
from quantsurvey.methods import StageContext, build_methods
from quantsurvey.models import create_model
from quantsurvey.nn.ternary import (
    FixedScaleTernary,
    TrainedTernary,
    initial_scales,
    kept_mean_abs,
    ternary_codes,
    trained_ternary,
)
from quantsurvey.stages import load_stage
from quantsurvey.train import train
from tests.conftest import compose_cfg

W = torch.tensor([0.5, -0.02, 0.04, -1.0, 0.06, -0.05, 0.05, -0.3])


def test_threshold_is_t_times_max_abs_and_strict():
    # Δ = 0.05 · 1.0 = 0.05; |w| = 0.05 exactly stays zero (|w| ≤ Δ → 0, Eq. 6)
    assert ternary_codes(W, 0.05).tolist() == [1, 0, 0, -1, 1, 0, 0, -1]
    assert ternary_codes(W, 0.4).tolist() == [1, 0, 0, -1, 0, 0, 0, 0]


def test_trained_ternary_values_are_exactly_minus_wn_zero_wp():
    layer = TrainedTernary(0.05, w_p=0.7, w_n=1.3)
    out = layer(W)
    assert out.tolist() == pytest.approx([0.7, 0, 0, -1.3, 0.7, 0, 0, -1.3])
    assert set(out.unique().tolist()) == {torch.tensor(-1.3).item(), 0.0,
                                          torch.tensor(0.7).item()}


def test_gradients_are_the_closed_form_of_eq_8_and_9():
    """∂L/∂W_p = Σ_{c=+1} g, ∂L/∂W_n = −Σ_{c=−1} g (w_t = −W_n there), latent g·(W_p | 1 | W_n)."""
    w = W.clone().requires_grad_(True)
    w_p = torch.tensor(0.7, requires_grad=True)
    w_n = torch.tensor(1.3, requires_grad=True)
    g = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    (trained_ternary(w, w_p, w_n, 0.05) * g).sum().backward()
    assert w_p.grad.item() == pytest.approx(1.0 + 5.0)
    assert w_n.grad.item() == pytest.approx(-(4.0 + 8.0))
    expected = torch.tensor([0.7 * 1, 2, 3, 1.3 * 4, 0.7 * 5, 6, 7, 1.3 * 8])
    assert torch.allclose(w.grad, expected)


def test_scale_gradients_pass_gradcheck():
    """W_p, W_n enter linearly, so finite differences are exact: a +Σ for W_n fails here."""
    w = torch.randn(5, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    w_p = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    w_n = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: trained_ternary(w, a, b, 0.05), (w_p, w_n))


def test_each_scale_gets_its_gradient_when_only_it_is_trained():
    """autograd asks for W_p's and W_n's gradients separately (needs_input_grad): each alone
    still gets Σ of the upstream gradient over its own codes (W_n with the minus sign)."""
    grad = torch.arange(1.0, 9.0)  # W's codes (Δ = 0.05): + at 0 and 4, − at 3 and 7
    codes = ternary_codes(W, 0.05)
    for trained in ("w_p", "w_n"):
        w_p = torch.tensor(0.4, requires_grad=trained == "w_p")
        w_n = torch.tensor(0.9, requires_grad=trained == "w_n")
        (trained_ternary(W, w_p, w_n, 0.05) * grad).sum().backward()
        scale, sign, code = (w_p, 1, 1) if trained == "w_p" else (w_n, -1, -1)
        assert scale.grad is not None, trained
        assert scale.grad.item() == pytest.approx(sign * grad[codes == code].sum().item())


def test_the_threshold_scales_with_the_largest_weight():
    """Δ = t·max|w| (Eq. 6): with max|w| = 4, Δ = 0.2 drops −0.1 (t alone, or t / max, would
    keep it)."""
    assert ternary_codes(torch.tensor([4.0, 0.3, -0.1, 0.25]), 0.05).tolist() == [1, 1, 0, 1]


def test_a_step_on_the_scales_lowers_the_loss():
    """The loss ‖w_t − target‖² falls after one gradient step on W_p and W_n (with the paper's
    printed +Σ for W_n it rises: the target wants W_n larger)."""
    w = W.clone()
    target = torch.tensor([1.0, 0, 0, -2.0, 1.0, 0, 0, -2.0])
    layer = TrainedTernary(0.05, 0.5, 0.5)
    loss0 = (layer(w) - target).pow(2).sum()
    loss0.backward()
    with torch.no_grad():
        for p in (layer.w_p, layer.w_n):
            p -= 0.05 * p.grad
    assert (layer(w) - target).pow(2).sum().item() < loss0.item()


def test_fixed_scale_is_mean_kept_abs_with_straight_through_gradient():
    w = W.clone().requires_grad_(True)
    out = FixedScaleTernary(0.05)(w)
    alpha = torch.tensor([0.5, 1.0, 0.06, 0.3]).mean()
    assert torch.equal(out, alpha * ternary_codes(W, 0.05).float())
    (out * torch.arange(8.0)).sum().backward()
    assert torch.equal(w.grad, torch.arange(8.0))
    assert FixedScaleTernary(0.05).scales(W) == (alpha.item(), alpha.item())
    # an exact zero weight: α·0 forward (w − w is 0 there too), gradient 1
    z = torch.tensor([0.0, 0.5, -0.5], requires_grad=True)
    out = FixedScaleTernary(0.05)(z)
    assert out.tolist() == [0.0, 0.5, -0.5]
    out.sum().backward()
    assert z.grad.tolist() == [1.0, 1.0, 1.0]


def test_initial_scales():
    assert initial_scales(W, 0.05, "one") == (1.0, 1.0)
    w_p, w_n = initial_scales(W, 0.05, "mean")
    assert w_p == pytest.approx((0.5 + 0.06) / 2) and w_n == pytest.approx((1.0 + 0.3) / 2)
    # the name as a config hands it over: an equal string, not the literal object
    assert initial_scales(W, 0.05, "".join(["o", "ne"])) == (1.0, 1.0)
    # a side with no kept weight starts at 1.0
    assert initial_scales(torch.tensor([0.5, 0.2, 0.0]), 0.05, "mean") == \
        (pytest.approx(0.35), 1.0)
    assert initial_scales(torch.tensor([-0.5, -0.2, 0.0]), 0.05, "mean") == \
        (1.0, pytest.approx(0.35))


def test_kept_mean_abs_of_nothing_kept_is_zero():
    assert kept_mean_abs(torch.tensor([0.3, -0.2]), torch.zeros(2, dtype=torch.int8)) == 0.0
    assert kept_mean_abs(torch.tensor([0.3, -0.2]), torch.tensor([1, -1], dtype=torch.int8)) == \
        pytest.approx(0.25)
    assert kept_mean_abs(torch.tensor([0.3, -0.2]), torch.tensor([1, 0], dtype=torch.int8)) == \
        pytest.approx(0.3)


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 63, 64, 65, 1001])
def test_two_bit_packing_round_trips_any_length(n):
    codes = torch.randint(-1, 2, (n,), generator=torch.Generator().manual_seed(n),
                          dtype=torch.int8)
    blob = pack_ternary(codes)
    assert len(blob) == -(-n // 4)
    assert torch.equal(unpack_ternary(blob, n), codes)


def test_unpacking_returns_int8_codes_under_numpy_2_promotion():
    """int8 codes with the right values. (NumPy 2.5 raised OverflowError on the former
    `np.where(two_bits == 2, -1, two_bits)`; NumPy 2.4, here, wraps silently instead, so this
    test checks the result, not that error.)"""
    codes = unpack_ternary(bytes([0b10_01_00_10]), 4)
    assert codes.dtype == torch.int8 and codes.tolist() == [-1, 0, 1, -1]


def test_damaged_packed_codes_are_refused():
    blob = pack_ternary(torch.tensor([1, -1, 0, 1, 1], dtype=torch.int8))
    with pytest.raises(ValueError, match="cannot hold exactly 5"):
        unpack_ternary(blob[:1], 5)
    with pytest.raises(ValueError, match="0b11"):
        unpack_ternary(b"\xff\x00", 5)
    with pytest.raises(ValueError, match="3 bytes cannot hold exactly 5"):  # one byte too many
        unpack_ternary(blob + b"\x00", 5)
    for bad in ([1, 2, 0], [-2, 0]):
        with pytest.raises(ValueError, match="must be -1, 0 or \\+1"):
            pack_ternary(torch.tensor(bad, dtype=torch.int8))
    assert pack_ternary(torch.zeros(0, dtype=torch.int8)) == b""


def _ttq_resnet(method: str = "ttq", depth: int = 20, **section):
    model = create_model(f"resnet{depth}", num_classes=10, input_shape=(3, 32, 32))
    (m,) = build_methods({method: section})
    return model, m


@pytest.mark.parametrize("method", ["ttq", "ternary_fixed_scale"])
def test_export_round_trip_gives_the_same_outputs_and_2_bits_per_weight(tmp_path, method):
    model, m = _ttq_resnet(method, scale_init="mean") if method == "ttq" else _ttq_resnet(method)
    probe = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    ctx = StageContext(seed=0, run_dir=tmp_path, probe=lambda: probe,
                       model_info={"name": "resnet20", "num_classes": 10,
                                   "input_shape": [3, 32, 32], "params": {}})
    m.before_training(model, ctx)
    with torch.no_grad():  # BN statistics of a 'trained' model
        model.train()(torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(1)))
    model.eval()
    expected = model(probe)
    decoded, info, metrics = m.after_training(model, ctx)
    assert info["encoded"]["identical_outputs"]
    assert torch.equal(load_model(tmp_path / "model.qsdc").eval()(probe), expected)
    layers = info["encoded"]["layers"]
    assert len(layers) == 18 and "conv1" not in layers and "fc" not in layers
    for name, row in layers.items():
        assert row["stored_bytes"] == -(-row["params"] // 4) + 8, name  # codes + 2 float32
    size = (tmp_path / "model.qsdc").stat().st_size
    assert metrics["compress/size_bytes"] == size
    float_bytes = 4 * sum(p.numel() for p in decoded.parameters())
    assert metrics["compress/ratio"] == pytest.approx(float_bytes / size)
    ternary_bytes = sum(r["stored_bytes"] for r in layers.values())
    dense_bytes = 4 * (432 + 650 + sum(b.numel() for b in decoded.buffers()
                                       if b.dtype == torch.float32)
                       + sum(p.numel() for n, p in decoded.named_parameters() if "bn" in n))
    dense_bytes += 8 * sum(1 for b in decoded.buffers() if b.dtype == torch.int64)
    assert ternary_bytes + dense_bytes < size < ternary_bytes + dense_bytes + 3000  # + header


@pytest.mark.parametrize("section,needle", [
    ({"t": 0}, "compress.ttq: t=0 must be a number strictly between 0 and 1"),
    ({"t": 1.0}, "compress.ttq: t=1.0 must be a number strictly between 0 and 1"),
    ({"t": -0.1}, "strictly between 0 and 1"),
    ({"scale_init": "max"}, "compress.ttq: scale_init='max' is not allowed"),
    ({"layers": "outer"}, "compress.ttq: layers='outer': choose 'inner'"),
    ({"tt": 0.1}, "unknown config key 'compress.ttq.tt'"),
])
def test_bad_ternary_configs_are_one_message(section, needle):
    with pytest.raises(ConfigError) as info:
        build_methods({"ttq": section})
    assert needle in str(info.value)


def test_a_ternary_first_or_last_layer_needs_an_explicit_setting():
    model, m = _ttq_resnet(layers=["conv1", "layers.0.conv1"])
    with pytest.raises(ConfigError, match="first layer 'conv1', which Zhu et al. keep in float.*"
                                          "quantize_first_last=true"):
        m.check(model)
    model, m = _ttq_resnet("ternary_fixed_scale", layers=["conv"])
    with pytest.raises(ConfigError, match="compress.ternary_fixed_scale.layers includes"):
        m.check(model)
    model, m = _ttq_resnet(layers=["fc"])
    with pytest.raises(ConfigError, match="last layer 'fc'"):
        m.check(model)
    model, m = _ttq_resnet(layers=["conv1", "fc"], quantize_first_last=True)
    m.check(model)
    model, m = _ttq_resnet(layers=["conv9"])
    with pytest.raises(ConfigError, match="'conv9' is not a layer of this model"):
        m.check(model)


def test_the_scales_have_no_weight_decay_and_follow_the_weights_dtype():
    from quantsurvey.config import OptimConfig
    from quantsurvey.lit.optim import build_optimizer, param_groups

    model, m = _ttq_resnet()
    m.before_training(model, StageContext(seed=0, run_dir=Path(".")))
    optimizer = build_optimizer(param_groups(model, [m]), OptimConfig(weight_decay=2e-4))
    decay = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    scales = [p for n, p in model.named_parameters() if n.endswith((".w_p", ".w_n"))]
    assert len(scales) == 36 and all(decay[id(p)] == 0.0 for p in scales)
    others = [p for n, p in model.named_parameters() if not n.endswith((".w_p", ".w_n"))]
    assert all(decay[id(p)] == 2e-4 for p in others)
    double, m = _ttq_resnet()
    m.before_training(double.to(torch.float64), StageContext(seed=0, run_dir=Path(".")))
    assert double.layers[0].conv1.weight.dtype == torch.float64
    lenet = create_model("lenet300_100", num_classes=10, input_shape=(1, 28, 28))
    (m,) = build_methods({"ttq": {}})
    m.check(lenet)  # three layers: the middle one is ternary
    tiny = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    with pytest.raises(ConfigError, match="none lies between the first and the last"):
        m.check(tiny)


def test_a_ternary_file_of_another_architecture_is_refused(tmp_path):
    model, m = _ttq_resnet(depth=32)
    ctx = StageContext(seed=0, run_dir=tmp_path, probe=lambda: torch.zeros(2, 3, 32, 32),
                       model_info={"name": "resnet32", "num_classes": 10,
                                   "input_shape": [3, 32, 32], "params": {}})
    m.before_training(model, ctx)
    m.after_training(model.eval(), ctx)
    resnet20 = create_model("resnet20", num_classes=10, input_shape=(3, 32, 32))
    with pytest.raises(CheckpointError, match="model.qsdc does not fit this model"):
        load_stage(resnet20, tmp_path / "model.qsdc")
    data = (tmp_path / "model.qsdc").read_bytes()
    (tmp_path / "cut.qsdc").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a valid quantsurvey encoded model"):
        load_model(tmp_path / "cut.qsdc")


TTQ_RUN = ["data=synthetic", "data.params.input_shape=[3,16,16]", "model=resnet20",
           "trainer=smoke", "trainer.max_epochs=2", "trainer.limit_train_batches=3", "~pipeline",
           "seed=1", "+compress.ttq.t=0.05"]


def test_a_ttq_run_trains_the_scales_and_tests_the_decoded_file(tmp_path):
    metrics = train(compose_cfg([*TTQ_RUN, f"paths.output_dir={tmp_path}"]), tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    encoded = summary["compression"]["encoded"]
    assert encoded["identical_outputs"]
    assert metrics["compress/size_bytes"] == (tmp_path / "run" / "model.qsdc").stat().st_size
    scales = [(r["w_p"], r["w_n"]) for r in encoded["layers"].values()]
    assert all(w_p != 1.0 and w_n != 1.0 for w_p, w_n in scales)  # both trained away from 1.0
    logged = Path(tmp_path / "run").rglob("metrics.csv")
    header = next(logged).read_text().splitlines()[0]
    assert "compress/ttq/layers.0.conv1/w_p" in header
    assert "compress/ttq/layers.0.conv1/zero_pct" in header

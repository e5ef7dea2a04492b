"""Binary networks (BinaryNet; BWN and XNOR-Net): value sets, straight-through gradients,
clipping, α and K against hand computations, the 1-bit file, packed XNOR-popcount inference
against the simulated network, and the bad inputs."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from quantsurvey.compress.binary import (
    binarize_ste,
    bnn_lr_scale,
    filter_scales,
    input_scale_map,
    sign_binarize,
    stochastic_binarize,
)
from quantsurvey.compress.container import read_container, write_container
from quantsurvey.errors import CheckpointError, ConfigError
from quantsurvey.export import load_model
from quantsurvey.losses import squared_hinge
from quantsurvey.methods import StageContext, build_methods
from quantsurvey.models import create_model
from quantsurvey.nn.binary import BinaryActivation
from quantsurvey.nn.packed_inference import (
    PackedBNNConvNet,
    PackedBNNMLP,
    binary_conv2d,
    conv_weight_words,
)
from quantsurvey.nn.quant import latent_weight, set_input_quantizer
from tests.conftest import need_shared, needs_compiled


def test_sign_of_zero_is_plus_one_and_values_are_plus_minus_one():
    x = torch.tensor([-2.0, -0.0, 0.0, 1e-9, 3.0])
    assert sign_binarize(x).tolist() == [-1.0, 1.0, 1.0, 1.0, 1.0]
    q = stochastic_binarize(torch.linspace(-2, 2, 1001), torch.Generator().manual_seed(0))
    assert set(q.unique().tolist()) == {-1.0, 1.0}


def test_stochastic_binarization_has_the_hard_sigmoid_probability():
    gen = torch.Generator().manual_seed(1)
    for value, p in ((-1.5, 0.0), (-0.5, 0.25), (0.0, 0.5), (0.6, 0.8), (1.2, 1.0)):
        q = stochastic_binarize(torch.full((100_000,), value), gen)
        assert (q == 1).float().mean().item() == pytest.approx(p, abs=0.01)


def test_straight_through_gradient_is_cancelled_only_beyond_one():
    x = torch.tensor([-1.5, -1.0, -0.3, 0.0, 0.7, 1.0, 1.01], requires_grad=True)
    binarize_ste(x).backward(torch.arange(1.0, 8.0))
    assert x.grad.tolist() == [0.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0]  # |x| = 1 passes


def test_alpha_is_mean_abs_per_output_filter_and_k_is_the_box_filtered_channel_mean():
    w = torch.tensor([[[[1.0, -2.0], [3.0, -4.0]]], [[[0.5, 0.5], [-0.5, 0.5]]]])
    assert filter_scales(w).flatten().tolist() == [2.5, 0.5]
    x = torch.arange(1.0, 19.0).view(1, 2, 3, 3)
    x[0, 1] *= -1  # |x| per channel: 1..9 and 10..18; channel mean: 5.5 .. 13.5
    k = input_scale_map(x, (2, 2), stride=1, padding=0)
    a = torch.tensor([[5.5, 6.5, 7.5], [8.5, 9.5, 10.5], [11.5, 12.5, 13.5]])
    expected = torch.tensor([[(a[i:i + 2, j:j + 2]).mean() for j in range(2)] for i in range(2)])
    assert torch.allclose(k[0, 0], expected)
    assert input_scale_map(x, (3, 3), stride=1, padding=1).shape == (1, 1, 3, 3)


def test_k_of_a_non_square_strided_padded_kernel_matches_a_loop_over_windows():
    """K = box-filtered channel mean of |I| (Rastegari §3.2) for a 3×2 kernel, stride 2,
    padding 1: every output is the mean over its w·h window, the zero padding included (a 2×2
    kernel cannot tell w·h from w + h or w^h)."""
    x = torch.randn(2, 3, 5, 6, generator=torch.Generator().manual_seed(4))
    k = input_scale_map(x, (3, 2), stride=2, padding=1)
    a = torch.nn.functional.pad(x.abs().mean(dim=1), (1, 1, 1, 1))  # (N, 7, 8)
    rows, cols = (5 + 2 - 3) // 2 + 1, (6 + 2 - 2) // 2 + 1
    assert k.shape == (2, 1, rows, cols)
    for n in range(2):
        for i in range(rows):
            for j in range(cols):
                window = a[n, 2 * i:2 * i + 3, 2 * j:2 * j + 2]
                assert k[n, 0, i, j].item() == pytest.approx(window.sum().item() / 6, rel=1e-6)


def test_square_hinge_matches_a_hand_computation():
    logits = torch.tensor([[0.5, -2.0, 0.2]])
    # target +1 for class 0, −1 otherwise: (1 − 0.5)² + 0 + (1 + 0.2)² over 3 elements
    assert squared_hinge(logits, torch.tensor([0])).item() == pytest.approx((0.25 + 1.44) / 3)


def test_bnn_learning_rate_scale_is_the_inverse_glorot_bound():
    assert bnn_lr_scale(784, 2048) == pytest.approx(1 / math.sqrt(1.5 / 2832))
    # a 3×3 conv of 128 → 128 channels: fans 1152 and 1152 (whose bits overlap: a sum is not
    # an or), W_LR_scale = sqrt(2304 / 1.5) = 39.19
    assert bnn_lr_scale(1152, 1152) == pytest.approx(math.sqrt(2304 / 1.5))


def _mlp(width=100, method="bnn", **section):
    model = create_model("bnn_mlp", num_classes=10, input_shape=(1, 8, 8), width=width)
    (m,) = build_methods({method: section})
    return model, m


def _ctx(tmp_path, shape=(1, 8, 8), name="bnn_mlp", params=None):
    probe = torch.randn(16, *shape, generator=torch.Generator().manual_seed(5))
    return StageContext(seed=0, run_dir=tmp_path, probe=lambda: probe,
                        model_info={"name": name, "num_classes": 10, "input_shape": list(shape),
                                    "params": params or {"width": 100}})


def test_bnn_binarizes_weights_and_inner_inputs_and_clips_after_a_step(tmp_path):
    model, m = _mlp()
    info = m.before_training(model, _ctx(tmp_path))
    assert info["bnn_weights"] == ["fcs.0", "fcs.1", "fcs.2", "fcs.3"]
    assert info["bnn_inputs"] == ["fcs.1", "fcs.2", "fcs.3"]
    for fc in model.fcs:
        assert set(fc.weight.unique().tolist()) <= {-1.0, 1.0}
    seen = []
    model.fcs[2].register_forward_pre_hook(lambda mod, inp: seen.append(inp[0]), prepend=False)
    model.train()(torch.randn(4, 1, 8, 8))
    assert set(seen[0].unique().tolist()) <= {-1.0, 1.0}
    with torch.no_grad():
        latent_weight(model.fcs[1]).mul_(50)  # He-uniform init: |w| ≤ 0.1 before
    m.after_optimizer_step(model)
    assert latent_weight(model.fcs[1]).abs().max().item() == 1.0
    groups = m.param_groups(model)
    assert groups[1]["lr_scale"] == pytest.approx(bnn_lr_scale(100, 100))


def test_a_dropped_hidden_unit_is_zero_after_binarization_as_binarynets_code(tmp_path):
    # BinaryNet's Theano MLP drops the binary activations (inputs {-2, 0, +2}); binarizing after
    # the dropout turned every dropped unit into sign(0) = +1
    model = create_model("bnn_mlp", num_classes=10, input_shape=(1, 8, 8), width=64,
                         dropout=0.5, dropout_in=0.2)
    (m,) = build_methods({"bnn": {}})
    m.before_training(model, _ctx(tmp_path, params={"width": 64}))
    seen = []
    model.fcs[2].register_forward_hook(lambda mod, inp, out: seen.append(inp[0]))
    torch.manual_seed(0)
    model.train()(torch.randn(32, 1, 8, 8))
    binary = seen[0]  # what the pre-hook handed on: ±1, before the layer's own dropout
    drop = model.fcs[2].drop
    assert set(binary.unique().tolist()) == {-1.0, 1.0} and drop.p == 0.5
    # the layer's effective input: the binary signs dropped with inverted scaling
    torch.manual_seed(1)
    effective = drop(binary)
    assert set(effective.unique().tolist()) == {-2.0, 0.0, 2.0}
    torch.manual_seed(1)
    w = model.fcs[2].weight  # ±1 under the transform
    assert torch.equal(model.fcs[2](binary), F.linear(effective, w))
    model.eval()
    x = torch.randn(4, 1, 8, 8)
    assert torch.equal(model(x), model(x))  # no dropout at test time


def test_init_uniform_draws_latent_weights_from_u_minus_clip_clip_by_seed(tmp_path):
    weights = []
    for _ in range(2):
        model, m = _mlp(256, init_uniform=True, clip=1.0)
        m.before_training(model, _ctx(tmp_path, params={"width": 256}))
        w = latent_weight(model.fcs[1]).detach()
        weights.append(w)
        # U(-1, 1): mean 0, variance 1/3, the whole range used (PyTorch's init: |w| <= 1/16)
        assert w.abs().max().item() <= 1.0 and w.abs().max().item() > 0.99
        assert abs(w.mean().item()) < 0.01 and w.var().item() == pytest.approx(1 / 3, rel=0.02)
    assert torch.equal(weights[0], weights[1])  # the stage's seed decides the draw
    plain, m = _mlp(256, clip=1.0)
    m.before_training(plain, _ctx(tmp_path, params={"width": 256}))
    assert latent_weight(plain.fcs[1]).abs().max().item() <= 1 / 16


def test_init_uniform_is_refused_with_init_from_or_without_clip():
    from quantsurvey.config import validate_config
    from tests.conftest import compose_cfg

    with pytest.raises(ConfigError, match="init_uniform draws new weights"):
        validate_config(compose_cfg(["experiment=courbariaux2016_bnn/bnn_mlp_mnist",
                                     "~pipeline", "method=bnn", "init_from=/some/run",
                                     "+compress.bnn.init_uniform=true"]))
    with pytest.raises(ConfigError, match="give clip a positive number"):
        build_methods({"bnn": {"init_uniform": True, "clip": None}})


@pytest.mark.parametrize("method,shape,name,params", [
    ("bnn", (1, 8, 8), "bnn_mlp", {"width": 100}),
    ("bnn", (3, 16, 16), "bnn_convnet", {"width": 0.125}),
    ("bwn", (3, 16, 16), "bnn_convnet", {"width": 0.125}),
    ("xnor", (3, 16, 16), "bnn_convnet", {"width": 0.125}),
])
def test_the_one_bit_file_round_trips_and_is_about_32x_smaller(tmp_path, method, shape, name,
                                                               params):
    model = create_model(name, num_classes=10, input_shape=shape, **params)
    (m,) = build_methods({method: {}})
    ctx = _ctx(tmp_path, shape, name, params)
    m.before_training(model, ctx)
    with torch.no_grad():
        model.train()(torch.randn(32, *shape, generator=torch.Generator().manual_seed(2)))
    model.eval()
    expected = model(ctx.probe())
    decoded, info, metrics = m.after_training(model, ctx)
    again = load_model(tmp_path / "model.qsdc").eval()
    assert torch.equal(again(ctx.probe()), expected)
    for layer, row in info["encoded"]["layers"].items():
        n = row["params"]
        out = dict(again.named_modules())[layer].weight.shape[0]
        assert row["stored_bytes"] == math.ceil(n / 8) + (4 * out if row["scaled"] else 0)
    binary_bytes = 4 * sum(r["params"] for r in info["encoded"]["layers"].values())
    assert binary_bytes / metrics["compress/weight_bytes"] > 25  # the papers' "about 32×"


def _trained_bnn_mlp(tmp_path, width=130):
    model, m = _mlp(width)
    ctx = _ctx(tmp_path, params={"width": width})
    m.before_training(model, ctx)
    with torch.no_grad():
        model.train()(torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(3)))
    model.eval()
    decoded, _, _ = m.after_training(model, ctx)
    return decoded


@pytest.mark.parametrize("kernel", ["numpy", pytest.param("compiled", marks=needs_compiled)])
def test_packed_inference_equals_the_simulated_network_exactly(tmp_path, kernel):
    decoded = _trained_bnn_mlp(tmp_path)  # width 130: not a multiple of 64
    packed = PackedBNNMLP.from_model(decoded, kernel=kernel)
    for seed in range(3):
        x = torch.randn(50, 1, 8, 8, generator=torch.Generator().manual_seed(10 + seed))
        assert torch.equal(packed(x), decoded(x))


@pytest.mark.data
@pytest.mark.parametrize("kernel", ["numpy", pytest.param("compiled", marks=needs_compiled)])
def test_packed_inference_equals_simulation_on_real_mnist(tmp_path, kernel):
    from quantsurvey.data import create_datamodule

    root = need_shared("MNIST", "raw")  # the data root that holds MNIST/raw
    dm = create_datamodule("mnist", root=root, cache_dir=tmp_path / "cache", batch_size=100,
                           eval_batch_size=1000, download=False)
    dm.setup("fit")
    model = create_model("bnn_mlp", num_classes=10, input_shape=(1, 28, 28), width=300)
    (m,) = build_methods({"bnn": {}})
    ctx = StageContext(seed=0, run_dir=tmp_path, probe=lambda: torch.zeros(4, 1, 28, 28),
                       model_info={"name": "bnn_mlp", "num_classes": 10,
                                   "input_shape": [1, 28, 28], "params": {"width": 300}})
    m.before_training(model, ctx)
    with torch.no_grad():  # batch-norm statistics from real training digits
        model.train()
        for i, batch in enumerate(dm.train_dataloader()):
            if i == 10:
                break
            model(dm.on_after_batch_transfer(batch, 0)[0])
    model.eval()
    decoded, _, _ = m.after_training(model, ctx)
    packed = PackedBNNMLP.from_model(decoded, kernel=kernel)
    seen = 0
    for batch in dm.test_dataloader():
        x, _ = dm.on_after_batch_transfer(batch, 0)
        assert torch.equal(packed(x), decoded(x))
        seen += len(x)
    assert seen == 10_000


def _trained_bnn_convnet(tmp_path):
    model = create_model("bnn_convnet", num_classes=10, input_shape=(3, 16, 16), width=0.125)
    (m,) = build_methods({"bnn": {}})
    ctx = _ctx(tmp_path, (3, 16, 16), "bnn_convnet", {"width": 0.125})
    m.before_training(model, ctx)
    with torch.no_grad():
        model.train()(torch.randn(64, 3, 16, 16, generator=torch.Generator().manual_seed(6)))
    model.eval()
    decoded, _, _ = m.after_training(model, ctx)
    return decoded


@pytest.mark.parametrize("kernel", ["numpy", pytest.param("compiled", marks=needs_compiled)])
def test_packed_convolutions_equal_the_simulated_convnet_exactly(tmp_path, kernel):
    """16 channels × 3×3 = 144 entries per column (not a multiple of 64), zero padding masked."""
    decoded = _trained_bnn_convnet(tmp_path)
    packed = PackedBNNConvNet.from_model(decoded, kernel=kernel)
    x = torch.randn(5, 3, 16, 16, generator=torch.Generator().manual_seed(7))
    assert torch.equal(packed(x), decoded(x))
    with pytest.raises(CheckpointError, match="needs a bnn_convnet"):
        (tmp_path / "mlp").mkdir()
        PackedBNNConvNet.from_model(_trained_bnn_mlp(tmp_path / "mlp"))


@pytest.mark.parametrize("kernel", ["numpy", pytest.param("compiled", marks=needs_compiled)])
@pytest.mark.parametrize("size,stride,padding,channels", [((3, 2), (2, 1), (1, 0), 5),
                                                          ((2, 3), (1, 2), (0, 1), 5),
                                                          ((3, 3), (1, 1), (1, 1), 5),
                                                          ((3, 3), (1, 1), (2, 2), 130),
                                                          ((1, 1), (2, 2), (0, 0), 64)])
def test_a_packed_convolution_of_any_shape_equals_conv2d_on_signs(size, stride, padding,
                                                                  channels, kernel):
    """Non-square kernels, strides and paddings (BinaryNet's own are all 3×3, 1, 1, where a
    height swapped for a width goes unseen); 5 channels (one part-filled word per position),
    130 (three words, padding wider than the kernel's reach on some rows), 64 (one full word, a
    1×1 shortcut)."""
    gen = torch.Generator().manual_seed(8)
    conv = nn.Conv2d(channels, 4, size, stride=stride, padding=padding, bias=False)
    with torch.no_grad():
        conv.weight.copy_(sign_binarize(torch.randn(conv.weight.shape, generator=gen)))
    signs = sign_binarize(torch.randn(2, channels, 7, 9, generator=gen))
    got = binary_conv2d(signs, conv, conv_weight_words(conv, kernel), kernel=kernel)
    want = F.conv2d(signs, conv.weight.detach(), stride=stride, padding=padding)
    assert got.shape == want.shape and torch.equal(got, want)
    assert torch.equal(binary_conv2d(signs, conv, kernel=kernel), want)  # weights packed there


def test_packed_inference_refuses_other_models(tmp_path):
    with pytest.raises(CheckpointError, match="needs a bnn_mlp"):
        PackedBNNMLP.from_model(create_model("lenet5", num_classes=10, input_shape=(1, 28, 28)))
    float_mlp = create_model("bnn_mlp", num_classes=10, input_shape=(1, 8, 8), width=64)
    with pytest.raises(CheckpointError, match="does not hold ±1 weights"):
        PackedBNNMLP.from_model(float_mlp)
    binary = _trained_bnn_mlp(tmp_path, width=64)
    PackedBNNMLP.from_model(copy.deepcopy(binary))  # taken as it is
    for stray in (-2.0, 2.0, 0.0):  # one weight off ±1 in an otherwise binary network
        almost = copy.deepcopy(binary)
        with torch.no_grad():
            almost.fcs[1].weight[0, 0] = stray
        with pytest.raises(CheckpointError, match=r"layer fcs.1 does not hold ±1 weights"):
            PackedBNNMLP.from_model(almost)


def test_packed_inference_refuses_a_network_missing_a_part(tmp_path):
    """An MLP without its batch norms or without its layers, a binary layer fed real values,
    and a ConvNet whose first fully connected layer lost its binary input: each refused by name
    before anything is packed (not a TypeError from deep inside)."""
    binary = _trained_bnn_mlp(tmp_path, width=64)
    for part in ("bns", "fcs"):
        partial = copy.deepcopy(binary)
        delattr(partial, part)
        with pytest.raises(CheckpointError, match="needs a bnn_mlp"):
            PackedBNNMLP.from_model(partial)
    real_input = copy.deepcopy(binary)
    set_input_quantizer(real_input.fcs[2], None)
    with pytest.raises(CheckpointError, match="layer fcs.2 has no binary input"):
        PackedBNNMLP.from_model(real_input)
    (tmp_path / "conv").mkdir()
    convnet = _trained_bnn_convnet(tmp_path / "conv")
    PackedBNNConvNet.from_model(copy.deepcopy(convnet))  # taken as it is
    set_input_quantizer(convnet.fcs[0], None)  # the ConvNet's fcs are all binary-input
    with pytest.raises(CheckpointError, match="layer fcs.0 has no binary input"):
        PackedBNNConvNet.from_model(convnet)


def test_packed_inference_builds_no_autograd_graph(tmp_path):
    packed = PackedBNNMLP.from_model(_trained_bnn_mlp(tmp_path, width=64))
    out = packed(torch.randn(3, 1, 8, 8, requires_grad=True))
    assert out.grad_fn is None and not out.requires_grad
    (tmp_path / "conv").mkdir()  # the ConvNet's float first conv would build one from its weight
    convnet = PackedBNNConvNet.from_model(_trained_bnn_convnet(tmp_path / "conv"))
    out = convnet(torch.randn(2, 3, 16, 16))
    assert out.grad_fn is None and not out.requires_grad


def test_a_binary_file_of_another_architecture_or_truncated_is_refused(tmp_path):
    _trained_bnn_mlp(tmp_path, width=130)
    path = tmp_path / "model.qsdc"
    header, blobs = read_container(path)
    header["model"]["params"] = {"width": 200}
    other = tmp_path / "other.qsdc"
    write_container(other, header, blobs)
    with pytest.raises(CheckpointError, match="does not fit model bnn_mlp"):
        load_model(other)
    header["model"]["params"] = {"width": 130}
    blobs["fcs.1/signs"] = blobs["fcs.1/signs"][:-3]
    short = tmp_path / "short.qsdc"
    write_container(short, header, blobs)
    with pytest.raises(CheckpointError, match="layer fcs.1 cannot be decoded"):
        load_model(short)
    data = path.read_bytes()
    Path(tmp_path / "cut.qsdc").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_model(tmp_path / "cut.qsdc")


def test_a_binary_first_layer_needs_an_explicit_setting():
    model = create_model("bnn_mlp", num_classes=10, input_shape=(1, 8, 8), width=32)
    (m,) = build_methods({"bnn": {"inputs": "all"}})
    with pytest.raises(ConfigError, match="compress.bnn.inputs binarizes the first layer's "
                                          "input.*binarize_first_last=true"):
        m.check(model)
    (m,) = build_methods({"bnn": {"inputs": "all", "binarize_first_last": True}})
    m.check(model)
    (m,) = build_methods({"xnor": {"weights": "all"}})
    with pytest.raises(ConfigError, match="compress.xnor.weights includes 'fcs.0'"):
        m.check(model)


@pytest.mark.parametrize("section,needle", [
    ({"weights": "most"}, "weights='most': choose one of all, inner, all_but_first"),
    ({"clip": 0}, "clip=0 must be a positive number"),
    ({"stochastic": "yes"}, "stochastic='yes': choose true or false"),
    ({"inputs": ["fc9"]}, None),
])
def test_bad_binary_configs_are_one_message(section, needle):
    if needle is None:
        (m,) = build_methods({"bnn": section})
        with pytest.raises(ConfigError, match="'fc9' is not a layer of this model"):
            m.check(create_model("bnn_mlp", num_classes=10, input_shape=(1, 8, 8), width=8))
        return
    with pytest.raises(ConfigError, match="compress.bnn") as err:
        build_methods({"bnn": section})
    assert needle in str(err.value)


def test_stochastic_binarization_repeats_with_the_seed_and_resumes_from_the_draw_count():
    model, m = _mlp(32, stochastic=True)
    ctx = _ctx(Path("/nonexistent"), params={"width": 32})
    m.before_training(model, ctx)
    x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    model.train()
    first = [model(x) for _ in range(3)]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    later = model(x)
    model.load_state_dict(state)  # as a resume from a checkpoint after three steps
    assert torch.equal(model(x), later)
    assert not torch.equal(first[0], first[1])  # fresh draws each step
    model.eval()
    assert torch.equal(model(x), model(x))  # evaluation is deterministic


def test_xnor_scales_the_output_by_k():
    model = create_model("bnn_convnet", num_classes=10, input_shape=(3, 16, 16), width=0.125)
    (m,) = build_methods({"xnor": {}})
    m.before_training(model, _ctx(Path("/nonexistent"), (3, 16, 16), "bnn_convnet"))
    conv = model.convs[1]
    x = torch.randn(2, 16, 16, 16, generator=torch.Generator().manual_seed(4))
    expected = F.conv2d(sign_binarize(x), conv.weight, padding=1) * input_scale_map(
        x, (3, 3), 1, 1)
    assert torch.allclose(conv.eval()(x), expected, atol=1e-5)


def _stochastic_draws(seed: int, n: int) -> list[tuple]:
    """The signs n training forwards of a stochastic BinaryActivation draw for x = 0 (P = ½)."""
    act = BinaryActivation(stochastic=True, seed=seed).train()
    return [tuple(act(torch.zeros(64)).tolist()) for _ in range(n)]


def test_stochastic_draws_differ_from_step_to_step_and_between_seeds():
    """Each training forward draws afresh (seed, draw count), and two seeds never draw the same
    signs (a stream shifted by one seed would repeat the other's draws a step later)."""
    streams = {seed: _stochastic_draws(seed, 4) for seed in (0, 1, 7)}
    for seed, draws in streams.items():
        assert len(set(draws)) == 4, f"seed {seed} repeats a draw"
    assert not set(streams[0]) & set(streams[1]) and not set(streams[1]) & set(streams[7])
    assert _stochastic_draws(1, 4) == streams[1]  # and a seed gives its own stream again


def test_bwn_weight_gradient_is_alpha_through_the_signs_plus_alphas_own_term():
    """BWN (Rastegari Eq. 4): W ≈ α·sign(W), α = mean |W| per filter. By hand:
    ∂L/∂W_ij = g_ij·α_i·1_{|W_ij| ≤ 1} + sign(W_ij)/n · Σ_k g_ik·sign(W_ik)."""
    from quantsurvey.nn.binary import BinaryWeight

    w = torch.tensor([[0.5, -0.25, 2.0, -0.75], [-0.1, 0.3, -1.5, 0.2]], requires_grad=True)
    g = torch.tensor([[1.0, 2.0, -1.0, 0.5], [-2.0, 1.0, 3.0, -1.0]])
    (BinaryWeight(scaled=True)(w) * g).sum().backward()
    s = torch.where(w >= 0, 1.0, -1.0).detach()
    alpha = w.detach().abs().mean(dim=1, keepdim=True)
    inside = (w.detach().abs() <= 1).float()
    expected = g * alpha * inside + s / 4 * (g * s).sum(dim=1, keepdim=True)
    assert torch.allclose(w.grad, expected)


def test_a_binary_activation_made_without_arguments_is_deterministic_even_in_training():
    """The decoded model's activations are built with the defaults (export.load_model)."""
    act = BinaryActivation().train()
    x = torch.linspace(-0.9, 0.9, 64)
    assert torch.equal(act(x), torch.where(x >= 0, 1.0, -1.0)) and torch.equal(act(x), act(x))


def test_xnor_k_is_taken_from_the_real_input_even_when_the_quantizer_came_first():
    """attach_input_scale's pre-hook runs before the input quantizer's, whichever was attached
    first: K = mean |x| of the real input, not of sign(x) (which would be 1)."""
    from quantsurvey.nn.binary import attach_input_scale
    from quantsurvey.nn.quant import set_input_quantizer

    torch.manual_seed(0)
    layer = torch.nn.Linear(6, 3)
    x = torch.randn(4, 6) * 0.3
    plain = layer(torch.where(x >= 0, 1.0, -1.0))
    set_input_quantizer(layer, BinaryActivation())
    attach_input_scale(layer)
    assert torch.allclose(layer(x), plain * x.abs().mean(dim=-1, keepdim=True))

"""The quantized-layer mechanism: weight transforms and input quantizers on any Conv2d/Linear."""

import pytest
import torch
from torch import nn

from quantsurvey.models import create_model
from quantsurvey.nn.masking import Mask, apply_masks, current_masks
from quantsurvey.nn.quant import (
    WeightTransform,
    add_weight_transform,
    effective_weight,
    find_transform,
    input_quantizer,
    kept_mask,
    latent_weight,
    plain_state_dict,
    set_input_quantizer,
    sparsity_stats,
    strip_transforms,
)
from quantsurvey.nn.weight_sharing import SharedCodebook, share_layer


class Identity(WeightTransform):
    def forward(self, weight):
        return weight


class SignSTE(WeightTransform):
    """sign(w) forward, gradient passed straight through where |w| ≤ 1 (BNN-style)."""

    def forward(self, weight):
        b = torch.where(weight >= 0, 1.0, -1.0)
        return weight.clamp(-1, 1) + (b - weight.clamp(-1, 1)).detach()


def _pair(kind):
    torch.manual_seed(0)
    if kind == "linear":
        plain, x = nn.Linear(7, 5), torch.randn(4, 7)
    else:
        plain, x = nn.Conv2d(3, 4, 3, padding=1), torch.randn(2, 3, 6, 6)
    quant = type(plain)(*((7, 5) if kind == "linear" else (3, 4, 3)),
                        **({} if kind == "linear" else {"padding": 1}))
    quant.load_state_dict(plain.state_dict())
    return plain, quant, x


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_identity_transform_gives_the_plain_layers_outputs_and_gradients(kind):
    plain, quant, x = _pair(kind)
    add_weight_transform(quant, Identity())
    out_p, out_q = plain(x), quant(x)
    assert torch.equal(out_p, out_q)
    out_p.square().sum().backward()
    out_q.square().sum().backward()
    assert torch.equal(plain.weight.grad, latent_weight(quant).grad)
    assert torch.equal(plain.bias.grad, quant.bias.grad)


def test_transforms_compose_in_order_and_the_latent_weight_is_never_overwritten():
    plain, layer, x = _pair("linear")
    before = latent_weight(layer).detach().clone()
    mask = torch.rand(5, 7) > 0.5
    add_weight_transform(layer, Mask(mask))
    add_weight_transform(layer, SignSTE())
    expected = torch.where(before * mask >= 0, 1.0, -1.0)
    assert torch.equal(effective_weight(layer), expected)
    assert torch.equal(latent_weight(layer), before)
    layer(x).sum().backward()
    g = latent_weight(layer).grad
    assert torch.count_nonzero(g[~mask]) == 0  # the mask stops gradients to pruned weights
    assert torch.count_nonzero(g[mask]) > 0  # the STE passes them through the sign
    assert torch.equal(kept_mask(layer), mask)


def test_input_quantizer_quantizes_the_input_and_can_be_removed():
    plain, layer, x = _pair("linear")
    set_input_quantizer(layer, nn.Hardtanh(-0.1, 0.1))
    assert isinstance(input_quantizer(layer), nn.Hardtanh)
    assert torch.equal(layer(x), plain(x.clamp(-0.1, 0.1)))
    assert "input_quantizer" in dict(layer.named_children())
    set_input_quantizer(layer, None)
    assert torch.equal(layer(x), plain(x))


def test_masks_tighten_and_strip_folds_them_into_a_plain_weight():
    _, layer, x = _pair("linear")
    m1, m2 = torch.rand(5, 7) > 0.3, torch.rand(5, 7) > 0.3
    model = nn.Sequential(layer)
    apply_masks(model, {"0": m1})
    apply_masks(model, {"0": m2})
    assert len([t for t in layer.parametrizations.weight]) == 1  # one mask, tightened
    assert torch.equal(current_masks(model)["0"], m1 & m2)
    out = layer(x)
    strip_transforms(layer)
    assert isinstance(layer.weight, nn.Parameter) and layer.weight.requires_grad
    assert torch.equal(layer(x), out)
    assert kept_mask(layer) is None


def test_shared_layer_freezes_its_latent_weight_and_its_state_round_trips():
    torch.manual_seed(0)
    layer = nn.Linear(20, 10)
    share_layer(layer, 3, "linear", 20)
    codebook = layer.parametrizations.weight[0]
    assert isinstance(codebook, SharedCodebook)
    assert not latent_weight(layer).requires_grad and codebook.centroids.requires_grad
    assert len(torch.unique(effective_weight(layer))) <= 7
    twin = nn.Linear(20, 10)
    add_weight_transform(twin, SharedCodebook(torch.zeros(7), torch.zeros(10, 20,
                                              dtype=torch.long), 3))
    twin.load_state_dict(layer.state_dict())
    x = torch.randn(3, 20)
    assert torch.equal(twin(x), layer(x))


def test_plain_state_dict_rebuilds_the_model_without_transforms():
    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=10, input_shape=(1, 28, 28))
    apply_masks(model, {"fc1": torch.rand(500, 800) > 0.9})
    share_layer(model.fc2, 4, "linear", 10)
    set_input_quantizer(model.conv2, nn.Identity())
    plain = create_model("lenet5", num_classes=10, input_shape=(1, 28, 28))
    plain.load_state_dict(plain_state_dict(model))  # strict: same keys, same shapes
    x = torch.randn(2, 1, 28, 28)
    model.eval(), plain.eval()
    assert torch.equal(plain(x), model(x))


def test_sparsity_counts_effective_zeros_and_every_other_parameter_as_kept():
    torch.manual_seed(0)
    model = create_model("lenet300_100", num_classes=10, input_shape=(1, 28, 28))
    mask = torch.zeros(300, 784, dtype=torch.bool)
    mask[:, :78] = True  # 23,400 of 235,200 kept
    apply_masks(model, {"fc1": mask})
    share_layer(model.fc3, 2, "linear", 5)  # frozen latent weight: must not count twice
    stats = sparsity_stats(model)
    kept = 23_400 + 30_000 + int((model.fc3.weight != 0).sum())
    assert stats["compress/kept_pct"] == pytest.approx(100 * kept / 266_200)
    assert stats["compress/ratio"] == pytest.approx(266_610 / (kept + 410))
    assert stats["compress/weight_ratio"] == pytest.approx(266_200 / kept)


def test_weight_ratio_of_zhangs_lenet5_fractions_is_the_papers_71x():
    """Zhang 2018: LeNet-5's 430.5K weights kept at 20 / 8 / 0.9 / 7% are 6.05K, 71.2×."""
    from quantsurvey.nn.masking import prune_by_magnitude

    model = create_model("lenet5", num_classes=10, input_shape=(1, 28, 28))
    prune_by_magnitude(model, kept={"conv1": 0.2, "conv2": 0.08, "fc1": 0.009, "fc2": 0.07})
    stats = sparsity_stats(model)
    assert stats["compress/weight_ratio"] == pytest.approx(430_500 / 6_050)
    assert round(stats["compress/weight_ratio"], 1) == 71.2


def test_a_quantizer_slot_set_removed_and_set_again_runs_once():
    from quantsurvey.nn.quant import set_input_quantizer, set_output_quantizer

    calls = []

    class Double(torch.nn.Module):
        def forward(self, x):
            calls.append(1)
            return 2 * x

    for setter in (set_input_quantizer, set_output_quantizer):
        layer = torch.nn.Linear(2, 2, bias=False)
        torch.nn.init.eye_(layer.weight)
        setter(layer, Double())
        setter(layer, None)
        assert torch.equal(layer(torch.ones(1, 2)), torch.ones(1, 2))  # removed: no effect
        setter(layer, Double())
        calls.clear()
        assert torch.equal(layer(torch.ones(1, 2)), torch.full((1, 2), 2.0))
        assert len(calls) == 1  # one hook, however often the slot was set


def test_two_pruning_transforms_keep_only_what_both_keep():
    _, layer, _ = _pair("linear")
    m1, m2 = torch.rand(5, 7) > 0.3, torch.rand(5, 7) > 0.3
    add_weight_transform(layer, Mask(m1))
    add_weight_transform(layer, Identity())  # prunes nothing: no say in the kept positions
    add_weight_transform(layer, Mask(m2))
    assert torch.equal(kept_mask(layer), m1 & m2)
    assert torch.equal(find_transform(layer, Mask).kept(), m2)  # the last one of its kind
    assert torch.equal(effective_weight(layer) != 0, m1 & m2 & (latent_weight(layer) != 0))


def test_a_transform_without_state_still_gives_its_layer_a_plain_weight():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    add_weight_transform(model[0], Identity())  # no parameters, no buffers: one state key
    plain = plain_state_dict(model)
    assert list(plain) == ["0.bias", "0.weight", "2.weight", "2.bias"]
    assert torch.equal(plain["0.weight"], effective_weight(model[0]))


def test_architecture_params_count_each_weight_once_and_every_other_parameter():
    from quantsurvey.nn.quant import architecture_params

    model = create_model("lenet300_100", num_classes=10, input_shape=(1, 28, 28))
    assert architecture_params(model) == 266_610  # 266,200 weights + 410 biases
    apply_masks(model, {"fc1": torch.rand(300, 784) > 0.5})
    share_layer(model.fc3, 2, "linear", 5)  # a latent weight plus centroids: still 1,000
    assert architecture_params(model) == 266_610


def test_sparsity_of_a_model_with_nothing_kept_is_finite():
    model = nn.Sequential(nn.Linear(4, 3, bias=False), nn.Linear(3, 2, bias=False))
    apply_masks(model, {"0": torch.zeros(3, 4, dtype=torch.bool),
                        "1": torch.zeros(2, 3, dtype=torch.bool)})
    assert sparsity_stats(model) == {"compress/kept_pct": 0.0, "compress/ratio": 18.0,
                                     "compress/weight_ratio": 18.0}
    assert sparsity_stats(nn.Sequential(nn.ReLU()))["compress/kept_pct"] == 0.0  # no layers
    single = nn.Sequential(nn.Linear(1, 1, bias=False))
    with torch.no_grad():
        single[0].weight.fill_(0.5)
    assert sparsity_stats(single)["compress/kept_pct"] == 100.0  # one weight, kept
    one = torch.zeros(3, 4, dtype=torch.bool)
    one[0, 0] = True
    with torch.no_grad():
        model[0].parametrizations.weight.original.fill_(1.0)
    model[0].parametrizations.weight[0].mask.copy_(one)
    stats = sparsity_stats(model)
    assert stats["compress/ratio"] == 18.0 and stats["compress/weight_ratio"] == 18.0  # 18 / 1


def test_a_layer_is_quantized_by_any_one_of_weight_transform_input_or_output_quantizer():
    from quantsurvey.nn.quant import is_quantized, set_output_quantizer

    layers = [nn.Linear(3, 2) for _ in range(4)]
    add_weight_transform(layers[1], Identity())
    set_input_quantizer(layers[2], nn.Identity())
    set_output_quantizer(layers[3], nn.Identity())
    assert [is_quantized(layer) for layer in layers] == [False, True, True, True]


def test_quantizer_state_is_left_out_and_every_key_after_it_kept():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("step", torch.tensor(0.5))

        def forward(self, x):
            return x

    from quantsurvey.nn.quant import set_output_quantizer

    model = create_model("lenet5", num_classes=10, input_shape=(1, 28, 28))
    set_input_quantizer(model.conv2, Scaled())
    set_output_quantizer(model.fc1, Scaled())
    assert "conv2.input_quantizer.step" in model.state_dict()
    plain = create_model("lenet5", num_classes=10, input_shape=(1, 28, 28))
    assert list(plain_state_dict(model)) == list(plain.state_dict())


def test_layers_skipped_lose_only_their_weight():
    model = create_model("lenet5", num_classes=10, input_shape=(1, 28, 28))
    apply_masks(model, {"fc1": torch.rand(500, 800) > 0.5})
    keys = list(model.state_dict())
    plain = plain_state_dict(model, skip={"conv1", "fc1"})
    assert "conv1.weight" not in plain and "fc1.weight" not in plain
    assert list(plain) == [k for k in plain_state_dict(model) if k not in
                           ("conv1.weight", "fc1.weight")]
    assert "fc2.weight" in plain and "fc2.bias" in plain and len(keys) > len(plain)

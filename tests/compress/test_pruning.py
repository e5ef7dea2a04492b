"""Han 2015 magnitude pruning: the threshold rule, masks that only shrink, zeros that stay zero."""

import dataclasses
import math

import pytest
import torch
from torch import nn

from quantsurvey.compress.pruning import (
    PruningConfig,
    magnitude_mask,
    magnitude_threshold,
    retrain_dropout,
    top_fraction_mask,
)
from quantsurvey.errors import ConfigError
from quantsurvey.methods import build_config
from quantsurvey.models import create_model
from quantsurvey.nn.masking import (
    Mask,
    adjust_dropout,
    apply_masks,
    current_masks,
    prune_by_magnitude,
)
from quantsurvey.nn.quant import effective_weight, find_transform, sparsity_stats


def test_threshold_is_quality_times_std_of_survivors():
    w = torch.tensor([0.1, -0.2, 0.3, -0.4, 1.0, -2.0])
    assert magnitude_threshold(w, 1.5) == pytest.approx(1.5 * w.double().std().item())
    alive = torch.tensor([True, True, False, True, True, True])
    assert magnitude_threshold(w, 1.0, alive) == pytest.approx(w[alive].double().std().item())


def test_mask_keeps_large_weights_and_never_revives():
    torch.manual_seed(0)
    w = torch.randn(1000)
    m1 = magnitude_mask(w, 1.0)
    assert torch.equal(m1, w.abs() > w.std())
    assert abs(m1.float().mean().item() - 0.317) < 0.05  # P(|z| > 1) for a Gaussian
    grown = w * 10 * (~m1)  # pruned weights grow: they must stay pruned
    m2 = magnitude_mask(grown + w * m1, 0.0, m1)
    assert not (m2 & ~m1).any()


def test_retrain_dropout_rule():
    # D_r = D_o sqrt(C_r / C_o): AlexNet's fc6 keeps 9%, so 0.5 dropout becomes 0.15
    assert retrain_dropout(0.5, 0.09) == pytest.approx(0.15)
    assert retrain_dropout(0.5, 1.0) == 0.5
    for bad in (0.0, -0.25, 1.5):
        with pytest.raises(ValueError, match=f"kept fraction {bad} must be in"):
            retrain_dropout(0.5, bad)


def test_threshold_of_too_few_survivors_is_zero_and_of_two_their_std():
    """std needs two values: one survivor (or none) gives threshold 0, two give q·std."""
    assert magnitude_threshold(torch.tensor([5.0]), 2.0) == 0.0
    assert magnitude_threshold(torch.tensor([5.0, 1.0]), 1.0, torch.tensor([False, False])) == 0.0
    assert magnitude_threshold(torch.tensor([1.0, 3.0]), 2.0) == pytest.approx(2 * math.sqrt(2))
    assert magnitude_threshold(torch.tensor([1.0, 3.0, 9.0]), 1.0,
                               torch.tensor([True, True, False])) == pytest.approx(math.sqrt(2))


@pytest.mark.parametrize("fraction", [0, 0.0, -0.5, 1.0001, 2, float("nan")])
def test_a_kept_fraction_outside_zero_one_is_refused(fraction):
    with pytest.raises(ValueError, match=r"kept.fc1=.* must be in \(0, 1\]"):
        PruningConfig(kept={"fc1": fraction})


@pytest.mark.parametrize("quality", [-0.1, -1, float("inf"), float("nan")])
def test_a_negative_or_non_finite_quality_is_refused(quality):
    with pytest.raises(ValueError, match=r"quality.fc1=.* must be a number >= 0"):
        PruningConfig(quality={"fc1": quality})


@pytest.mark.parametrize("quality", [0, 0.0, 0.5, 1, 2.5])
def test_a_quality_of_zero_or_more_is_taken(quality):
    """Quality 0 is a valid threshold (it prunes exact zeros only), below 1 too."""
    assert PruningConfig(quality={"fc1": quality}).quality == {"fc1": quality}


@pytest.mark.parametrize("fraction", [1, 1.0, 0.5, 1e-6])
def test_a_kept_fraction_inside_zero_one_is_taken(fraction):
    assert PruningConfig(kept={"fc1": fraction}).kept == {"fc1": fraction}


def test_pruned_weights_stay_exactly_zero_through_sgd_with_momentum_and_decay():
    torch.manual_seed(0)
    model = create_model("lenet300_100", num_classes=10, input_shape=(1, 28, 28))
    masks = prune_by_magnitude(model, {"fc1": 1.0, "fc2": 0.5})
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
    for _ in range(5):
        opt.zero_grad()
        model(torch.randn(8, 1, 28, 28)).square().mean().backward()
        opt.step()
    for name, mask in masks.items():
        weight = getattr(model, name).weight
        assert torch.count_nonzero(weight[~mask]) == 0
        assert torch.count_nonzero(weight[mask]) == mask.sum()  # survivors still train


def test_iterative_pruning_compounds_and_ratio_counts_biases():
    torch.manual_seed(0)
    model = create_model("lenet300_100", num_classes=10, input_shape=(1, 28, 28))
    first = prune_by_magnitude(model, {"fc": 0.5})["fc1"].sum()
    second = prune_by_magnitude(model, {"fc": 0.5})["fc1"].sum()
    assert second < first
    stats = sparsity_stats(model)
    kept = sum(int((m.weight != 0).sum()) for m in (model.fc1, model.fc2, model.fc3))
    total_w = 784 * 300 + 300 * 100 + 100 * 10
    assert stats["compress/kept_pct"] == pytest.approx(100 * kept / total_w)
    assert stats["compress/ratio"] == pytest.approx(266_610 / (kept + 410))


def test_dropout_follows_the_kept_fraction_of_the_next_linear_layer():
    model = create_model("lenet300_100", num_classes=10, input_shape=(1, 28, 28), dropout=0.5)
    masks = prune_by_magnitude(model, {"fc2": 1.0})
    adjust_dropout(model)
    assert model.drop1.p == pytest.approx(0.5 * math.sqrt(masks["fc2"].float().mean().item()))
    assert model.drop2.p == 0.5  # fc3 is not pruned


def test_dropout_uses_the_next_linear_layer_after_it_not_the_one_before():
    """Here the Dropout sits at an odd position among the modules, right after an unpruned
    Linear layer (a pruned one would be followed by its mask's parametrization modules)."""
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8), nn.Dropout(0.5), nn.Linear(8, 4),
                          nn.Dropout(0.0), nn.Linear(4, 2))
    apply_masks(model, {"3": torch.eye(4, 8).bool(), "5": torch.ones(2, 4).bool()})  # 4 of 32
    names = [n for n, _ in model.named_modules()]
    assert names.index("2") % 2 == 1 and names[names.index("2") - 1] == "1"
    changed = adjust_dropout(model)
    assert changed == {"2": pytest.approx(0.5 * math.sqrt(4 / 32))}  # p = 0 stays untouched
    assert model[2].p == pytest.approx(0.5 * math.sqrt(4 / 32)) and model[4].p == 0.0


def test_masks_applied_again_are_intersected_and_stay_zero_or_one():
    layer = nn.Sequential(nn.Linear(3, 2))
    first = torch.tensor([[True, True, False], [True, False, False]])
    second = torch.tensor([[True, False, True], [True, True, False]])
    apply_masks(layer, {"0": first})
    apply_masks(layer, {"0": second})
    mask = find_transform(layer[0], Mask).mask
    assert mask.tolist() == [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]  # first AND second, as 0/1
    assert current_masks(layer)["0"].tolist() == (first & second).tolist()
    assert torch.equal(effective_weight(layer[0]), layer[0].weight * (first & second))


def test_bad_pruning_config():
    with pytest.raises(ValueError, match="quality.fc1=-0.1"):
        PruningConfig(quality={"fc1": -0.1})  # compress/ knows no config keys
    with pytest.raises(ConfigError, match=r"compress.prune: quality.fc1=-0.1"):
        build_config("prune", {"quality": {"fc1": -0.1}})  # the config layer names the key
    model = create_model("lenet5", num_classes=10, input_shape=(1, 28, 28))
    with pytest.raises(ConfigError, match="'fc3' is not a layer of this model; layers: conv1"):
        prune_by_magnitude(model, {"fc3": 1.0})


def test_kept_fraction_mode_keeps_exactly_the_largest():
    torch.manual_seed(0)
    model = create_model("lenet300_100", num_classes=10, input_shape=(1, 28, 28))
    w = model.fc1.weight.detach().clone()
    masks = prune_by_magnitude(model, kept={"fc1": 0.09, "fc": 0.5})
    assert int(masks["fc1"].sum()) == round(0.09 * w.numel())
    assert w.abs()[masks["fc1"]].min() >= w.abs()[~masks["fc1"]].max()
    assert int(masks["fc3"].sum()) == 500
    again = prune_by_magnitude(model, kept={"fc1": 0.05})["fc1"]
    assert int(again.sum()) == round(0.05 * w.numel()) and not (again & ~masks["fc1"]).any()
    with pytest.raises(ConfigError, match="compress.prune: needs exactly one of quality"):
        build_config("prune", {"quality": {"fc1": 1.0}, "kept": {"fc1": 0.5}})
    with pytest.raises(ConfigError, match="compress.prune: kept.fc1=1.5 must be in"):
        build_config("prune", {"kept": {"fc1": 1.5}})


def test_quality_zero_prunes_exact_zeros_only():
    """Keep |w| > q·std strictly: at q = 0 the zeros go, every other weight stays."""
    w = torch.tensor([0.0, 1.0, -2.0, 0.0, 1e-8])
    assert magnitude_mask(w, 0.0).tolist() == [False, True, True, False, True]


@pytest.mark.parametrize("pruned_first", [True, False])
def test_kept_fraction_counts_survivors_only_even_among_zero_weights(pruned_first):
    """round(kept · numel) weights are kept, all among the survivors: an already pruned entry
    never takes the place of a surviving zero weight (whichever order topk breaks ties in)."""
    w = torch.zeros(100)
    alive = torch.zeros(100, dtype=torch.bool)
    pruned, zeros, large = (slice(0, 50), slice(50, 90), slice(90, 100)) if pruned_first else \
        (slice(50, 100), slice(10, 50), slice(0, 10))
    alive[zeros], alive[large] = True, True
    w[large] = torch.arange(1.0, 11.0)
    keep = top_fraction_mask(w, 0.5, alive)
    assert int(keep.sum()) == 50 and not keep[pruned].any() and keep[large].all()


def test_a_pruning_config_cannot_be_changed_after_its_checks():
    config = PruningConfig(kept={"fc1": 0.5})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.kept = {"fc1": 5.0}

"""Deep Compression weight sharing: k-means against a slow reference, centroid gradients."""

import dataclasses

import numpy as np
import pytest
import torch

from quantsurvey.compress.kmeans import SharingConfig, assign_to_codebook, init_centroids, kmeans_1d
from quantsurvey.errors import ConfigError
from quantsurvey.methods import build_config
from quantsurvey.models import create_model
from quantsurvey.nn.masking import Mask, prune_by_magnitude
from quantsurvey.nn.quant import find_transform, latent_weight
from quantsurvey.nn.weight_sharing import SharedCodebook, share_layer, share_weights


def slow_kmeans(values, centroids, iterations):
    """Plain-Python Lloyd iterations: the obvious reference."""
    values, cents = list(map(float, values)), list(map(float, centroids))
    for _ in range(iterations):
        groups = [[] for _ in cents]
        for v in values:
            best = min(range(len(cents)), key=lambda i: (abs(v - cents[i]), i))
            groups[best].append(v)
        new = [sum(g) / len(g) if g else c for g, c in zip(groups, cents, strict=True)]
        if new == cents:
            break
        cents = sorted(new)
    return np.array(cents)


def _reference_start(values, k, init, seed):
    """The §3.2 initialisations written out independently of init_centroids."""
    v = values.double().numpy()
    if init == "linear":  # evenly spaced between min and max
        return np.linspace(v.min(), v.max(), k)
    if init == "density":  # evenly spaced levels of the CDF, ends excluded
        return np.quantile(v, [(i + 1) / (k + 1) for i in range(k)])
    # random: k of the values themselves, the ones the seeded permutation picks first
    pick = torch.randperm(len(values), generator=torch.Generator().manual_seed(seed))[:k]
    return np.sort(v[pick.numpy()])


@pytest.mark.parametrize("init", ["linear", "density", "random"])
def test_kmeans_matches_slow_reference(init):
    gen = torch.Generator().manual_seed(1)
    values = torch.cat([torch.randn(300, generator=gen) * 0.1 - 0.5,
                        torch.randn(200, generator=gen) * 0.05 + 0.4])
    start = _reference_start(values, 8, init, 3)
    np.testing.assert_allclose(
        init_centroids(values, 8, init, torch.Generator().manual_seed(3)).numpy(), start,
        rtol=1e-12, atol=1e-12)
    got, assign = kmeans_1d(values, 8, init, 50, torch.Generator().manual_seed(3))
    want = slow_kmeans(values.double().numpy(), start, 50)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-12)
    # every value sits with its nearest centroid
    dist = (values.double()[:, None] - got[None, :]).abs()
    assert torch.equal(dist.gather(1, assign[:, None]).squeeze(1), dist.min(1).values)


def test_linear_init_spans_min_to_max_and_density_follows_the_cdf():
    v = torch.tensor([-1.0, 0.0, 0.1, 0.2, 3.0])
    assert init_centroids(v, 3, "linear").tolist() == [-1.0, 1.0, 3.0]
    dense = init_centroids(torch.linspace(0, 1, 1001), 4, "density")
    assert torch.allclose(dense, torch.tensor([0.2, 0.4, 0.6, 0.8], dtype=torch.float64))


def test_random_init_picks_distinct_weights_and_depends_on_the_seed():
    values = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    a = init_centroids(values, 15, "random", torch.Generator().manual_seed(1))
    b = init_centroids(values, 15, "random", torch.Generator().manual_seed(1))
    c = init_centroids(values, 15, "random", torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len(a) == 15 and len(torch.unique(a)) == 15 and bool((a[1:] > a[:-1]).all())
    assert set(a.tolist()) <= set(values.double().tolist())  # k of the weights themselves


def test_assignment_is_nearest_centroid():
    cb = torch.tensor([-1.0, 0.0, 2.0])
    assert assign_to_codebook(torch.tensor([-0.6, -0.4, 0.9, 1.1, 5.0]), cb).tolist() == \
        [0, 1, 1, 2, 2]


def test_centroid_gradient_is_the_sum_of_its_members_gradients():
    torch.manual_seed(0)
    model = create_model("lenet300_100", num_classes=10, input_shape=(1, 28, 28))
    share_weights(model, SharingConfig(bits={"fc2": 3}))
    x = torch.randn(16, 1, 28, 28)
    model(x).square().sum().backward()
    # the same loss through a plain weight with the same values gives each weight's gradient
    layer = model.fc2
    plain = layer.weight.detach().clone().requires_grad_(True)
    h = torch.relu(model.fc1(x.flatten(1)))
    out = model.fc3(torch.relu(torch.nn.functional.linear(h.detach(), plain, layer.bias)))
    with torch.no_grad():  # the reference path computes the model's own output
        assert torch.allclose(out, model(x), rtol=1e-5, atol=1e-6)
    out.square().sum().backward()
    codebook = find_transform(layer, SharedCodebook)
    expected = torch.zeros(8, dtype=torch.float64)
    expected.index_add_(0, codebook.assignment.flatten(), plain.grad.flatten().double())
    assert len(codebook.centroids) == 7  # 2^3 − 1 trained values + the reserved zero
    assert set(codebook.assignment.unique().tolist()) == set(range(1, 8))  # all 7 have members
    assert bool((expected[1:] != 0).all())  # so every centroid gets a gradient to compare
    assert torch.allclose(codebook.centroids.grad.double(), expected[1:], rtol=1e-4,
                          atol=1e-6)


def test_shared_layer_keeps_zeros_and_uses_exactly_2_pow_bits_minus_1_values():
    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=10, input_shape=(1, 28, 28))
    # pruned at random places (a magnitude cut would leave a gap around 0 in which linear
    # init's centroids stay empty): the survivors fill the init's range, every cluster is used
    zeros = torch.rand(model.fc1.weight.shape, generator=torch.Generator().manual_seed(0)) < 0.3
    with torch.no_grad():
        model.fc1.weight[zeros] = 0
    share_weights(model, SharingConfig(bits={"fc": 5, "conv": 8}))
    w = model.fc1.weight
    assert torch.equal(w == 0, zeros)
    # a rich weight distribution (tens of thousands of distinct values): every one of the
    # 2^5 − 1 shared values is used, plus the exact zero of the pruned weights
    assert len(torch.unique(w[w != 0])) == 31 and len(torch.unique(w)) == 32
    for name, bits in (("fc1", 5), ("conv2", 8)):
        cents = find_transform(getattr(model, name), SharedCodebook).centroids.detach()
        assert len(cents) == 2 ** bits - 1, name
        assert bool((cents[1:] > cents[:-1]).all()), name  # distinct, sorted: no padding
    conv2 = model.conv2.weight
    assert 240 <= len(torch.unique(conv2)) <= 255  # no zeros here; a rare empty tail cluster


def _uniform(seed):
    """10,000 distinct weights spread evenly over [-1, 1): rich enough to fill every cluster."""
    return torch.rand(50, 200, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 6])
@pytest.mark.parametrize("init", ["linear", "density", "random"])
def test_share_layer_uses_2_pow_bits_minus_1_distinct_values(bits, init):
    layer = torch.nn.Linear(200, 50)
    with torch.no_grad():
        layer.weight.copy_(_uniform(bits))
        layer.weight[:, ::7] = 0  # pruned weights: the reserved zero, not a centroid
    zeros = layer.weight == 0
    transform = share_layer(layer, bits, init, 100, torch.Generator().manual_seed(0))
    k = 2 ** bits - 1
    cents = transform.centroids.detach()
    assert len(cents) == k and bool((cents[1:] > cents[:-1]).all())
    assert not bool((cents == 0).any())
    w = layer.weight.detach()
    assert torch.equal(w == 0, zeros)
    assert len(torch.unique(w[~zeros])) == k
    assert set(transform.assignment[~zeros].unique().tolist()) == set(range(1, k + 1))
    # every surviving weight took the shared value nearest to its original value
    original = _uniform(bits)[~zeros]
    dist = (original[:, None].double() - cents[None, :].double()).abs()
    assert torch.allclose(dist.gather(1, transform.assignment[~zeros][:, None] - 1).squeeze(1),
                          dist.min(1).values, atol=1e-6)


@pytest.mark.parametrize("bits", [3, 4])
def test_fewer_distinct_weights_than_centroids_still_give_a_full_codebook_and_exact_weights(bits):
    w = torch.tensor([[0.5, 0.0, -1.0, 0.5], [2.0, 0.0, 0.5, -1.0]])
    layer = torch.nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(w)
    transform = share_layer(layer, bits, "linear", 10)
    cents = transform.centroids.detach()
    k = 2 ** bits - 1
    assert cents.shape == (k,)  # however few clusters k-means filled (6 here)
    assert cents[-1] == cents[-2] == 2.0  # padded with the largest centroid, never assigned
    assert int(transform.assignment.max()) <= 6  # k-means' own six; the padding is never used
    # the codebook replaces the latent weight: only the centroids train from here on
    assert not latent_weight(layer).requires_grad and transform.centroids.requires_grad
    assert torch.equal(layer.weight, w)  # three distinct values: each one is a centroid
    assert torch.equal(transform.kept(), w != 0)


def test_an_all_pruned_layer_shares_nothing_and_keeps_nothing():
    layer = torch.nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        layer.weight.zero_()
    transform = share_layer(layer, 2, "linear", 10)
    assert transform.centroids.detach().tolist() == [0.0, 0.0, 0.0]
    assert not bool(transform.kept().any()) and bool((layer.weight == 0).all())


def test_masks_of_layers_left_unshared_are_folded_into_their_weights():
    torch.manual_seed(0)
    model = create_model("lenet300_100", num_classes=10, input_shape=(1, 28, 28))
    prune_by_magnitude(model, {"fc1": 1.0, "fc3": 1.0})
    zeros = model.fc1.weight == 0
    share_weights(model, SharingConfig(bits={"fc3": 2}))
    assert find_transform(model.fc1, Mask) is None  # folded: a plain weight with the zeros
    assert torch.equal(model.fc1.weight == 0, zeros) and bool(zeros.any())
    assert find_transform(model.fc3, SharedCodebook) is not None


def test_bad_sharing_config():
    with pytest.raises(ValueError, match="bits.fc=0"):
        SharingConfig(bits={"fc": 0})
    with pytest.raises(ConfigError, match="compress.share: bits.fc=0"):
        build_config("share", {"bits": {"fc": 0}})
    with pytest.raises(ConfigError, match="compress.share: init='kmeans"):
        build_config("share", {"bits": {"fc": 4}, "init": "kmeans++"})


@pytest.mark.parametrize("bits", [1, 2, 8, 16])
def test_bits_from_1_to_16_and_a_single_iteration_are_taken(bits):
    config = SharingConfig(bits={"fc1": bits}, iterations=1)
    assert config.bits == {"fc1": bits} and config.iterations == 1


@pytest.mark.parametrize("bits", [0, 17, -1, 2.0, "4"])
def test_bits_outside_1_to_16_or_not_an_integer_are_refused(bits):
    with pytest.raises(ValueError, match=r"bits.fc1=.* must be an integer in \[1, 16\]"):
        SharingConfig(bits={"fc1": bits})


def test_an_unknown_init_is_refused_even_if_it_sorts_after_random():
    for init in ("uniform", "zeros", "Random"):
        with pytest.raises(ValueError, match=f"unknown init '{init}'"):
            init_centroids(torch.arange(10.0), 3, init)


def test_a_sharing_config_cannot_be_changed_after_its_checks():
    config = SharingConfig(bits={"fc1": 4})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.bits = {"fc1": 40}


@pytest.mark.parametrize("init", ["linear", "density", "random"])
def test_an_init_name_built_at_run_time_is_recognised(init):
    """Names come from configs, not literals: compare them by value (`is` would fail)."""
    values = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0])
    gen = torch.Generator().manual_seed(0)
    built = init_centroids(values, 3, "".join(list(init)), torch.Generator().manual_seed(0))
    assert torch.equal(built, init_centroids(values, 3, init, gen))
    if init == "linear":
        assert built.tolist() == [0.0, 2.0, 4.0]


def test_a_value_halfway_between_two_centroids_goes_to_the_lower_one():
    codebook = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    assert assign_to_codebook(torch.tensor([1.5, 3.0, 1.49, 3.01]), codebook).tolist() == \
        [0, 1, 0, 2]


def test_no_clusters_is_refused():
    with pytest.raises(ValueError, match="k must be >= 1"):
        kmeans_1d(torch.tensor([1.0, 2.0]), 0)


def test_a_cluster_of_one_weight_sits_on_that_weight():
    centroids, assign = kmeans_1d(torch.tensor([1.0, 2.0, 10.0]), 2)
    assert centroids.tolist() == [1.5, 10.0] and assign.tolist() == [0, 0, 1]


def test_zero_iterations_are_refused_and_the_default_is_100():
    with pytest.raises(ValueError, match="iterations=0 must be >= 1"):
        SharingConfig(bits={"fc1": 4}, iterations=0)
    assert SharingConfig(bits={"fc1": 4}).iterations == 100

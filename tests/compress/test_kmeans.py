"""Deep Compression weight sharing: k-means against a slow reference, centroid gradients."""

import numpy as np
import pytest
import torch

from quantsurvey.compress.kmeans import SharingConfig, assign_to_codebook, init_centroids, kmeans_1d
from quantsurvey.errors import ConfigError
from quantsurvey.methods import build_config
from quantsurvey.models import create_model
from quantsurvey.nn.quant import find_transform
from quantsurvey.nn.weight_sharing import SharedCodebook, share_weights


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


@pytest.mark.parametrize("init", ["linear", "density", "random"])
def test_kmeans_matches_slow_reference(init):
    gen = torch.Generator().manual_seed(1)
    values = torch.cat([torch.randn(300, generator=gen) * 0.1 - 0.5,
                        torch.randn(200, generator=gen) * 0.05 + 0.4])
    start = init_centroids(values, 8, init, torch.Generator().manual_seed(3))
    got, assign = kmeans_1d(values, 8, init, 50, torch.Generator().manual_seed(3))
    want = slow_kmeans(values.double().numpy(), start.numpy(), 50)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-12)
    # every value sits with its nearest centroid
    dist = (values.double()[:, None] - got[None, :]).abs()
    assert torch.equal(dist.gather(1, assign[:, None]).squeeze(1), dist.min(1).values)


def test_linear_init_spans_min_to_max_and_density_follows_the_cdf():
    v = torch.tensor([-1.0, 0.0, 0.1, 0.2, 3.0])
    assert init_centroids(v, 3, "linear").tolist() == [-1.0, 1.0, 3.0]
    dense = init_centroids(torch.linspace(0, 1, 1001), 4, "density")
    assert torch.allclose(dense, torch.tensor([0.2, 0.4, 0.6, 0.8], dtype=torch.float64))


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
    torch.nn.functional.linear(h.detach(), plain, layer.bias.detach())
    out = model.fc3(torch.relu(torch.nn.functional.linear(h.detach(), plain, layer.bias)))
    out.square().sum().backward()
    codebook = find_transform(layer, SharedCodebook)
    expected = torch.zeros(8, dtype=torch.float64)
    expected.index_add_(0, codebook.assignment.flatten(), plain.grad.flatten().double())
    assert torch.allclose(codebook.centroids.grad.double(), expected[1:], rtol=1e-4,
                          atol=1e-6)
    assert len(codebook.centroids) == 7  # 2^3 − 1 trained values + the reserved zero


def test_shared_layer_keeps_zeros_and_uses_at_most_2_pow_bits_values():
    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=10, input_shape=(1, 28, 28))
    with torch.no_grad():
        model.fc1.weight[model.fc1.weight.abs() < 0.02] = 0
    zeros = model.fc1.weight == 0
    share_weights(model, SharingConfig(bits={"fc": 5, "conv": 8}))
    w = model.fc1.weight
    assert torch.equal(w == 0, zeros)
    assert len(torch.unique(w)) <= 32
    assert len(torch.unique(model.conv2.weight)) <= 256


def test_bad_sharing_config():
    with pytest.raises(ValueError, match="bits.fc=0"):
        SharingConfig(bits={"fc": 0})
    with pytest.raises(ConfigError, match="compress.share: bits.fc=0"):
        build_config("share", {"bits": {"fc": 0}})
    with pytest.raises(ConfigError, match="compress.share: init='kmeans"):
        build_config("share", {"bits": {"fc": 4}, "init": "kmeans++"})

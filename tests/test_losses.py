"""The named classification losses against slow references, torch's own losses and by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from quantsurvey.errors import ConfigError
from quantsurvey.losses import (
    cross_entropy,
    get_loss,
    list_losses,
    multi_hinge,
    squared_hinge,
)


def _random(seed: int, n: int, c: int, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, c, generator=g) * 2).to(dtype)
    targets = torch.randint(0, c, (n,), generator=g)
    return logits, targets


def _squared_hinge_loop(logits, targets) -> float:
    n, c = logits.shape
    total = 0.0
    for i in range(n):
        for j in range(c):
            t = 1.0 if j == int(targets[i]) else -1.0
            total += max(0.0, 1.0 - t * float(logits[i, j])) ** 2
    return total / (n * c)


def _multi_hinge_loop(logits, targets) -> float:
    n, c = logits.shape
    total = 0.0
    for i in range(n):
        y = int(targets[i])
        s = 0.0
        for j in range(c):
            if j != y:
                s += max(0.0, 1.0 - float(logits[i, y]) + float(logits[i, j]))
        total += s / c
    return total / n


SEEDS = [0, 1, 2, 3]


@pytest.mark.parametrize("c", [10, 2])
@pytest.mark.parametrize("seed", SEEDS)
def test_squared_hinge_matches_loop(seed, c):
    logits, targets = _random(seed, 17, c, torch.float64)
    got = squared_hinge(logits, targets)
    assert got.dim() == 0
    assert got.item() == pytest.approx(_squared_hinge_loop(logits, targets), rel=1e-12)


def test_squared_hinge_by_hand():
    logits = torch.tensor([[0.5, -2.0, 1.5], [2.0, 0.0, -0.5]])
    targets = torch.tensor([2, 1])
    # sample 0, t = (-1, -1, +1): (1+0.5)^2=2.25, max(0, 1-2)^2=0, (1-1.5)->0
    # sample 1, t = (-1, +1, -1): (1+2)^2=9, (1-0)^2=1, (1-0.5)^2=0.25
    # mean over 6 elements: (2.25 + 0 + 0 + 9 + 1 + 0.25) / 6 = 12.5 / 6
    assert squared_hinge(logits, targets).item() == pytest.approx(12.5 / 6, rel=1e-6)


def test_squared_hinge_gradcheck():
    logits, targets = _random(5, 6, 4, torch.float64)
    # keep every margin 1 - t*x away from the kink at 0, where the gradient is not smooth
    t = torch.full_like(logits, -1.0).scatter_(1, targets.unsqueeze(1), 1.0)
    near = (1 - t * logits).abs() < 1e-2
    logits = torch.where(near, logits + 0.1, logits).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: squared_hinge(x, targets), (logits,))


@pytest.mark.parametrize("c", [10, 2])
@pytest.mark.parametrize("seed", SEEDS)
def test_multi_hinge_matches_torch_and_loop(seed, c):
    logits, targets = _random(seed, 17, c, torch.float64)
    got = multi_hinge(logits, targets)
    want = torch.nn.MultiMarginLoss(p=1, margin=1.0)(logits, targets)
    assert got.dim() == 0
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert got.item() == pytest.approx(_multi_hinge_loop(logits, targets), rel=1e-12)


def test_multi_hinge_gradient_matches_torch():
    logits, targets = _random(7, 9, 5, torch.float64)
    a = logits.clone().requires_grad_(True)
    b = logits.clone().requires_grad_(True)
    multi_hinge(a, targets).backward()
    torch.nn.MultiMarginLoss(p=1, margin=1.0)(b, targets).backward()
    torch.testing.assert_close(a.grad, b.grad)


@pytest.mark.parametrize("seed", SEEDS)
def test_cross_entropy_is_bitwise_torch(seed):
    logits, targets = _random(seed, 33, 10)
    assert torch.equal(cross_entropy(logits, targets), F.cross_entropy(logits, targets))
    assert get_loss("cross_entropy") is cross_entropy


def test_list_losses():
    assert list_losses() == sorted(["cross_entropy", "squared_hinge", "multi_hinge"])
    for name in list_losses():
        logits, targets = _random(0, 4, 3)
        assert get_loss(name)(logits, targets).shape == ()


def test_unknown_loss_names_allowed_and_close_match():
    with pytest.raises(ConfigError) as exc:
        get_loss("squared_hnge")
    msg = str(exc.value)
    for name in ("cross_entropy", "squared_hinge", "multi_hinge"):
        assert name in msg
    assert "Did you mean 'squared_hinge'?" in msg

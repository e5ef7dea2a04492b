"""BinaryNet's shift-based arithmetic (§1.5–1.6): AP2, shift-based batch norm (Algorithm 3) and
shift-based AdaMax (Algorithm 4) against hand computations and slow references, and in a binary
network through its 1-bit file and packed inference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from quantsurvey.compress.shift import ap2, ap2_ste
from quantsurvey.config import validate_config
from quantsurvey.errors import ConfigError
from quantsurvey.lit.optim import build_optimizer
from quantsurvey.methods import StageContext, build_methods
from quantsurvey.models import create_model
from quantsurvey.nn.packed_inference import PackedBNNMLP
from quantsurvey.nn.shift_batchnorm import ShiftBatchNorm
from quantsurvey.optim import ShiftAdaMax
from tests.conftest import compose_cfg


def _ap2_by_hand(x: float) -> float:
    return 0.0 if x == 0 else math.copysign(2.0 ** round(math.log2(abs(x))), x)


def test_ap2_is_the_nearest_power_of_two_in_the_log_domain():
    x = torch.tensor([3.0, -0.3, 0.0, 1.5, 0.75, 2.9, -6.0, 1e-3])
    # log2: 1.58, -1.74, -, 0.58, -0.42, 1.54, 2.58, -9.97
    assert ap2(x).tolist() == [4.0, -0.25, 0.0, 2.0, 1.0, 4.0, -8.0, 2.0 ** -10]
    assert [_ap2_by_hand(v) for v in x.tolist()] == ap2(x).tolist()
    w = x.clone().requires_grad_()
    (ap2_ste(w) * torch.arange(8.0)).sum().backward()
    assert w.grad.tolist() == list(range(8))  # straight through


def _shift_bn_reference(x: np.ndarray, gamma, beta, eps) -> tuple[np.ndarray, np.ndarray,
                                                                   np.ndarray]:
    """Algorithm 3 per channel with Python floats: output, batch mean, batch 1/std."""
    x = np.moveaxis(x, 1, -1).reshape(-1, x.shape[1]) if x.ndim == 4 else x
    out, means, invstds = np.empty_like(x), [], []
    for c in range(x.shape[1]):
        col = [float(v) for v in x[:, c]]
        mu = sum(col) / len(col)
        centred = [v - mu for v in col]
        var = sum(v * _ap2_by_hand(v) for v in centred) / len(col)
        invstd = 1 / math.sqrt(var + eps)
        out[:, c] = [_ap2_by_hand(gamma[c]) * v * _ap2_by_hand(invstd) + beta[c]
                     for v in centred]
        means.append(mu)
        invstds.append(invstd)
    return out, np.array(means), np.array(invstds)


@pytest.mark.parametrize("shape", [(16, 3), (4, 3, 5, 5)])
def test_shift_batch_norm_matches_algorithm_3_and_its_running_statistics(shape):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=gen, dtype=torch.float64) * 3 + 1
    bn = ShiftBatchNorm(3, eps=1e-4, momentum=0.125).double()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.7, -1.3, 2.2], dtype=torch.float64))
        bn.bias.copy_(torch.tensor([0.1, 0.0, -0.5], dtype=torch.float64))
    y = bn.train()(x)
    ref, mean, invstd = _shift_bn_reference(x.numpy(), [0.7, -1.3, 2.2], [0.1, 0.0, -0.5], 1e-4)
    got = np.moveaxis(y.detach().numpy(), 1, -1).reshape(-1, 3) if x.dim() == 4 else y.detach()
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.125 * mean, rtol=1e-12)
    np.testing.assert_allclose(bn.running_invstd.numpy(), 0.875 + 0.125 * invstd, rtol=1e-12)
    # evaluation: the running statistics, the scale still a power of two (running 1/std set
    # away from 1, where multiplying and dividing by its AP2 would agree)
    with torch.no_grad():
        bn.running_invstd.copy_(torch.tensor([0.3, 2.6, 5.0], dtype=torch.float64))
    bn.eval()
    z = torch.randn(2, *shape[1:], generator=gen, dtype=torch.float64)
    view = (1, -1) + (1,) * (z.dim() - 2)
    by_hand = (ap2(bn.weight).view(view) * (z - bn.running_mean.view(view))
               * ap2(bn.running_invstd).view(view) + bn.bias.view(view))
    assert torch.equal(bn(z), by_hand)
    assert ap2(bn.running_invstd).tolist() == [0.25, 2.0, 4.0]
    y.sum().backward()
    assert bn.weight.grad is not None and torch.isfinite(bn.weight.grad).all()
    # the defaults: BinaryNet's eps 1e-4 and the Torch7 module's momentum 0.125
    default = ShiftBatchNorm(3)
    assert (default.eps, default.momentum) == (1e-4, 0.125)


def test_shift_adamax_follows_algorithm_4_step_by_step():
    g = [torch.tensor([0.3, -2.0, 0.0]), torch.tensor([-0.1, -1.5, 0.25])]
    p = torch.nn.Parameter(torch.tensor([0.5, -0.2, 0.9]))
    opt = ShiftAdaMax([p], lr=3e-3, betas=(0.875, 0.999))
    m, v, theta = [0.0] * 3, [0.0] * 3, [0.5, -0.2, 0.9]
    for t, grad in enumerate(g, start=1):
        p.grad = grad.clone()
        opt.step()
        step = _ap2_by_hand(3e-3 / (1 - 0.875 ** t))
        for i in range(3):
            m[i] = 0.875 * m[i] + 0.125 * grad[i].item()
            v[i] = _ap2_by_hand(max(0.999 * v[i], abs(grad[i].item())))
            theta[i] -= step * m[i] / (v[i] + 2.0 ** -27)
        np.testing.assert_allclose(p.detach().numpy(), theta, rtol=1e-6, atol=1e-9)
    assert p[2].item() != 0.9  # a zero first gradient still moved it at step 2
    assert math.log2(_ap2_by_hand(3e-3 / 0.125)) == round(math.log2(3e-3 / 0.125))


def test_shift_adamax_edges_found_by_mutation_testing():
    # β1 below ½ (where 1 − β1 and 1 % β1 differ), a gradient near ε (where v + ε and v − ε
    # differ), a parameter without a gradient before one with it
    idle = torch.nn.Parameter(torch.tensor([1.0]))
    p = torch.nn.Parameter(torch.tensor([0.5, -0.2]))
    opt = ShiftAdaMax([idle, p], lr=1e-2, betas=(0.4, 0.5))
    theta, m, v = [0.5, -0.2], [0.0, 0.0], [0.0, 0.0]
    for t, grad in enumerate([[0.3, 2.0 ** -30], [-0.7, 2.0 ** -30]], start=1):
        p.grad = torch.tensor(grad)
        opt.step()
        step = _ap2_by_hand(1e-2 / (1 - 0.4 ** t))
        for i in range(2):
            m[i] = 0.4 * m[i] + 0.6 * grad[i]
            v[i] = _ap2_by_hand(max(0.5 * v[i], abs(grad[i])))
            theta[i] -= step * m[i] / (v[i] + 2.0 ** -27)
        np.testing.assert_allclose(p.detach().numpy(), theta, rtol=1e-6)
    assert idle.item() == 1.0
    assert ShiftAdaMax([p]).defaults == {"lr": 2e-3, "betas": (0.9, 0.999), "eps": 2.0 ** -27}
    ShiftAdaMax([p], betas=(0.0, 0.0))  # β = 0 is allowed
    for bad in ({"lr": 0.0}, {"lr": -1e-3}, {"betas": (1.0, 0.9)}, {"betas": (0.9, 1.0)},
                {"betas": (-0.1, 0.9)}, {"betas": (0.9, 1.5)}):
        with pytest.raises(ValueError, match="must be"):
            ShiftAdaMax([p], **bad)


def test_shift_adamax_from_config_and_refused_with_weight_decay():
    model = torch.nn.Linear(3, 2)
    cfg = validate_config(compose_cfg(["optim=shift_adamax", "optim.weight_decay=0"]))
    assert isinstance(build_optimizer(list(model.parameters()), cfg.optim), ShiftAdaMax)
    with pytest.raises(ConfigError, match="shift_adamax .* has no weight decay"):
        validate_config(compose_cfg(["optim=shift_adamax", "optim.weight_decay=1e-4"]))


def test_a_shift_bn_binary_network_trains_writes_its_file_and_runs_packed(tmp_path):
    params = {"width": 70, "shift_bn": True}
    model = create_model("bnn_mlp", num_classes=10, input_shape=(1, 8, 8), **params)
    assert all(isinstance(bn, ShiftBatchNorm) for bn in model.bns)
    (method,) = build_methods({"bnn": {}})
    probe = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    ctx = StageContext(seed=0, run_dir=tmp_path, probe=lambda: probe,
                       model_info={"name": "bnn_mlp", "num_classes": 10,
                                   "input_shape": [1, 8, 8], "params": params})
    method.before_training(model, ctx)
    opt = ShiftAdaMax(model.parameters(), lr=1e-2)
    x = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    y = torch.randint(0, 10, (64,), generator=torch.Generator().manual_seed(4))
    before = [p.detach().clone() for p in model.parameters()]
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model.train()(x), y).backward()
        opt.step()
        method.after_optimizer_step(model)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    model.eval()
    decoded, info, _ = method.after_training(model, ctx)
    assert info["encoded"]["identical_outputs"] is True
    assert all(isinstance(bn, ShiftBatchNorm) for bn in decoded.bns)
    assert torch.equal(PackedBNNMLP.from_model(decoded)(probe), decoded(probe))

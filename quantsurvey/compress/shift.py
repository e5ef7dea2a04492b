"""Power-of-two approximation for shift-based arithmetic (BinaryNet, Courbariaux, Hubara et al.
2016, §1.5–1.6): AP2(x) = sign(x) · 2^round(log2 |x|), so that multiplying by AP2(x) is a binary
shift. AP2(0) = 0.

- `ap2`: the approximation (no gradient).
- `ap2_ste`: AP2 forward, identity backward (the straight-through estimator), for quantities
  inside a trained layer (shift-based batch norm).
"""

from __future__ import annotations

import torch


def ap2(x: torch.Tensor) -> torch.Tensor:
    """sign(x) · 2^round(log2 |x|), elementwise; 0 stays 0."""
    magnitude = torch.exp2(torch.round(torch.log2(x.abs())))
    return torch.sign(x) * magnitude  # log2(0) = -inf: 2^-inf = 0, sign(0) = 0


class _AP2STE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return ap2(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


def ap2_ste(x: torch.Tensor) -> torch.Tensor:
    """AP2(x) forward; the gradient passes through unchanged."""
    return _AP2STE.apply(x)

"""Magnitude pruning of Han, Pool, Tran, Dally (2015), §3.

A layer keeps the weights whose magnitude exceeds `quality × std`, the standard deviation taken
over the weights that survive so far; masks only ever shrink, so iterative prune → retrain cycles
(§3.4) compound. Retraining uses the surviving weights as they are (§3.3) with a smaller dropout
rate (Eq. 1) and a smaller learning rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class PruningConfig:
    """One prune step, per layer: either `quality` (threshold = q·std, the paper's rule) or
    `kept` (the fraction of the layer's weights to keep, for the paper's published per-layer
    fractions when its quality values are not given)."""

    quality: dict[str, float] = field(default_factory=dict)
    kept: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if bool(self.quality) == bool(self.kept):
            raise ValueError("needs exactly one of quality (layer → q) or kept "
                              "(layer → fraction of weights to keep).")
        for name, q in self.quality.items():
            if not (isinstance(q, int | float) and math.isfinite(q) and q >= 0):
                raise ValueError(f"quality.{name}={q!r} must be a number >= 0.")
        for name, f in self.kept.items():
            if not (isinstance(f, int | float) and 0 < f <= 1):
                raise ValueError(f"kept.{name}={f!r} must be in (0, 1]: the "
                                  f"fraction of weights to keep (sparsity 1 − kept in [0, 1)).")


def magnitude_threshold(weight: torch.Tensor, quality: float,
                        mask: torch.Tensor | None = None) -> float:
    """threshold = quality · std(surviving weights) (Han 2015, §3.3)."""
    alive = weight[mask] if mask is not None else weight.flatten()
    if alive.numel() < 2:
        return 0.0
    return quality * alive.double().std().item()


def magnitude_mask(weight: torch.Tensor, quality: float,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
    """Keep |w| > quality · std(survivors); already pruned weights stay pruned."""
    keep = weight.abs() > magnitude_threshold(weight, quality, mask)
    return keep if mask is None else keep & mask


def top_fraction_mask(weight: torch.Tensor, kept: float,
                      mask: torch.Tensor | None = None) -> torch.Tensor:
    """Keep the round(kept · numel) largest-magnitude weights (within `mask`, if given)."""
    k = round(kept * weight.numel())
    score = weight.abs().flatten().double()
    if mask is not None:
        score = torch.where(mask.flatten(), score, torch.full_like(score, -1.0))
    keep = torch.zeros(weight.numel(), dtype=torch.bool, device=weight.device)
    if k > 0:
        keep[torch.topk(score, k, sorted=False).indices] = True
    keep = keep.view(weight.shape)
    return keep if mask is None else keep & mask


def retrain_dropout(dropout: float, kept_fraction: float) -> float:
    """D_r = D_o · sqrt(C_r / C_o) (Han 2015, Eq. 2): fewer connections, less dropout."""
    if not 0 < kept_fraction <= 1:
        raise ValueError(f"kept fraction {kept_fraction} must be in (0, 1]")
    return dropout * math.sqrt(kept_fraction)

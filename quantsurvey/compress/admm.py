"""ADMM weight pruning of Zhang et al. (2018), §3.

The problem min f(W) s.t. card(W_l) ≤ k_l per layer is split with auxiliary Z_l (the sparse
copies) and scaled duals U_l, and solved by alternating

- W-step (Eq. 6): train on f(W) + Σ_l ρ/2 ‖W_l − Z_l + U_l‖²_F (a few thousand SGD/Adam steps);
- Z-step (Eq. 7): Z_l = Π_{card ≤ k_l}(W_l + U_l), the Euclidean projection: keep the k_l
  largest-magnitude entries, zero the rest;
- U-step (Eq. 8): U_l ← U_l + W_l − Z_l.

Afterwards W is hard-pruned to k_l entries per layer and retrained with the mask fixed (§3.3).
Nothing here knows about Lightning; `quantsurvey.methods.admm` runs it between optimiser steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from quantsurvey.compress.pruning import top_fraction_mask


@dataclass(frozen=True)
class ADMMConfig:
    """`kept`: layer → fraction of its weights allowed non-zero (k_l / numel); `rho`: the
    penalty ρ; `rho_growth`: ρ is multiplied by this after every Z/U update (1: constant), up to
    `rho_max`; `interval`: optimiser steps between Z/U updates (the authors: 5000)."""

    kept: dict[str, float] = field(default_factory=dict)
    rho: float = 1e-4
    rho_growth: float = 1.0
    rho_max: float | None = None
    interval: int = 5000

    def __post_init__(self) -> None:
        if not self.kept:
            raise ValueError("kept must name at least one layer (layer → fraction to keep).")
        for name, f in self.kept.items():
            if not (isinstance(f, int | float) and 0 < f <= 1):
                raise ValueError(f"kept.{name}={f!r} must be in (0, 1]: the fraction of the "
                                 f"layer's weights that may stay non-zero.")
        if not (isinstance(self.rho, int | float) and math.isfinite(self.rho) and self.rho > 0):
            raise ValueError(f"rho={self.rho!r} must be a number > 0.")
        if not (isinstance(self.rho_growth, int | float) and self.rho_growth >= 1):
            raise ValueError(f"rho_growth={self.rho_growth!r} must be >= 1 (1: constant rho).")
        if self.rho_max is not None and not self.rho_max >= self.rho:
            raise ValueError(f"rho_max={self.rho_max!r} must be >= rho={self.rho}.")
        if not (isinstance(self.interval, int) and self.interval >= 1):
            raise ValueError(f"interval={self.interval!r} must be a whole number of optimiser "
                             f"steps >= 1.")


def project_cardinality(v: torch.Tensor, kept: float) -> torch.Tensor:
    """Π_{card ≤ k}(v), k = round(kept · numel): v's k largest-magnitude entries, the rest 0
    (Eq. 7; ties broken by index, so exactly k entries survive)."""
    return v * top_fraction_mask(v, kept).to(v.dtype)


def admm_penalty(weights: dict[str, torch.Tensor], z: dict[str, torch.Tensor],
                 u: dict[str, torch.Tensor], rho: float) -> torch.Tensor:
    """Σ_l ρ/2 ‖W_l − Z_l + U_l‖²_F, the W-step's augmented-Lagrangian term (Eq. 6)."""
    return sum((rho / 2) * (w - z[n] + u[n]).pow(2).sum() for n, w in weights.items())


def relative_residual(w: torch.Tensor, z: torch.Tensor) -> float:
    """Primal residual ‖W − Z‖_F / ‖W‖_F: how far W is from its sparse copy."""
    norm = w.norm().item()
    return (w - z).norm().item() / norm if norm > 0 else 0.0


class ADMMState:
    """Z and U per layer, ρ, and the record of every Z/U update."""

    def __init__(self, weights: dict[str, torch.Tensor], kept: dict[str, float], rho: float):
        self.kept = dict(kept)
        self.rho = rho
        self.z = {n: project_cardinality(w.detach().clone(), kept[n]) for n, w in weights.items()}
        self.u = {n: torch.zeros_like(w.detach()) for n, w in weights.items()}
        self.iterations = 0
        self.history: list[dict[str, float]] = []  # per update: residuals, support changes, ρ

    def update(self, weights: dict[str, torch.Tensor], rho_growth: float = 1.0,
               rho_max: float | None = None) -> dict[str, float]:
        """One Z-step and U-step (Eqs. 7–8) from the current W; then ρ grows. Returns (and
        records) each layer's residual ‖W − Z‖/‖W‖ and the fraction of Z's support that moved."""
        record: dict[str, float] = {"iteration": float(self.iterations + 1), "rho": self.rho}
        with torch.no_grad():
            for n, w in weights.items():
                w = w.detach()
                old_support = self.z[n] != 0
                self.z[n] = project_cardinality(w + self.u[n], self.kept[n])
                self.u[n] = self.u[n] + w - self.z[n]
                new_support = self.z[n] != 0
                moved = (old_support & ~new_support).sum().item()
                record[f"residual/{n}"] = relative_residual(w, self.z[n])
                record[f"support_changed/{n}"] = moved / max(1, int(new_support.sum()))
        self.iterations += 1
        self.rho = self.rho * rho_growth
        if rho_max is not None:
            self.rho = min(self.rho, rho_max)
        self.history.append(record)
        return record

    def to(self, device: torch.device) -> None:
        self.z = {n: t.to(device) for n, t in self.z.items()}
        self.u = {n: t.to(device) for n, t in self.u.items()}

    def state_dict(self) -> dict:
        return {"z": self.z, "u": self.u, "rho": self.rho, "iterations": self.iterations,
                "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        self.z, self.u = dict(state["z"]), dict(state["u"])
        self.rho, self.iterations = float(state["rho"]), int(state["iterations"])
        self.history = list(state["history"])

"""Trained quantization by weight sharing, Deep Compression (Han, Mao, Dally 2016), §3.

One-dimensional k-means over a layer's surviving weights (Eq. 1), with the three centroid
initialisations of §3.2: linear (evenly spaced between min and max: the paper's best), density
(evenly spaced in the weights' CDF) and random (k of the weights). Centroid fine-tuning (§3.3,
Eq. 3) needs no code of its own: a weight read as `codebook[assignment]` gives each centroid the
sum of its members' gradients under autograd.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

INITS = ("linear", "density", "random")


@dataclass(frozen=True)
class SharingConfig:
    """Bits per layer (2**bits − 1 shared values plus the reserved exact zero), init, iterations."""

    bits: dict[str, int] = field(default_factory=dict)
    init: str = "linear"
    iterations: int = 100

    def __post_init__(self) -> None:
        if not self.bits:
            raise ValueError("bits must name at least one layer.")
        for name, b in self.bits.items():
            if not (isinstance(b, int) and 1 <= b <= 16):
                raise ValueError(f"bits.{name}={b!r} must be an integer in "
                                  f"[1, 16].")
        if self.init not in INITS:
            raise ValueError(f"init={self.init!r} is not allowed; choose one "
                              f"of: {', '.join(INITS)}.")
        if self.iterations < 1:
            raise ValueError(f"iterations={self.iterations} must be >= 1.")


def init_centroids(values: torch.Tensor, k: int, init: str,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """k initial centroids for 1-D `values` (Han 2016, §3.2, Fig. 4)."""
    v = values.flatten().double()
    if init == "linear":
        return torch.linspace(v.min().item(), v.max().item(), k, dtype=torch.float64)
    if init == "density":
        q = torch.linspace(0, 1, k + 2, dtype=torch.float64)[1:-1]  # interior CDF levels
        return torch.quantile(v, q)
    if init == "random":
        idx = torch.randperm(v.numel(), generator=generator)[:k]
        return v[idx].sort().values
    raise ValueError(f"unknown init {init!r}; choose one of {INITS}")


def assign_to_codebook(values: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centroid for each value (ties to the lower one); codebook sorted."""
    v = values.flatten().double()
    cb = codebook.double()
    mids = (cb[1:] + cb[:-1]) / 2
    return torch.bucketize(v, mids, right=False)


def kmeans_1d(values: torch.Tensor, k: int, init: str = "linear", iterations: int = 100,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's algorithm in 1-D: minimise Σ_i Σ_{w ∈ c_i} |w − c_i|² (Han 2016, Eq. 1).

    Returns (sorted centroids, float64; assignment of each value). Empty clusters keep their
    previous centroid; stops early once assignments no longer change.
    """
    if k < 1:
        raise ValueError("k must be >= 1")
    v = values.flatten().double()
    centroids = init_centroids(v, min(k, v.numel()), init, generator).sort().values
    assign = assign_to_codebook(v, centroids)
    for _ in range(iterations):
        sums = torch.zeros_like(centroids).index_add_(0, assign, v)
        counts = torch.zeros_like(centroids).index_add_(0, assign, torch.ones_like(v))
        centroids = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
        order = centroids.argsort()
        centroids = centroids[order]
        new = assign_to_codebook(v, centroids)
        if torch.equal(new, assign):
            break
        assign = new
    return centroids, assign

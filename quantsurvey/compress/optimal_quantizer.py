"""MSE-optimal uniform quantizers for unit-variance distributions (Lin et al. 2016 Table 1; the
uniform-step case of Max 1960).

For a b-bit quantizer with step s (levels as in `fixed_point.levels`) and a density p of unit
variance, the mean squared error is

    D(s) = Σ_cells ∫_cell (x − level)² p(x) dx + the two overload tails,

computed here by 8-point Gauss–Legendre quadrature on every cell (a cell holding 0 split there,
where the Laplacian has its kink) and closed forms for the tails. `optimal_step` minimises D
over s (a log-spaced scan, then Brent's method around its best point); SQNR = 10·log10(1 / D)
dB, since the signal power is 1. Lin et al. give 1.596 (1 bit) and 0.996 (2 bits) for the
Gaussian mid-rise quantizer.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
from scipy import optimize, special

DISTRIBUTIONS = ("gaussian", "laplacian", "uniform")
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(8)
_SQRT3 = math.sqrt(3.0)
_LAPLACE_B = 1.0 / math.sqrt(2.0)  # scale of the unit-variance Laplacian


def density(x: np.ndarray, distribution: str) -> np.ndarray:
    """The unit-variance, zero-mean density."""
    if distribution == "gaussian":
        return np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    if distribution == "laplacian":
        return np.exp(-np.abs(x) / _LAPLACE_B) / (2 * _LAPLACE_B)
    if distribution == "uniform":
        return np.where(np.abs(x) <= _SQRT3, 1.0 / (2 * _SQRT3), 0.0)
    raise ValueError(f"distribution={distribution!r}: choose one of {', '.join(DISTRIBUTIONS)}")


def _tail(edge: float, level: float, distribution: str) -> float:
    """∫_edge^∞ (x − level)² p(x) dx for edge ≥ 0 (the upper overload region)."""
    if distribution == "gaussian":
        q, phi = 0.5 * special.erfc(edge / math.sqrt(2)), math.exp(-0.5 * edge * edge) / \
            math.sqrt(2 * math.pi)
        # ∫ x² φ = edge·φ + Q, ∫ x φ = φ, ∫ φ = Q over [edge, ∞)
        return edge * phi + q - 2 * level * phi + level * level * q
    if distribution == "laplacian":
        b, d = _LAPLACE_B, edge - level
        return 0.5 * math.exp(-edge / b) * (d * d + 2 * b * d + 2 * b * b)
    if edge >= _SQRT3:
        return 0.0
    lo, hi = edge - level, _SQRT3 - level
    return (hi ** 3 - lo ** 3) / 3 / (2 * _SQRT3)


def _cells(a: np.ndarray, b: np.ndarray, c: np.ndarray, distribution: str) -> float:
    """Σ ∫_a^b (x − c)² p(x) dx over finite cells (uniform: clipped to its support)."""
    if distribution == "uniform":
        a, b = np.clip(a, -_SQRT3, _SQRT3), np.clip(b, -_SQRT3, _SQRT3)
    straddle = (a < 0) & (b > 0)  # the Laplacian's kink at 0: integrate each side on its own
    if straddle.any():
        zero = np.zeros(int(straddle.sum()))
        a = np.concatenate([a[~straddle], a[straddle], zero])
        b, c = (np.concatenate([b[~straddle], zero, b[straddle]]),
                np.concatenate([c[~straddle], c[straddle], c[straddle]]))
    half, mid = (b - a) / 2, (a + b) / 2
    x = mid[:, None] + half[:, None] * _NODES[None, :]
    values = (x - c[:, None]) ** 2 * density(x, distribution)
    return float((half * (values @ _WEIGHTS)).sum())


def quantizer_mse(step: float, bits: int, distribution: str, zero_level: bool = False) -> float:
    """D(s): the expected squared error of the b-bit uniform quantizer with step `step` on the
    unit-variance `distribution`."""
    density(np.zeros(1), distribution)  # validates the name
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    k = np.arange(low, high + 1, dtype=np.float64)
    lv = (k if zero_level else k + 0.5) * step
    bounds = (lv[:-1] + lv[1:]) / 2  # decision thresholds between neighbouring levels
    inner = _cells(bounds[:-1], bounds[1:], lv[1:-1], distribution) if len(lv) > 2 else 0.0
    # the outer cells run to ±∞: [bound, ∞) with the top level, (−∞, −bound] by symmetry
    # (bits ≥ 1 gives at least two levels, so there is always a bound). The codes run from
    # −2^(b−1) to 2^(b−1) − 1, so the lowest bound is never above 0; the highest is below 0
    # for the 1-bit zero-level quantizer (levels −s, 0), whose top cell then holds [bound, 0).
    upper = _tail(bounds[-1], lv[-1], distribution) if bounds[-1] >= 0 else \
        _cells(np.array([bounds[-1]]), np.array([0.0]), np.array([lv[-1]]), distribution) + \
        _tail(0.0, lv[-1], distribution)
    lower = _tail(-bounds[0], -lv[0], distribution)
    return inner + upper + lower


@cache
def optimal_step(bits: int, distribution: str, zero_level: bool = False) -> float:
    """The step minimising `quantizer_mse` (unit variance): scan 160 log-spaced steps over
    [2^−b / 4, 2^−b · 64], then Brent's method between the best point's neighbours."""
    grid = 2.0 ** -bits * np.geomspace(0.25, 64.0, 160)
    mse = [quantizer_mse(s, bits, distribution, zero_level) for s in grid]
    i = int(np.argmin(mse))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    result = optimize.minimize_scalar(lambda s: quantizer_mse(s, bits, distribution, zero_level),
                                      bounds=(lo, hi), method="bounded",
                                      options={"xatol": lo * 1e-9})
    return float(result.x)


def sqnr_db_of_step(step: float, bits: int, distribution: str, zero_level: bool = False) -> float:
    """10·log10(signal power 1 / D(s))."""
    return 10 * math.log10(1.0 / quantizer_mse(step, bits, distribution, zero_level))


def optimal_table(bits: range = range(1, 17)) -> list[dict]:
    """Rows (distribution, levels, bits, step, SQNR dB, dB per bit) for every distribution and
    both level sets: what results/lin2016_fixed_point/optimal_steps.md tabulates."""
    rows = []
    for dist in DISTRIBUTIONS:
        for zero_level in (False, True):
            for b in bits:
                s = optimal_step(b, dist, zero_level)
                db = sqnr_db_of_step(s, b, dist, zero_level)
                rows.append({"distribution": dist,
                             "levels": "zero_level" if zero_level else "mid_rise",
                             "bits": b, "step": s, "sqnr_db": db, "db_per_bit": db / b})
    return rows

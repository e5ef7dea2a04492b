"""Signed fixed-point quantization (Lin, Talathi, Annapureddy 2016 §3; Anwar, Hwang, Sung 2015).

A b-bit quantizer with step s has 2^b levels and saturates beyond them:

- `zero_level=True` (two's complement, the fixed-point number k·2^−n of hardware): levels
  k·s for k ∈ [−2^(b−1), 2^(b−1) − 1]; zero is a level; rounding to nearest, then saturation;
- `zero_level=False` (the symmetric mid-rise quantizer of Lin et al.'s Table 1, 1 bit = ±s/2):
  levels (k + ½)·s for the same k.
`signed=False` gives the unsigned b-bit range k ∈ [0, 2^b − 1] instead: every level for a
non-negative input (a ReLU's output), where the signed range leaves half its levels unused.

A power-of-two step s = 2^−n is the fixed-point format with n fractional bits
(`power_of_two_step`: n = round(−log2 s), Lin et al. §3.2). Stochastic rounding picks the level
above with probability equal to the distance from the level below (in steps), from an explicit
`torch.Generator`. `fake_quantize` passes the gradient straight through (identity), so float
shadow weights and activations train through the quantizer (Anwar et al.'s retraining).
`l2_optimal_step` is Anwar et al.'s direct quantization: the step that minimises ‖w − Q(w)‖².
"""

from __future__ import annotations

import math

import torch

MAX_BITS = 32
ROUNDINGS = ("nearest", "stochastic")


def check_bits(bits: int, what: str = "bits") -> int:
    """`bits` as an int in [1, 32], else ValueError saying so."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= MAX_BITS:
        raise ValueError(f"{what}={bits!r} is not a bit-width: use an integer from 1 to "
                         f"{MAX_BITS} (or 'float' for unquantized).")
    return bits


def code_range(bits: int, signed: bool = True) -> tuple[int, int]:
    """Smallest and largest integer code of a signed (or unsigned) b-bit quantizer."""
    check_bits(bits)
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def levels(bits: int, step: float, zero_level: bool = True, signed: bool = True
           ) -> torch.Tensor:
    """Every value the quantizer can output, ascending (float64)."""
    low, high = code_range(bits, signed)
    k = torch.arange(low, high + 1, dtype=torch.float64)
    return (k if zero_level else k + 0.5) * step


def quantize_codes(x: torch.Tensor, step: float | torch.Tensor, bits: int,
                   zero_level: bool = True, rounding: str = "nearest",
                   generator: torch.Generator | None = None, signed: bool = True
                   ) -> torch.Tensor:
    """Integer codes k (as x's dtype) with Q(x) = k·s (zero level) or (k + ½)·s (mid-rise)."""
    low, high = code_range(bits, signed)
    scaled = x / step if zero_level else x / step - 0.5
    if rounding == "nearest":
        k = torch.round(scaled)  # ties to even, as torch.round
    elif rounding == "stochastic":
        if generator is None:
            raise ValueError("stochastic rounding needs a seeded torch.Generator")
        noise = torch.rand(x.shape, generator=generator, device=generator.device,
                           dtype=x.dtype).to(x.device)
        k = torch.floor(scaled + noise)
    else:
        raise ValueError(f"rounding={rounding!r}: choose one of {', '.join(ROUNDINGS)}")
    return k.clamp_(low, high)


def quantize(x: torch.Tensor, step: float | torch.Tensor, bits: int, zero_level: bool = True,
             rounding: str = "nearest", generator: torch.Generator | None = None,
             signed: bool = True) -> torch.Tensor:
    """Q(x): the nearest (or stochastically rounded) level, saturated at the range."""
    return code_values(quantize_codes(x, step, bits, zero_level, rounding, generator, signed),
                       step, zero_level)


def code_values(codes: torch.Tensor, step: float | torch.Tensor, zero_level: bool = True
                ) -> torch.Tensor:
    """The level of each code: k·s (zero level) or (k + ½)·s (mid-rise)."""
    return codes * step if zero_level else (codes + 0.5) * step


def fake_quantize(x: torch.Tensor, step: float | torch.Tensor, bits: int,
                  zero_level: bool = True, rounding: str = "nearest",
                  generator: torch.Generator | None = None, signed: bool = True
                  ) -> torch.Tensor:
    """Q(x) forward, identity gradient to x (straight-through estimator)."""
    q = quantize(x.detach(), step, bits, zero_level, rounding, generator, signed)
    return q + (x - x.detach())


def power_of_two_step(step: float) -> tuple[float, int]:
    """The fixed-point step nearest `step` on a log scale: (2^−n, n), n = round(−log2 step)
    fractional bits (negative n: a step above 1)."""
    if not (math.isfinite(step) and step > 0):
        raise ValueError(f"step={step!r} must be a positive number")
    n = round(-math.log2(step))
    return 2.0 ** -n, n


def quantization_mse(x: torch.Tensor, step: float, bits: int, zero_level: bool = True) -> float:
    """mean (x − Q(x))² with round-to-nearest."""
    x = x.detach().double()
    return float(((x - quantize(x, step, bits, zero_level)) ** 2).mean())


def l2_optimal_step(x: torch.Tensor, bits: int, zero_level: bool = True, scan: int = 400,
                    iterations: int = 50) -> float:
    """The step s minimising ‖x − Q_s(x)‖² (Anwar et al. 2015's direct quantization).

    The error is piecewise quadratic in s and not convex, so: a scan of `scan` steps over
    (0, 4·max|x| / 2^(b−1)], then from the best three, alternating minimisation (with the codes
    fixed the best step is closed-form, s = Σ x·c / Σ c², c = k or k + ½; with the step fixed
    the best codes are the nearest levels; each round lowers the error) and Brent's method
    between the scan neighbours; the lowest error found wins."""
    from scipy import optimize

    x = x.detach().double().flatten()
    peak = float(x.abs().max())
    if peak == 0:
        return 1.0
    grid = peak / (1 << (bits - 1)) * 4.0 * torch.arange(1, scan + 1).double() / scan
    errors = [quantization_mse(x, float(s), bits, zero_level) for s in grid]
    order = sorted(range(scan), key=errors.__getitem__)[:3]
    candidates = [(errors[i], float(grid[i])) for i in order]
    for i in order:
        step = float(grid[i])
        for _ in range(iterations):
            c = quantize_codes(x, step, bits, zero_level)
            c = c if zero_level else c + 0.5
            denom = float((c * c).sum())
            new = float((x * c).sum()) / denom if denom else 0.0
            if new <= 0 or abs(new - step) <= 1e-12 * step:
                break
            step = new
        candidates.append((quantization_mse(x, step, bits, zero_level), step))
        lo, hi = float(grid[max(i - 1, 0)]), float(grid[min(i + 1, scan - 1)])
        res = optimize.minimize_scalar(lambda s: quantization_mse(x, s, bits, zero_level),
                                       bounds=(lo, hi), method="bounded",
                                       options={"xatol": lo * 1e-6})
        candidates.append((float(res.fun), float(res.x)))
    return min(candidates)[1]

"""Signal-to-quantization-noise ratios and Lin et al.'s cross-layer bit allocation (Lin,
Talathi, Annapureddy 2016 §3–4).

- SQNR of a quantized tensor: γ = E[x²] / E[(x − Q(x))²], in dB 10·log10 γ.
- Harmonic combination (§4.1, Eq. 13): the output SQNR of a network whose quantizers add
  independent noise is 1/γ_out = Σ_i 1/γ_i (γ_i: the output SQNR with quantizer i alone).
- SQNR grows by κ dB per bit (≈ 6.02 for uniform inputs, ≈ 5 for Gaussian ones at the bit-widths
  that matter).
- Allocation (§4.2, Eq. 15–18): minimising the model size Σ ρ_i β_i (ρ_i: layer i's parameters)
  at a fixed output SQNR gives β_i − β_j = (10/κ)·log10(ρ_j/ρ_i): layers with more parameters get
  fewer bits.
"""

from __future__ import annotations

import math

import torch

from quantsurvey.compress.fixed_point import MAX_BITS


def sqnr_db(reference: torch.Tensor, quantized: torch.Tensor) -> float:
    """10·log10(Σ x² / Σ (x − q)²); +inf when q equals x exactly."""
    x, q = reference.detach().double(), quantized.detach().double()
    noise = float(((x - q) ** 2).sum())
    signal = float((x ** 2).sum())
    if noise == 0:
        return math.inf
    if signal == 0:
        return -math.inf
    return 10 * math.log10(signal / noise)


def harmonic_sqnr_db(sqnrs_db: list[float]) -> float:
    """Output SQNR predicted from per-quantizer SQNRs: 1/γ = Σ 1/γ_i (Lin et al. Eq. 13)."""
    inverse = sum(10 ** (-db / 10) for db in sqnrs_db if db != math.inf)
    return math.inf if inverse == 0 else -10 * math.log10(inverse)


def allocate_bits(params: dict[str, int], anchor_bits: int, kappa: float,
                  min_bits: int = 1, max_bits: int = MAX_BITS) -> dict[str, int]:
    """Per-layer bit-widths by Lin et al. Eq. 18: β_i = β_L + (10/κ)·log10(ρ_L/ρ_i), rounded
    (halves up), where L is the layer with the most parameters and β_L = `anchor_bits`; clipped to
    [min_bits, max_bits]."""
    if not params:
        raise ValueError("no layers to allocate bits to")
    if not (math.isfinite(kappa) and kappa > 0):
        raise ValueError(f"kappa={kappa!r} must be a positive number of dB per bit")
    largest = max(params.values())
    return {name: int(min(max_bits, max(min_bits, math.floor(  # halves round up
        anchor_bits + 10 / kappa * math.log10(largest / rho) + 0.5))))
        for name, rho in params.items()}


def bits_for_target(params: dict[str, int], offsets_db: dict[str, float], target_db: float,
                    kappa: float, max_bits: int = MAX_BITS) -> dict[str, int]:
    """The allocation that meets an output SQNR of `target_db` with the fewest bits: layer i's
    SQNR is modelled as κ·β_i + offsets_db[i] (fitted from measurements), β_i follows Eq. 18,
    and the common level is the smallest integer shift whose harmonic prediction reaches the
    target. ValueError if even `max_bits` everywhere cannot reach it."""
    def predicted(bits: dict[str, int]) -> float:
        return harmonic_sqnr_db([kappa * bits[n] + offsets_db[n] for n in params])

    for anchor in range(1, max_bits + 1):
        bits = allocate_bits(params, anchor, kappa, max_bits=max_bits)
        if predicted(bits) >= target_db:
            return bits
    best = predicted({n: max_bits for n in params})
    raise ValueError(f"an output SQNR of {target_db:.1f} dB cannot be met: {max_bits} bits in "
                     f"every layer give {best:.1f} dB (predicted). Lower the target or raise "
                     f"max_bits.")

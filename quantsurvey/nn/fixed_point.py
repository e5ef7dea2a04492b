"""Fixed point in a layer: `FixedPointWeight` (a weight transform) and `FixedPointQuantizer` (an
activation quantizer for a layer's input or output), both `compress.fixed_point.fake_quantize`
with a fixed step and bit-width held as buffers (saved with the model).

Round-to-nearest everywhere by default. With `rounding='stochastic'` a training-mode forward
draws its noise from a generator seeded by (seed, number of training forwards so far); that
count is a buffer, so a run resumed from a checkpoint draws what the uninterrupted run drew.
Evaluation always rounds to nearest: the model that is tested and exported is deterministic.
"""

from __future__ import annotations

import torch
from torch import nn

from quantsurvey.compress.fixed_point import fake_quantize, quantize_codes
from quantsurvey.nn.quant import WeightTransform


class _FixedPoint(nn.Module):
    def __init__(self, bits: int, step: float, zero_level: bool = True,
                 rounding: str = "nearest", seed: int = 0, signed: bool = True):
        super().__init__()
        self.bits, self.zero_level, self.rounding, self.seed = bits, zero_level, rounding, seed
        self.signed = signed  # False: codes 0 … 2^b − 1 (a non-negative input)
        self.register_buffer("step", torch.tensor(float(step)))
        self.register_buffer("draws", torch.zeros((), dtype=torch.int64))

    def _generator(self, device: torch.device) -> torch.Generator | None:
        if self.rounding != "stochastic" or not self.training:
            return None
        gen = torch.Generator(device=device)
        gen.manual_seed(self.seed * 1_000_003 + int(self.draws))
        self.draws += 1
        return gen

    def _quantize(self, x: torch.Tensor) -> torch.Tensor:
        gen = self._generator(x.device)
        rounding = "stochastic" if gen is not None else "nearest"
        return fake_quantize(x, self.step.to(x.dtype), self.bits, self.zero_level, rounding, gen,
                             self.signed)

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """Round-to-nearest integer codes of x (what the exported file stores)."""
        return quantize_codes(x.detach(), self.step.to(x.dtype), self.bits, self.zero_level,
                              signed=self.signed).to(torch.int64)

    def extra_repr(self) -> str:
        return (f"bits={self.bits}, step={float(self.step):.6g}, zero_level={self.zero_level}, "
                f"rounding={self.rounding}" + ("" if self.signed else ", unsigned"))


class FixedPointWeight(_FixedPoint, WeightTransform):
    """w ↦ Q(w) forward, identity gradient to the latent (float shadow) weight."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return self._quantize(weight)


class FixedPointQuantizer(_FixedPoint):
    """x ↦ Q(x) for a layer's input (`nn.quant.set_input_quantizer`) or output
    (`set_output_quantizer`), identity gradient."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._quantize(x)

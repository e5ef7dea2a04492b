"""Binary weights and activations in a layer (BinaryNet, Courbariaux, Hubara et al. 2016; BWN and
XNOR-Net, Rastegari et al. 2016), over the latent float weight.

- `BinaryWeight`: w ↦ sign(w) (`scaled=False`, BNN) or α·sign(w) with α = mean |w| per output
  filter (`scaled=True`, BWN / XNOR-Net Eq. 4); straight-through gradient cancelled where
  |w| > 1 (BNN §1.3), α differentiated by autograd.
- `BinaryActivation`: an input quantizer x ↦ sign(x), straight-through gradient where |x| ≤ 1;
  stochastic (BNN Eq. 2) in training when `stochastic`, from a generator seeded by (seed, number
  of training forwards so far), a buffer, so a resumed run draws what the uninterrupted one drew.
- `attach_input_scale`: XNOR-Net's K (§3.2): a pre-hook computes K from the layer's real input
  (before the input quantizer binarizes it) and a forward hook multiplies the output by it.
"""

from __future__ import annotations

import torch
from torch import nn

from quantsurvey.compress.binary import binarize_ste, filter_scales, input_scale_map
from quantsurvey.nn.quant import WeightTransform


class _Seeded(nn.Module):
    def __init__(self, stochastic: bool = False, seed: int = 0):
        super().__init__()
        self.stochastic, self.seed = stochastic, seed
        self.register_buffer("draws", torch.zeros((), dtype=torch.int64))

    def _generator(self, device: torch.device) -> torch.Generator | None:
        if not (self.stochastic and self.training):
            return None
        gen = torch.Generator(device=device)
        gen.manual_seed(self.seed * 1_000_003 + int(self.draws))
        self.draws += 1
        return gen


class BinaryWeight(_Seeded, WeightTransform):
    def __init__(self, scaled: bool = False, stochastic: bool = False, seed: int = 0):
        super().__init__(stochastic, seed)
        self.scaled = scaled

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        signs = binarize_ste(weight, self._generator(weight.device))
        return filter_scales(weight) * signs if self.scaled else signs

    def extra_repr(self) -> str:
        return f"scaled={self.scaled}, stochastic={self.stochastic}"


class BinaryActivation(_Seeded):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return binarize_ste(x, self._generator(x.device))

    def extra_repr(self) -> str:
        return f"stochastic={self.stochastic}"


def _remember_scale(layer: nn.Module, inputs: tuple) -> None:
    x = inputs[0]
    if isinstance(layer, nn.Conv2d):
        layer._xnor_k = input_scale_map(x, layer.kernel_size, layer.stride, layer.padding,
                                        layer.dilation)
    else:  # a fully connected layer: one scale per sample, mean |x| over its inputs
        layer._xnor_k = x.abs().mean(dim=-1, keepdim=True)


def _apply_scale(layer: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
    return output * layer._xnor_k


def attach_input_scale(layer: nn.Module) -> None:
    """Multiply the layer's output by K computed from its real input (XNOR-Net §3.2); the
    pre-hook goes first, before an input quantizer's own pre-hook binarizes the input."""
    layer.register_forward_pre_hook(_remember_scale, prepend=True)
    layer.register_forward_hook(_apply_scale)
    layer.has_input_scale = True

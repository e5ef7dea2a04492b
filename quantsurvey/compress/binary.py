"""Binarization (Courbariaux, Hubara et al. 2016, BinaryNet; Rastegari et al. 2016, XNOR-Net).

- `sign_binarize`: x ↦ +1 where x ≥ 0, −1 elsewhere (BNN Eq. 1 with sign(0) = +1, as the paper,
  its Theano code, larq and Brevitas; `torch.sign` would give 0).
- `stochastic_binarize`: +1 with probability σ(x) = clip((x + 1)/2, 0, 1) (BNN Eq. 2), from an
  explicit generator.
- `binarize_ste`: sign forward; backward the straight-through estimator of BNN §1.3,
  g_x = g_q · 1_{|x| ≤ 1} (passed at |x| = 1 exactly, as the paper, Theano and larq).
- `filter_scales`: XNOR-Net / BWN α = mean |W| per output filter (Rastegari Eq. 4).
- `input_scale_map`: XNOR-Net's K = A ⊛ k, A = mean over channels of |I|, k a w×h box filter of
  value 1/(w·h) (Rastegari §3.2, Fig. 2), computed with the convolution's stride and padding.
- `bnn_lr_scale`: BinaryNet's per-layer learning-rate scale 1/sqrt(1.5/(fan_in + fan_out))
  (its code's W_LR_scale; Glorot's bound inverted).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def sign_binarize(x: torch.Tensor) -> torch.Tensor:
    """+1 where x ≥ 0, −1 elsewhere (sign(0) = +1), in x's dtype."""
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


def stochastic_binarize(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """+1 with probability clip((x + 1)/2, 0, 1), else −1 (BNN Eq. 2)."""
    p = ((x + 1) / 2).clamp(0, 1)
    u = torch.rand(x.shape, generator=generator, device=generator.device,
                   dtype=x.dtype).to(x.device)
    return torch.where(u < p, 1.0, -1.0).to(x.dtype)


class _BinarizeSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, generator):
        ctx.save_for_backward(x)
        return sign_binarize(x) if generator is None else stochastic_binarize(x, generator)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype), None


def binarize_ste(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """sign(x) (or stochastic with `generator`) forward; gradient 1_{|x| ≤ 1} backward."""
    return _BinarizeSTE.apply(x, generator)


def filter_scales(weight: torch.Tensor) -> torch.Tensor:
    """α = mean |W| over each output filter (dim 0), shaped to broadcast against W."""
    alpha = weight.abs().mean(dim=tuple(range(1, weight.dim())), keepdim=True)
    return alpha


def input_scale_map(x: torch.Tensor, kernel_size: tuple[int, int], stride, padding,
                    dilation=1) -> torch.Tensor:
    """K = (mean_c |x|) ⊛ (1/(w·h) box of the conv's kernel size), at the conv's stride,
    padding and dilation: one scale per output position, shaped (N, 1, H_out, W_out)."""
    a = x.abs().mean(dim=1, keepdim=True)
    kh, kw = kernel_size
    box = torch.full((1, 1, kh, kw), 1.0 / (kh * kw), dtype=x.dtype, device=x.device)
    return F.conv2d(a, box, stride=stride, padding=padding, dilation=dilation)


def bnn_lr_scale(fan_in: int, fan_out: int) -> float:
    """1 / sqrt(1.5 / (fan_in + fan_out)) (BinaryNet's W_LR_scale; convs: fans include kh·kw)."""
    return 1.0 / math.sqrt(1.5 / (fan_in + fan_out))

"""Ternary weights as weight transforms: Zhu, Han, Mao, Dally 2017 (trained ternary quantization,
TTQ) and its fixed-scale ablation (Li & Liu 2016's TWN scale).

Both threshold the latent weight w of a layer at Δ = t·max|w| (Zhu et al. Eq. 6; the paper
first normalises w by max|w| and thresholds at t, which picks the same weights) into the codes
c ∈ {−1, 0, +1}.

- `TrainedTernary` (TTQ, Eq. 7): w_t = +W_p where c = +1, 0 where c = 0, −W_n where c = −1, with
  W_p, W_n two trained scalars of the layer. Gradients (Eq. 8, 9): ∂L/∂W_p = Σ_{c=+1} ∂L/∂w_t,
  ∂L/∂W_n = −Σ_{c=−1} ∂L/∂w_t (Eq. 8 prints +Σ; w_t = −W_n there, so the derivative is −Σ, as
  the authors' TensorFlow code computes by autograd), and the latent weight receives ∂L/∂w_t
  scaled by W_p, 1 or W_n in the three regions.
- `FixedScaleTernary`: the same codes, one scale α = mean |w| of the kept weights recomputed at
  every forward and never trained, and the plain straight-through gradient (TWN).
"""

from __future__ import annotations

import torch
from torch import nn

from quantsurvey.nn.quant import WeightTransform


def ternary_codes(weight: torch.Tensor, threshold: float) -> torch.Tensor:
    """int8 codes in {−1, 0, +1}: sign(w) where |w| > t·max|w|, else 0 (Zhu et al. Eq. 6)."""
    delta = threshold * weight.detach().abs().max()
    return (weight > delta).to(torch.int8) - (weight < -delta).to(torch.int8)


class _TrainedTernaryFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight, w_p, w_n, threshold: float):
        codes = ternary_codes(weight, threshold)
        pos, neg = codes == 1, codes == -1
        ctx.save_for_backward(pos, neg, w_p, w_n)
        zero = weight.new_zeros(())
        return torch.where(pos, w_p, zero) - torch.where(neg, w_n, zero)

    @staticmethod
    def backward(ctx, grad):
        pos, neg, w_p, w_n = ctx.saved_tensors
        one = grad.new_ones(())
        scale = torch.where(pos, w_p.to(grad.dtype), torch.where(neg, w_n.to(grad.dtype), one))
        zero = grad.new_zeros(())  # masked sums: no host sync on a GPU, unlike grad[pos]
        grad_w_p = torch.where(pos, grad, zero).sum().to(w_p.dtype) \
            if ctx.needs_input_grad[1] else None
        grad_w_n = -torch.where(neg, grad, zero).sum().to(w_n.dtype) \
            if ctx.needs_input_grad[2] else None
        return grad * scale, grad_w_p, grad_w_n, None


def trained_ternary(weight: torch.Tensor, w_p: torch.Tensor, w_n: torch.Tensor,
                    threshold: float) -> torch.Tensor:
    """Zhu et al. Eq. 7 forward and Eq. 8/9 backward (with the sign of ∂L/∂W_n corrected)."""
    return _TrainedTernaryFn.apply(weight, w_p, w_n, threshold)


SCALE_INITS = ("one", "mean")


def initial_scales(weight: torch.Tensor, threshold: float, init: str) -> tuple[float, float]:
    """(W_p, W_n) at the start of training: 'one' as the authors' code (both 1.0; the paper
    scales codes of weights normalised to [−1, 1]), 'mean' the mean |w| of the positive and of
    the negative kept weights (the float layer's magnitude; 1.0 for an empty side)."""
    if init == "one":
        return 1.0, 1.0
    codes = ternary_codes(weight, threshold)
    w = weight.detach()
    pos, neg = w[codes == 1], w[codes == -1]
    return (pos.mean().item() if len(pos) else 1.0, -neg.mean().item() if len(neg) else 1.0)


class TrainedTernary(WeightTransform):
    """w ↦ {−W_n, 0, +W_p} by the threshold t·max|w|; W_p and W_n are this layer's trained
    scalars (parameters `w_p`, `w_n`)."""

    def __init__(self, threshold: float, w_p: float, w_n: float):
        super().__init__()
        self.threshold = threshold
        self.w_p = nn.Parameter(torch.tensor(float(w_p)))
        self.w_n = nn.Parameter(torch.tensor(float(w_n)))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return trained_ternary(weight, self.w_p, self.w_n, self.threshold)

    def scales(self, latent: torch.Tensor | None = None) -> tuple[float, float]:
        return self.w_p.item(), self.w_n.item()

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}"


class FixedScaleTernary(WeightTransform):
    """w ↦ α·c with α = mean |w| over the kept weights (recomputed, not trained), and the
    straight-through gradient to the latent weight."""

    def __init__(self, threshold: float):
        super().__init__()
        self.threshold = threshold

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        codes = ternary_codes(weight, self.threshold)
        alpha = kept_mean_abs(weight, codes)
        # α·c exactly in the forward pass (w − w is exactly 0), gradient 1 to w
        return alpha * codes.to(weight.dtype) + (weight - weight.detach())

    def scales(self, latent: torch.Tensor) -> tuple[float, float]:
        alpha = kept_mean_abs(latent, ternary_codes(latent, self.threshold)).item()
        return alpha, alpha

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}"


def kept_mean_abs(weight: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """mean |w| over the kept (non-zero code) weights; 0 when none is kept."""
    kept = codes != 0
    total = (weight.detach().abs() * kept).sum()
    return total / kept.sum().clamp(min=1)

"""Shift-based batch normalisation (BinaryNet, Courbariaux, Hubara et al. 2016, Algorithm 3):
every multiplication of batch norm replaced by a multiplication with a power of two (a shift).

Training, over the batch (and, for conv features, the spatial positions) per channel:
  μ = mean(x);  C = x − μ;  σ² ≈ mean(C · AP2(C));  x̂ = C · AP2(1 / sqrt(σ² + ε));
  y = AP2(γ) · x̂ + β.
Evaluation uses the running mean and the running 1/sqrt(σ² + ε) (exponential averages with
`momentum`, as the authors' Torch7 module, whose default momentum 0.125 this keeps):
  y = AP2(γ) · (x − μ_run) · AP2(invstd_run) + β.
The paper's algorithm has no β; the Torch7 code adds it, as here. Gradients pass through each AP2
unchanged (straight-through); the authors' Torch7 module writes its backward by hand with the
same power-of-two factors.
"""

from __future__ import annotations

import torch
from torch import nn

from quantsurvey.compress.shift import ap2, ap2_ste


class ShiftBatchNorm(nn.Module):
    """For (N, C) or (N, C, H, W) inputs."""

    def __init__(self, num_features: int, eps: float = 1e-4, momentum: float = 0.125):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_invstd", torch.ones(num_features))

    def _shape(self, x: torch.Tensor) -> tuple[int, ...]:
        return (1, -1) + (1,) * (x.dim() - 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() not in (2, 4):
            raise ValueError(f"ShiftBatchNorm takes (N, C) or (N, C, H, W), got {tuple(x.shape)}")
        dims = [0] if x.dim() == 2 else [0, 2, 3]
        shape = self._shape(x)
        if self.training:
            mean = x.mean(dims)
            centred = x - mean.view(shape)
            var = (centred * ap2_ste(centred)).mean(dims)
            invstd = (var + self.eps).rsqrt()
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_invstd.lerp_(invstd.detach(), self.momentum)
            normalised = centred * ap2_ste(invstd).view(shape)
        else:
            normalised = (x - self.running_mean.view(shape)) * ap2(self.running_invstd).view(shape)
        return ap2_ste(self.weight).view(shape) * normalised + self.bias.view(shape)

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, eps={self.eps}, momentum={self.momentum}"

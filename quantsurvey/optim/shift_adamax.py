"""Shift-based AdaMax (BinaryNet, Courbariaux, Hubara et al. 2016, Algorithm 4): AdaMax whose two
multiplications are replaced by multiplications with powers of two:

  m_t = β1·m_{t−1} + (1 − β1)·g_t;   v_t = max(β2·v_{t−1}, |g_t|)
  θ_t = θ_{t−1} − AP2(α / (1 − β1^t)) · m_t / (AP2(v_t) + ε)

As the authors' Torch7 code (adaMax_binary_clip_shift.lua): the bias correction 1 − β1^t, the
power-of-two step and v_t stored as AP2(v_t) for the next step, ε = 2^−27. α is each parameter
group's `lr` (BinaryNet's per-layer scale included, so AP2 applies to the scaled rate; the Torch7
code multiplies the scale in after the rounding). The paper's defaults are β1 = 1 − 2^−3 and
β2 = 1 − 2^−10; the Torch7 code runs with 0.9 and 0.999, as `optim.betas` sets.
"""

from __future__ import annotations

import torch

from quantsurvey.compress.shift import ap2


class ShiftAdaMax(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 2.0 ** -27):
        if not lr > 0:
            raise ValueError(f"lr={lr} must be positive")
        if not all(0 <= b < 1 for b in betas):
            raise ValueError(f"betas={betas} must be in [0, 1)")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p)
                    state["v"] = torch.zeros_like(p)
                state["step"] += 1
                m, v = state["m"], state["v"]
                m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                torch.maximum(v.mul_(beta2), p.grad.abs(), out=v)
                v.copy_(ap2(v))
                step = ap2(torch.tensor(group["lr"] / (1 - beta1 ** state["step"]))).item()
                p.addcdiv_(m, v + group["eps"], value=-step)
        return loss

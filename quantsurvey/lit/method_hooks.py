"""The Lightning side of the compression methods: runs their hooks between optimiser steps,
logs their state, keeps it in checkpoints; and the config's latent-weight clipping."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch

from quantsurvey.methods import Method
from quantsurvey.nn.layers import weight_layers
from quantsurvey.nn.quant import is_quantized, latent_weight


class MethodHooks(pl.Callback):
    """After every optimiser step: each method's `after_optimizer_step`; every `log_every` steps:
    its `state_to_log` under `compress/<method>/…`. The methods' `state_dict` travels in the
    checkpoint (an interrupted run resumes with the same method state)."""

    def __init__(self, methods: Sequence[Method], log_every: int = 1):
        self.methods = list(methods)
        self.stepping = [m for m in self.methods if m.overrides("after_optimizer_step")]
        self.logging = [m for m in self.methods if m.overrides("state_to_log")] if log_every else []
        self.log_every = log_every

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs,
                           batch, batch_idx: int) -> None:
        for m in self.stepping:
            m.after_optimizer_step(pl_module.model)
        if self.logging and trainer.global_step % self.log_every == 0:
            for m in self.logging:
                state = {f"compress/{m.name}/{k}": float(v)
                         for k, v in m.state_to_log(pl_module.model).items()}
                pl_module.log_dict(state, on_step=True, on_epoch=False)

    def state_dict(self) -> dict[str, Any]:
        return {m.name: m.state_dict() for m in self.methods}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for m in self.methods:
            m.load_state_dict(state_dict.get(m.name, {}))


def needs_method_hooks(methods: Sequence[Method]) -> bool:
    hooks = ("after_optimizer_step", "state_to_log", "state_dict")
    return any(m.overrides(h) for m in methods for h in hooks)


class ClipLatentWeights(pl.Callback):
    """Clamp the latent weights of every transformed layer to [−c, c] after each optimiser
    step (Courbariaux et al. 2016, Alg. 1: binary weights' latent values stay in [−1, 1])."""

    def __init__(self, limit: float):
        self.limit = limit

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs,
                           batch, batch_idx: int) -> None:
        with torch.no_grad():
            for layer in weight_layers(pl_module.model).values():
                if is_quantized(layer):
                    latent_weight(layer).clamp_(-self.limit, self.limit)

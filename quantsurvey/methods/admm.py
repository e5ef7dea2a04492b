"""Zhang et al. 2018: ADMM weight pruning (`compress.admm: {kept: {<layer>|conv|fc: fraction},
rho, rho_growth, rho_max, interval}`). The training module adds the W-step's penalty
Σ ρ/2‖W − Z + U‖² to the loss; every `interval` optimiser steps the Z- and U-steps run
(`quantsurvey.compress.admm`). Z, U and ρ travel in checkpoints, so an interrupted ADMM phase
resumes exactly. The hard prune and masked retraining are the next pipeline stage
(`compress.prune.kept` with the same fractions)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from quantsurvey.compress.admm import ADMMConfig, ADMMState, admm_penalty
from quantsurvey.compress.pruning import top_fraction_mask
from quantsurvey.methods.base import Method, StageContext, register_method
from quantsurvey.nn.layers import resolve_per_layer, weight_layers
from quantsurvey.nn.quant import effective_weight


@register_method
class ADMMPruning(Method):
    name = "admm"
    Config = ADMMConfig

    def __init__(self, config: ADMMConfig):
        super().__init__(config)
        self.state: ADMMState | None = None
        self.steps = 0

    def _weights(self, model: nn.Module) -> dict[str, torch.Tensor]:
        layers = weight_layers(model)
        return {n: effective_weight(layers[n]) for n in self._kept(model)}

    def _kept(self, model: nn.Module) -> dict[str, float]:
        return resolve_per_layer(model, self.config.kept, "compress.admm.kept")

    def check(self, model: nn.Module) -> None:
        self._kept(model)

    def before_training(self, model: nn.Module, ctx: StageContext) -> dict[str, Any]:
        kept = self._kept(model)
        self.state = ADMMState(self._weights(model), kept, self.config.rho)
        return {"admm_kept": kept, "admm_rho": self.config.rho,
                "admm_interval": self.config.interval}

    def regularizer(self, model: nn.Module) -> torch.Tensor:
        weights = self._weights(model)
        first = next(iter(weights.values()))
        if next(iter(self.state.z.values())).device != first.device:
            self.state.to(first.device)  # the model moved to the accelerator after setup
        return admm_penalty(weights, self.state.z, self.state.u, self.state.rho)

    def after_optimizer_step(self, model: nn.Module) -> None:
        self.steps += 1
        if self.steps % self.config.interval == 0:
            self.state.update(self._weights(model), self.config.rho_growth, self.config.rho_max)

    def state_to_log(self, model: nn.Module) -> dict[str, float]:
        last = self.state.history[-1] if self.state.history else {}
        return {k: v for k, v in last.items() if k.startswith(("residual/", "rho", "iteration"))}

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, **(self.state.state_dict() if self.state else {})}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.steps = int(state["steps"])
            self.state.load_state_dict(state)

    def after_training(self, model: nn.Module, ctx: StageContext
                       ) -> tuple[nn.Module, dict[str, Any], dict[str, float]]:
        """Records the ADMM iterations; how much of the hard prune's support (the largest
        weights of W, as the next stage will keep) agrees with Z's, per layer."""
        agreement = {}
        for n, w in self._weights(model).items():
            hard = top_fraction_mask(w.detach(), self.state.kept[n])
            z_support = self.state.z[n].to(w.device) != 0
            agreement[n] = (hard & z_support).sum().item() / max(1, int(hard.sum()))
        info = {"admm_iterations": self.state.iterations, "admm_history": self.state.history,
                "admm_support_agreement": agreement}
        last = self.state.history[-1] if self.state.history else {}
        residuals = [v for k, v in last.items() if k.startswith("residual/")]
        metrics = {"compress/admm_iterations": float(self.state.iterations)}
        if residuals:
            metrics["compress/admm_max_residual"] = max(residuals)
        return model, info, metrics

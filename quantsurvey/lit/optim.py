"""Optimisers, parameter groups and per-epoch learning-rate schedules from config (no Lightning
needed here)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.optim import lr_scheduler

from quantsurvey.config import OptimConfig, SchedConfig


def param_groups(model: nn.Module, methods: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """The trainable parameters in groups, each with an `lr_scale` (default 1).

    Groups come from the methods' `param_groups(model)` and the model's own `param_groups()`
    (e.g. BNN's per-layer scaling); a parameter claimed twice fails; every other trainable
    parameter forms the last group at scale 1. Frozen parameters (latent weights a shared
    codebook no longer reads) are left out.
    """
    groups: list[dict[str, Any]] = []
    sources = [m.param_groups(model) for m in methods]
    if hasattr(model, "param_groups"):
        sources.append(model.param_groups())
    claimed: set[int] = set()
    for source in sources:
        for group in source or []:
            params = [p for p in group["params"] if p.requires_grad]
            if claimed & {id(p) for p in params}:
                raise ValueError("a parameter is in two parameter groups")
            claimed |= {id(p) for p in params}
            groups.append({**group, "params": params, "lr_scale": group.get("lr_scale", 1.0)})
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in claimed]
    if rest:
        groups.append({"params": rest, "lr_scale": 1.0})
    return groups


def build_optimizer(groups: Sequence[dict[str, Any]] | Sequence[torch.Tensor], cfg: OptimConfig
                    ) -> torch.optim.Optimizer:
    """`groups` as from `param_groups` (or a plain list of parameters): each group's lr is
    cfg.lr × its lr_scale."""
    groups = list(groups)
    if groups and not isinstance(groups[0], dict):
        groups = [{"params": groups}]
    params = [{**g, "lr": cfg.lr * g.get("lr_scale", 1.0)} for g in groups]
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas),
                                weight_decay=cfg.weight_decay)
    if cfg.name == "adamax":
        return torch.optim.Adamax(params, lr=cfg.lr, betas=tuple(cfg.betas),
                                  weight_decay=cfg.weight_decay)
    if cfg.name == "shift_adamax":
        from quantsurvey.optim import ShiftAdaMax

        return ShiftAdaMax(params, lr=cfg.lr, betas=tuple(cfg.betas))
    raise ValueError(f"unknown optimizer {cfg.name!r}")


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: SchedConfig, base_lr: float,
                    max_epochs: int) -> lr_scheduler.LRScheduler | None:
    """Stepped once per epoch. With `end_lr` set, the exponential, cosine and linear schedules
    reach `end_lr` after `max_epochs` steps (e.g. BNN's 3e-3 → 3e-7)."""
    if cfg.name == "none":
        return None
    if cfg.name == "step":
        return lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    if cfg.name == "multistep":
        return lr_scheduler.MultiStepLR(optimizer, milestones=list(cfg.milestones), gamma=cfg.gamma)
    if cfg.name == "exponential":
        gamma = cfg.gamma if cfg.end_lr is None else (cfg.end_lr / base_lr) ** (1 / max_epochs)
        return lr_scheduler.ExponentialLR(optimizer, gamma=gamma)
    if cfg.name == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=max_epochs,
                                              eta_min=cfg.end_lr or 0.0)
    if cfg.name == "linear":
        end_factor = (cfg.end_lr or 0.0) / base_lr
        return lr_scheduler.LinearLR(optimizer, start_factor=1.0, end_factor=end_factor,
                                     total_iters=max_epochs)
    raise ValueError(f"unknown schedule {cfg.name!r}")

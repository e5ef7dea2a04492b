"""Optimisers and per-epoch learning-rate schedules from config (no Lightning needed here)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.optim import lr_scheduler

from quantsurvey.config import OptimConfig, SchedConfig


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimConfig
                    ) -> torch.optim.Optimizer:
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas),
                                weight_decay=cfg.weight_decay)
    if cfg.name == "adamax":
        return torch.optim.Adamax(params, lr=cfg.lr, betas=tuple(cfg.betas),
                                  weight_decay=cfg.weight_decay)
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

"""Callbacks shared by every run."""

from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl
import torch


class BatchSeed(pl.Callback):
    """Reseed torch's global RNG before every training batch from (seed, epoch, batch).

    Dropout and stochastic quantizers draw from the global RNG. Other consumers (a DataLoader
    drawing its base seed when an epoch's iterator is created) draw at points that differ between
    an uninterrupted run and a resumed one; reseeding right before each batch makes batch b of
    epoch k identical in both.
    """

    def __init__(self, seed: int):
        self.seed = seed

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch,
                             batch_idx: int) -> None:
        torch.manual_seed((self.seed * 1_000_003 + trainer.current_epoch) * 1_000_033 + batch_idx)


class WallClock(pl.Callback):
    """A run's wall time across interruptions: every checkpoint stores the time spent so far, so
    a resumed run adds the time before it (up to the last checkpoint; the minutes between that
    checkpoint and the crash are lost) to its own."""

    def __init__(self, start: float):
        self.start = start
        self.before_resume = 0.0

    def elapsed(self) -> float:
        return self.before_resume + time.time() - self.start

    def state_dict(self) -> dict[str, Any]:
        return {"elapsed_s": self.elapsed()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.before_resume = float(state_dict.get("elapsed_s", 0.0))

"""Callbacks shared by every run."""

from __future__ import annotations

import pytorch_lightning as pl
import torch


class EpochSeed(pl.Callback):
    """Reseed torch's global RNG at every training epoch from (seed, epoch).

    Dropout and batch augmentation draw from the global RNG; reseeding per epoch makes epoch k
    identical whether the run went straight through or was resumed from epoch k's checkpoint.
    """

    def __init__(self, seed: int):
        self.seed = seed

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        torch.manual_seed(self.seed * 1_000_003 + trainer.current_epoch)

"""What a run keeps across an interruption besides the model and optimiser: the per-batch RNG
seed and the wall clock. The classifier module calls these from its own hooks: every extra
Lightning callback is called at each of about a dozen hooks per step (0.1 ms a step each on a
CPU, measured by scripts/bench_overhead.py), which a small model's step cannot afford."""

from __future__ import annotations

import time
from typing import Any

import torch

from quantsurvey.distributed import rank_seed


def reseed_batch(seed: int, epoch: int, batch_idx: int, device: torch.device,
                 rank: int = 0) -> None:
    """Reseed the generators a training step draws from (dropout, stochastic quantizers) from
    (seed, epoch, batch). Other consumers (a DataLoader drawing its base seed when an epoch's
    iterator is created) draw at points that differ between an uninterrupted run and a resumed
    one; reseeding right before each batch makes batch b of epoch k identical in both.

    Not torch.manual_seed: it also queues a seed call for every lazily initialised device type
    (CUDA, XPU, MTIA) with a formatted stack trace, 0.2 ms a step and a list that grows by three
    entries a step on a machine without them."""
    value = rank_seed((seed * 1_000_003 + epoch) * 1_000_033 + batch_idx, rank)
    torch.default_generator.manual_seed(value)
    if device.type == "cuda":
        torch.cuda.manual_seed(value)


class WallClock:
    """A run's wall time across interruptions: every checkpoint stores the time spent so far, so
    a resumed run adds the time before it (up to the last checkpoint; the minutes between that
    checkpoint and the crash are lost) to its own."""

    def __init__(self, start: float | None = None):
        self.start = time.time() if start is None else start
        self.before_resume = 0.0

    def elapsed(self) -> float:
        return self.before_resume + time.time() - self.start

    def state_dict(self) -> dict[str, Any]:
        return {"elapsed_s": self.elapsed()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.before_resume = float(state_dict.get("elapsed_s", 0.0))

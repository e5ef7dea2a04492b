"""Batch sampler whose order depends only on (seed, epoch): a resumed run sees the same batches."""

from __future__ import annotations

from collections.abc import Iterator

import torch


class EpochBatchSampler:
    """Yields index batches; shuffled by a generator seeded with `seed` and the current epoch.

    Lightning calls `set_epoch` before every training epoch, so epoch k's order is the same in an
    uninterrupted run and in one resumed at epoch k.
    """

    def __init__(self, indices: torch.Tensor, batch_size: int, shuffle: bool, seed: int,
                 drop_last: bool = False):
        self.indices = indices
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.indices)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        order = self.indices
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = order[torch.randperm(len(order), generator=gen)]
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield order[start : start + self.batch_size]

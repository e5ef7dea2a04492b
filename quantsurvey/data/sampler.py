"""Batch sampler whose order depends only on (seed, epoch): a resumed run sees the same batches."""

from __future__ import annotations

from collections.abc import Iterator

import torch


class EpochBatchSampler:
    """Yields index batches; shuffled by a generator seeded with `seed` and the current epoch.

    Lightning calls `set_epoch` before every training epoch, so epoch k's order is the same in an
    uninterrupted run and in one resumed at epoch k.

    Data parallel (`world` > 1): every process draws the same order and takes every `world`-th
    image of each batch from its `rank` on, so the processes together see exactly the batches
    of a single process (`batch_size` is the global batch). In training, a last batch with fewer
    images than processes is dropped (every process must take every step); in evaluation a
    process skips a batch that holds nothing for it, so every image is evaluated once.
    """

    def __init__(self, indices: torch.Tensor, batch_size: int, shuffle: bool, seed: int,
                 drop_last: bool = False, rank: int = 0, world: int = 1):
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not one of the {world} processes")
        self.indices = indices
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.rank, self.world = rank, world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.indices)
        full, rest = divmod(n, self.batch_size)
        if rest == 0 or self.drop_last:
            return full
        if self.shuffle:  # training: every process takes every step
            return full + (rest >= self.world)
        return full + (self.rank < rest)

    def __iter__(self) -> Iterator[torch.Tensor]:
        order = self.indices
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = order[torch.randperm(len(order), generator=gen)]
        for i in range(len(self)):
            batch = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield batch if self.world == 1 else batch[self.rank :: self.world]

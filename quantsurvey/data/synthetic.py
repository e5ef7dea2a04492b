"""A tiny learnable synthetic image set for smoke runs: class prototypes plus noise."""

from __future__ import annotations

import torch

from quantsurvey.data.base import TensorDataModule


def make_synthetic(n: int, num_classes: int, shape: tuple[int, int, int], seed: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    c, h, w = shape
    # blocky prototypes (4×4 cells): a shift by a couple of pixels keeps an image's class
    coarse = torch.randint(40, 216, (num_classes, c, -(-h // 4), -(-w // 4)), generator=gen)
    prototypes = coarse.repeat_interleave(4, 2).repeat_interleave(4, 3)[:, :, :h, :w]
    labels = torch.randint(0, num_classes, (n,), generator=gen)
    noise = torch.randint(-40, 41, (n, *shape), generator=gen)
    return (prototypes[labels] + noise).clamp(0, 255).to(torch.uint8), labels


class SyntheticDataModule(TensorDataModule):
    mean = (0.5,)
    std = (0.25,)

    def __init__(self, *args, num_classes: int = 10,
                 input_shape: tuple[int, int, int] | list[int] = (1, 28, 28),
                 train_size: int = 512, test_size: int = 256, **kwargs):
        kwargs.setdefault("val_size", 128)
        super().__init__(*args, **kwargs)
        self.num_classes = num_classes
        self.input_shape = tuple(input_shape)
        self.mean = self.mean * self.input_shape[0]
        self.std = self.std * self.input_shape[0]
        self.sizes = {True: train_size, False: test_size}

    def load_split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        # same prototypes for both splits (seed 0 draws them first); the noise differs by split
        images, labels = make_synthetic(self.sizes[True] + self.sizes[False], self.num_classes,
                                        self.input_shape, seed=0)
        cut = self.sizes[True]
        return (images[:cut], labels[:cut]) if train else (images[cut:], labels[cut:])

"""Batch-wise augmentation on image tensors (N, C, H, W), drawn from an explicit generator.

Working on whole batches keeps CPU epochs bound by the model, not by per-image Python transforms.
The random draws are made on the CPU with `generator` and moved to the batch's device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

AUGMENTATIONS = ("none", "shift", "crop_flip")


def random_translate(x: torch.Tensor, pad: int, generator: torch.Generator | None = None
                     ) -> torch.Tensor:
    """Shift each image by up to `pad` pixels in each direction, filling with zeros
    (the 'pad and random crop' of the CIFAR ResNet recipe). One gather over the padded images'
    flattened planes: 3–6× faster on a CPU than indexing with four broadcast index tensors."""
    if pad == 0:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy, dx = torch.randint(0, 2 * pad + 1, (2, n), generator=generator).to(x.device)
    rows = dy[:, None, None] + torch.arange(h, device=x.device)[None, :, None]
    cols = dx[:, None, None] + torch.arange(w, device=x.device)[None, None, :]
    flat = (rows * (w + 2 * pad) + cols).view(n, 1, h * w).expand(n, c, h * w)
    return padded.reshape(n, c, -1).gather(2, flat).view(n, c, h, w)


def random_hflip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def augment_batch(x: torch.Tensor, kind: str, pad: int,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """'shift': random translation (digits must not be mirrored); 'crop_flip': translation and
    horizontal flip."""
    if kind == "none":
        return x
    if kind == "shift":
        return random_translate(x, pad, generator)
    if kind == "crop_flip":
        return random_hflip(random_translate(x, pad, generator), generator)
    raise ValueError(f"unknown augmentation {kind!r}; choose one of {AUGMENTATIONS}")

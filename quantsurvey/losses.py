"""Classification losses selectable by name (config key `loss`).

Each takes logits `(N, C)` (float) and integer targets `(N,)` and returns the mean scalar loss.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from quantsurvey.registry import Registry

LOSSES = Registry("loss", "loss")


@LOSSES.register("cross_entropy")
def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy: exactly `torch.nn.functional.cross_entropy(logits, targets)`."""
    return torch.nn.functional.cross_entropy(logits, targets)


@LOSSES.register("squared_hinge")
def squared_hinge(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Squared hinge loss of BinaryNet (Courbariaux, Hubara et al. 2016).

    With t_{ij} = +1 if j = y_i else -1 (one-hot mapped to ±1):

        L = 1/(N·C) · Σ_i Σ_j max(0, 1 − t_{ij} · x_{ij})²

    i.e. the mean over all N·C elements, as in their Theano code
    `T.mean(T.sqr(T.maximum(0., 1. - target*output)))` (not the sum over classes).
    """
    t = torch.full_like(logits, -1.0)
    t.scatter_(1, targets.long().unsqueeze(1), 1.0)
    return torch.clamp(1.0 - t * logits, min=0.0).square().mean()


@LOSSES.register("multi_hinge")
def multi_hinge(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Multi-class hinge loss (Crammer & Singer 2001 style, summed over wrong classes).

    Matches `torch.nn.MultiMarginLoss(p=1, margin=1)`:

        L = 1/N · Σ_i (1/C) · Σ_{j ≠ y_i} max(0, 1 − x_{i,y_i} + x_{ij})
    """
    n, c = logits.shape
    y = targets.long().unsqueeze(1)
    correct = logits.gather(1, y)  # (N, 1)
    margins = torch.clamp(1.0 - correct + logits, min=0.0)
    wrong = torch.ones_like(margins, dtype=torch.bool).scatter_(1, y, False)
    return (margins * wrong).sum() / (n * c)


def list_losses() -> list[str]:
    """The loss names a run may select, sorted."""
    return LOSSES.names()


def get_loss(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss called `name`; an unknown name raises ConfigError listing the allowed ones."""
    return LOSSES.get(name)

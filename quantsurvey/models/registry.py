"""Model registry: `create_model(name, **kw)` and `list_models()`."""

from __future__ import annotations

from typing import Any

from torch import nn

from quantsurvey.errors import ConfigError
from quantsurvey.registry import Registry

MODELS = Registry("model", "model.name")
register_model = MODELS.register


def list_models() -> list[str]:
    return MODELS.names()


def create_model(
    name: str, *, num_classes: int, input_shape: tuple[int, int, int], **params: Any
) -> nn.Module:
    """Build a registered model for `num_classes` outputs and (C, H, W) inputs."""
    return MODELS.create(
        name, "model.params", num_classes=num_classes, input_shape=tuple(input_shape), **params
    )


def require_rgb(name: str, input_shape: tuple[int, int, int], min_side: int) -> None:
    """Refuse inputs that are not 3-channel images of at least `min_side` pixels a side."""
    c, h, w = input_shape
    if c != 3 or min(h, w) < min_side:
        raise ConfigError(f"model {name} needs 3-channel inputs of at least {min_side}×{min_side}"
                          f" pixels; the data set gives {input_shape}.")

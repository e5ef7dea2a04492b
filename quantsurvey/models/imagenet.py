"""ImageNet architectures from torchvision (random initialisation; no weights are downloaded):
AlexNet and VGG-16 (Han 2015/2016) and SqueezeNet v1.0 (Iandola 2016: conv1 96@7×7/2, fire2–9,
dropout 0.5, conv10, global average pool — torchvision's squeezenet1_0 is that network)."""

from __future__ import annotations

from torch import nn
from torchvision import models as tvm

from quantsurvey.errors import ConfigError
from quantsurvey.models.registry import register_model


def _rgb(name: str, input_shape: tuple[int, int, int], min_side: int) -> None:
    c, h, w = input_shape
    if c != 3 or min(h, w) < min_side:
        raise ConfigError(f"model {name} needs 3-channel inputs of at least {min_side}×{min_side}"
                          f" pixels; the data set gives {input_shape}.")


@register_model("alexnet")
def alexnet(num_classes: int, input_shape: tuple[int, int, int], dropout: float = 0.5
            ) -> nn.Module:
    _rgb("alexnet", input_shape, 63)
    return tvm.alexnet(weights=None, num_classes=num_classes, dropout=dropout)


@register_model("vgg16")
def vgg16(num_classes: int, input_shape: tuple[int, int, int], dropout: float = 0.5
          ) -> nn.Module:
    _rgb("vgg16", input_shape, 32)
    return tvm.vgg16(weights=None, num_classes=num_classes, dropout=dropout)


@register_model("squeezenet1_0")
def squeezenet1_0(num_classes: int, input_shape: tuple[int, int, int], dropout: float = 0.5
                  ) -> nn.Module:
    _rgb("squeezenet1_0", input_shape, 32)
    return tvm.squeezenet1_0(weights=None, num_classes=num_classes, dropout=dropout)

"""The BinaryNet architectures (Courbariaux, Hubara et al. 2016), as plain float models; the
`bnn` / `xnor` / `bwn` methods binarize them.

- `bnn_mlp`: MNIST MLP, `hidden` layers of `width` units (4096 in the Theano version, 2048 in
  Torch7), each Linear → BatchNorm → Hardtanh (the binary activation's float stand-in: sign of
  hardtanh(x) is sign(x), and the straight-through gradient is cancelled where |x| > 1 exactly
  as hardtanh's), then Linear → BatchNorm (batch norm after the last layer too).
- `bnn_convnet`: CIFAR-10 2×128C3–MP2–2×256C3–MP2–2×512C3–MP2–2×1024FC–10 (`width` 1.0), and the
  half-width SVHN version (`width` 0.5); each conv / fc followed by BatchNorm and Hardtanh,
  pooling after the second conv of a pair (conv → pool → BN → activation, as the Theano code),
  the last fc followed by BatchNorm only. Convs without bias (batch norm follows).
`shift_bn: true` puts BinaryNet's shift-based batch norm (Algorithm 3,
`quantsurvey/nn/shift_batchnorm.py`) in place of every batch norm of either model.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from quantsurvey.models.registry import register_model
from quantsurvey.nn.shift_batchnorm import ShiftBatchNorm


def _norm(features: int, conv: bool, shift: bool) -> nn.Module:
    if shift:
        return ShiftBatchNorm(features, eps=1e-4)
    # BNN's Theano code uses eps 1e-4 and momentum 0.1 (Lasagne: alpha 0.1)
    return (nn.BatchNorm2d if conv else nn.BatchNorm1d)(features, eps=1e-4)


class DropoutLinear(nn.Linear):
    """A Linear layer that drops its input inside its own forward, i.e. after any input
    quantizer's pre-hook: BinaryNet's Theano MLP drops the binary activations themselves
    (inputs in {-2, 0, +2} with inverted scaling), so a dropped unit is 0, never sign(0) = +1."""

    def __init__(self, in_features: int, out_features: int, dropout: float):
        super().__init__(in_features, out_features, bias=False)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(self.drop(x), self.weight, self.bias)


class BNNMLP(nn.Module):
    def __init__(self, num_classes: int, input_shape: tuple[int, int, int], width: int = 2048,
                 hidden: int = 3, dropout: float = 0.0, dropout_in: float = 0.0,
                 shift_bn: bool = False):
        super().__init__()
        sizes = [math.prod(input_shape), *[width] * hidden, num_classes]
        # the first layer's real input is dropped before it (`drop_in`); every later layer drops
        # its (binarized, under bnn) input itself. Theano MLP: 0.2 on the input, 0.5 hidden
        self.fcs = nn.ModuleList(
            nn.Linear(a, b, bias=False) if i == 0 else DropoutLinear(a, b, dropout)
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)))
        self.bns = nn.ModuleList(_norm(b, False, shift_bn) for b in sizes[1:])
        self.drop_in = nn.Dropout(dropout_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop_in(x.flatten(1))
        for i, (fc, bn) in enumerate(zip(self.fcs, self.bns, strict=True)):
            x = bn(fc(x))
            if i < len(self.fcs) - 1:
                x = nn.functional.hardtanh(x)
        return x


class BNNConvNet(nn.Module):
    def __init__(self, num_classes: int, input_shape: tuple[int, int, int], width: float = 1.0,
                 shift_bn: bool = False):
        super().__init__()
        channels, height, w = input_shape
        c = [int(round(n * width)) for n in (128, 256, 512)]
        plan = [channels, c[0], c[0], c[1], c[1], c[2], c[2]]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1, bias=False)
                                   for a, b in zip(plan[:-1], plan[1:], strict=True))
        self.conv_bns = nn.ModuleList(_norm(b, True, shift_bn) for b in plan[1:])
        fc_in = c[2] * (height // 8) * (w // 8)
        hidden = int(round(1024 * width))
        sizes = [fc_in, hidden, hidden, num_classes]
        self.fcs = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in zip(sizes[:-1],
                                                                            sizes[1:],
                                                                            strict=True))
        self.fc_bns = nn.ModuleList(_norm(b, False, shift_bn) for b in sizes[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, (conv, bn) in enumerate(zip(self.convs, self.conv_bns, strict=True)):
            x = conv(x)
            if i % 2 == 1:
                x = nn.functional.max_pool2d(x, 2)
            x = nn.functional.hardtanh(bn(x))
        x = x.flatten(1)
        for i, (fc, bn) in enumerate(zip(self.fcs, self.fc_bns, strict=True)):
            x = bn(fc(x))
            if i < len(self.fcs) - 1:
                x = nn.functional.hardtanh(x)
        return x


@register_model("bnn_mlp")
def bnn_mlp(num_classes: int, input_shape: tuple[int, int, int], width: int = 2048,
            hidden: int = 3, dropout: float = 0.0, dropout_in: float = 0.0,
            shift_bn: bool = False) -> nn.Module:
    return BNNMLP(num_classes, input_shape, width, hidden, dropout, dropout_in, shift_bn)


@register_model("bnn_convnet")
def bnn_convnet(num_classes: int, input_shape: tuple[int, int, int],
                width: float = 1.0, shift_bn: bool = False) -> nn.Module:
    return BNNConvNet(num_classes, input_shape, width, shift_bn)

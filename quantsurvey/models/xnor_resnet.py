"""ResNet-18 in XNOR-Net's block order (Rastegari et al. 2016, Sec. 3.3 and Fig. 3): every conv
of a residual block is preceded by its batch norm and activation, BN → activation → conv, so
that the `xnor` method's binary input (sign of the conv's input) is sign(BN(x)); in the usual
conv → BN → ReLU order that input is a ReLU output and its sign is +1 everywhere.

The activation is hardtanh (its sign is sign(x); its gradient is the straight-through
estimator's, cancelled where |x| > 1), so float, BWN and XNOR-Net train the same network:
- stem (float in BWN/XNOR: the first layer): conv 64@7×7/2 → BN → ReLU → max-pool 3/2;
- 4 stages of 2 blocks (64, 128, 256, 512 channels; strides 1, 2, 2, 2); a block:
  a = hardtanh(BN(x)); y = conv3×3(a) (stride s); y = conv3×3(hardtanh(BN(y)));
  out = y + (x, or conv1×1/s(a) where the shape changes);
- head: BN → ReLU → global average pool → fc (float in BWN/XNOR: the last layer).
Convs without bias (batch norm follows or precedes). The global pool is a mean over the
spatial axes (deterministic on CUDA, unlike adaptive_avg_pool2d's backward).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from quantsurvey.models.registry import register_model, require_rgb


class XnorOrderBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        # definition order = data-flow order (the methods' "first" / "last" follow it)
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = (nn.Conv2d(cin, cout, 1, stride, bias=False)
                         if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.hardtanh(self.bn1(x))
        y = self.conv2(F.hardtanh(self.bn2(self.conv1(a))))
        return y + (x if self.shortcut is None else self.shortcut(a))


class XnorResNet18(nn.Module):
    def __init__(self, num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        plan = [(64, 64, 1), (64, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2),
                (256, 256, 1), (256, 512, 2), (512, 512, 1)]
        self.blocks = nn.Sequential(*(XnorOrderBlock(a, b, s) for a, b, s in plan))
        self.bn_out = nn.BatchNorm2d(512)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        x = F.relu(self.bn_out(self.blocks(x)))
        return self.fc(x.mean((2, 3)))


@register_model("resnet18_xnor")
def resnet18_xnor(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    require_rgb("resnet18_xnor", input_shape, 32)
    return XnorResNet18(num_classes)

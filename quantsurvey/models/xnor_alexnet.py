"""BN-AlexNet in XNOR-Net's block order (Rastegari et al. 2016, Sec. 3.3 and Fig. 2: a binary
block is BN → binary activation → binary conv → pool; their AlexNet has batch norm and no LRN).

The activation is hardtanh (its sign is sign(x); its gradient is the straight-through
estimator's), so float, BWN and XNOR-Net train the same network, and the `xnor` method's binary
input of every inner layer is sign(BN(x)):
- conv1 (float in BWN/XNOR, the first layer): 96@11×11/4 → BN → ReLU → max-pool 3/2;
- conv2 … conv5, each BN → hardtanh → conv (256@5×5, 384@3×3, 384@3×3, 256@3×3), max-pool 3/2
  after conv2 and conv5;
- the pooled map flattened (256×6×6 at 224 px, as AlexNet; 256×2×2 at Imagewoof's 112 px: fc6
  is sized from the input), then fc6, fc7 as BN → hardtanh → fc (4096 units);
- head: BN → ReLU → fc8 (float, the last layer).
Convs and fcs without bias where a batch norm follows; 62.4M parameters at 224 px and 1000
classes.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from quantsurvey.models.registry import register_model, require_rgb


def _pooled(size: int, kernel: int, stride: int, pad: int = 0) -> int:
    return (size + 2 * pad - kernel) // stride + 1


class XnorAlexNet(nn.Module):
    def __init__(self, num_classes: int, height: int, width: int):
        super().__init__()
        side = [_pooled(_pooled(_pooled(_pooled(n, 11, 4, 2), 3, 2), 3, 2), 3, 2)
                for n in (height, width)]
        flat = 256 * side[0] * side[1]
        # definition order = data-flow order (the methods' "first" / "last" follow it)
        self.conv1 = nn.Conv2d(3, 96, 11, 4, 2, bias=False)
        self.bn1 = nn.BatchNorm2d(96)
        plan = [(96, 256, 5, 2), (256, 384, 3, 1), (384, 384, 3, 1), (384, 256, 3, 1)]
        self.conv_bns = nn.ModuleList(nn.BatchNorm2d(cin) for cin, _, _, _ in plan)
        self.convs = nn.ModuleList(nn.Conv2d(cin, cout, k, 1, p, bias=False)
                                   for cin, cout, k, p in plan)
        self.fc_bns = nn.ModuleList([nn.BatchNorm1d(flat), nn.BatchNorm1d(4096)])
        self.fcs = nn.ModuleList([nn.Linear(flat, 4096, bias=False),
                                  nn.Linear(4096, 4096, bias=False)])
        self.bn_out = nn.BatchNorm1d(4096)
        self.fc8 = nn.Linear(4096, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2)
        for i, (bn, conv) in enumerate(zip(self.conv_bns, self.convs, strict=True)):
            x = conv(F.hardtanh(bn(x)))
            if i in (0, 3):
                x = F.max_pool2d(x, 3, 2)
        x = x.flatten(1)
        for bn, fc in zip(self.fc_bns, self.fcs, strict=True):
            x = fc(F.hardtanh(bn(x)))
        return self.fc8(F.relu(self.bn_out(x)))


@register_model("alexnet_xnor")
def alexnet_xnor(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    require_rgb("alexnet_xnor", input_shape, 63)  # conv1 11/4 and three 3/2 poolings
    return XnorAlexNet(num_classes, *input_shape[1:])

"""The CIFAR-10 ResNets of He et al. (2016, Sec. 4.2): ResNet-20/32/44/56, the models of Zhu et
al.'s TTQ CIFAR table. 6n+2 layers: a 3×3 conv with 16 filters, three stages of n basic blocks
(two 3×3 convs each) with 16, 32, 64 filters (the first block of stages 2 and 3 halves the
feature map with stride 2), global average pooling and a fully connected layer. Shortcuts are
identities, with option A where the shape changes (subsample by 2, zero-pad the new channels:
no parameters), so the counts are the paper's Table 6: 0.27M, 0.46M, 0.66M, 0.85M."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from quantsurvey.models.registry import register_model

DEPTHS = (20, 32, 44, 56)


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = planes - in_planes  # option A: the extra channels of the shortcut are zeros
        self.stride = stride

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1 and self.pad == 0:
            return x
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, depth: int, num_classes: int, input_shape: tuple[int, int, int]):
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"CIFAR ResNet depth {depth}: choose one of {DEPTHS}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(input_shape[0], 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks, in_planes = [], 16
        for stage, planes in enumerate((16, 32, 64)):
            for i in range(n):
                blocks.append(BasicBlock(in_planes, planes, 2 if stage > 0 and i == 0 else 1))
                in_planes = planes
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():  # He et al. 2015's initialisation, as the paper used
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(torch.relu(self.bn1(self.conv1(x))))
        # global average pooling as a mean: adaptive_avg_pool2d's CUDA backward has no
        # deterministic implementation, so deterministic runs on a GPU would stop there
        return self.fc(x.mean(dim=(2, 3)))


def _register(depth: int) -> None:
    @register_model(f"resnet{depth}")
    def build(num_classes: int, input_shape: tuple[int, int, int]) -> CifarResNet:
        return CifarResNet(depth, num_classes, input_shape)

    build.__name__ = f"resnet{depth}"


for _depth in DEPTHS:
    _register(_depth)

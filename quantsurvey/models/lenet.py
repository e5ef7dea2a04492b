"""LeNet-300-100 and the Caffe LeNet-5, the MNIST models of Han et al. (2015, 2016)."""

from __future__ import annotations

import math

import torch
from torch import nn

from quantsurvey.models.registry import register_model


class LeNet300100(nn.Module):
    """784-300-100-10 fully connected network with ReLU (Han et al. 2015, Table 1)."""

    def __init__(self, num_classes: int, input_shape: tuple[int, int, int], dropout: float = 0.0):
        super().__init__()
        # defined in data-flow order: each Dropout comes right before the layer it feeds, which
        # is how Han's dropout rule finds the connections it scales with
        self.fc1 = nn.Linear(math.prod(input_shape), 300)
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(300, 100)
        self.drop2 = nn.Dropout(dropout)
        self.fc3 = nn.Linear(100, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop1(torch.relu(self.fc1(x.flatten(1))))
        x = self.drop2(torch.relu(self.fc2(x)))
        return self.fc3(x)


class LeNet5(nn.Module):
    """Caffe LeNet-5: conv 20@5×5, max-pool 2, conv 50@5×5, max-pool 2, fc 500, fc classes."""

    def __init__(self, num_classes: int, input_shape: tuple[int, int, int], dropout: float = 0.0):
        super().__init__()
        channels, height, width = input_shape
        self.conv1 = nn.Conv2d(channels, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        feat_h, feat_w = ((height - 4) // 2 - 4) // 2, ((width - 4) // 2 - 4) // 2
        self.fc1 = nn.Linear(50 * feat_h * feat_w, 500)
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.max_pool2d(self.conv1(x), 2)
        x = torch.max_pool2d(self.conv2(x), 2)
        x = self.drop1(torch.relu(self.fc1(x.flatten(1))))
        return self.fc2(x)


@register_model("lenet300_100")
def lenet300_100(num_classes: int, input_shape: tuple[int, int, int], dropout: float = 0.0):
    return LeNet300100(num_classes, input_shape, dropout)


@register_model("lenet5")
def lenet5(num_classes: int, input_shape: tuple[int, int, int], dropout: float = 0.0):
    return LeNet5(num_classes, input_shape, dropout)

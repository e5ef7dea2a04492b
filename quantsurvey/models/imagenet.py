"""ImageNet architectures (random initialisation; no weights are downloaded): the Caffe BVLC
AlexNet of Han 2015/2016's tables (`alexnet_caffe`), torchvision's AlexNet (`alexnet`, the
"one weird trick" variant: 64/192/384/256/256 filters, no LRN, no groups) and VGG-16
(Han 2015/2016), and SqueezeNet v1.0 (Iandola 2016: conv1 96@7×7/2, fire2–9,
dropout 0.5, conv10, global average pool — torchvision's squeezenet1_0 is that network)."""

from __future__ import annotations

import torch
from torch import nn
from torchvision import models as tvm

from quantsurvey.models.registry import register_model, require_rgb


class AlexNetCaffe(nn.Module):
    """The Caffe BVLC AlexNet (models/bvlc_alexnet), the network of Han et al. 2015 Tables 1 and
    4 and Deep Compression Table 4: 60,965,224 parameters with 1000 classes (≈ 61M, 243.9 MB
    float32), layers named as in the papers' per-layer tables.

    conv1 96@11×11/4, ReLU, LRN, max-pool 3/2; conv2 256@5×5 pad 2 groups 2, ReLU, LRN,
    max-pool 3/2; conv3 384@3×3 pad 1; conv4 384@3×3 pad 1 groups 2; conv5 256@3×3 pad 1
    groups 2, max-pool 3/2 (ReLU after every conv); fc6 9216→4096, ReLU, dropout; fc7
    4096→4096, ReLU, dropout; fc8 4096→classes. LRN is Caffe's across-channel one: size 5,
    alpha 1e-4 (divided by the size, as in Caffe), beta 0.75, k 1.

    Dropout follows Caffe's data flow: drop6 acts on fc6's output and feeds fc7, drop7 feeds
    fc8 (torchvision's AlexNet instead drops fc6's input and fc7's input). Each Dropout is
    defined right before the Linear layer it feeds, which is how Han's dropout rule finds the
    connections it scales with.

    Caffe fed 227×227 crops, where pool5's output is already 6×6 and the adaptive average pool
    before fc6 is a no-op. It is there so that 224×224 crops (this package's ImageNet loader:
    pool5 gives 5×5, averaged in overlapping windows to 6×6) and small test images (≥ 67 px)
    also reach fc6 with 256·6·6 = 9216 features.
    """

    def __init__(self, num_classes: int, dropout: float = 0.5):
        super().__init__()
        # definition order = data-flow order
        self.conv1 = nn.Conv2d(3, 96, 11, stride=4)
        self.norm1 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
        self.conv2 = nn.Conv2d(96, 256, 5, padding=2, groups=2)
        self.norm2 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
        self.conv3 = nn.Conv2d(256, 384, 3, padding=1)
        self.conv4 = nn.Conv2d(384, 384, 3, padding=1, groups=2)
        self.conv5 = nn.Conv2d(384, 256, 3, padding=1, groups=2)
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.fc6 = nn.Linear(256 * 6 * 6, 4096)
        self.drop6 = nn.Dropout(dropout)
        self.fc7 = nn.Linear(4096, 4096)
        self.drop7 = nn.Dropout(dropout)
        self.fc8 = nn.Linear(4096, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = nn.functional.max_pool2d
        x = pool(self.norm1(torch.relu(self.conv1(x))), 3, 2)
        x = pool(self.norm2(torch.relu(self.conv2(x))), 3, 2)
        x = torch.relu(self.conv3(x))
        x = torch.relu(self.conv4(x))
        x = pool(torch.relu(self.conv5(x)), 3, 2)
        x = self.avgpool(x).flatten(1)
        x = self.drop6(torch.relu(self.fc6(x)))
        x = self.drop7(torch.relu(self.fc7(x)))
        return self.fc8(x)


@register_model("alexnet_caffe")
def alexnet_caffe(num_classes: int, input_shape: tuple[int, int, int], dropout: float = 0.5
                  ) -> nn.Module:
    require_rgb("alexnet_caffe", input_shape, 67)  # 67 px: pool5 gives 1×1
    return AlexNetCaffe(num_classes, dropout)


@register_model("alexnet")
def alexnet(num_classes: int, input_shape: tuple[int, int, int], dropout: float = 0.5
            ) -> nn.Module:
    require_rgb("alexnet", input_shape, 63)
    return tvm.alexnet(weights=None, num_classes=num_classes, dropout=dropout)


@register_model("vgg16")
def vgg16(num_classes: int, input_shape: tuple[int, int, int], dropout: float = 0.5
          ) -> nn.Module:
    require_rgb("vgg16", input_shape, 32)
    return tvm.vgg16(weights=None, num_classes=num_classes, dropout=dropout)


@register_model("squeezenet1_0")
def squeezenet1_0(num_classes: int, input_shape: tuple[int, int, int], dropout: float = 0.5
                  ) -> nn.Module:
    require_rgb("squeezenet1_0", input_shape, 32)
    return tvm.squeezenet1_0(weights=None, num_classes=num_classes, dropout=dropout)

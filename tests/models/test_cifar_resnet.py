"""He et al. 2016's CIFAR ResNets: the paper's layer and parameter counts (Table 6), option-A
shortcuts (no parameters, zero-padded channels), and the shapes through the stages."""

import pytest
import torch
from torch import nn

from quantsurvey.models import create_model
from quantsurvey.models.cifar_resnet import BasicBlock


@pytest.mark.parametrize("depth,millions", [(20, 0.27), (32, 0.46), (44, 0.66), (56, 0.85)])
def test_depth_and_parameter_count_match_the_paper(depth, millions):
    model = create_model(f"resnet{depth}", num_classes=10, input_shape=(3, 32, 32))
    weighted = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(weighted) == depth  # 6n + 2 weighted layers; shortcuts have none
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == millions
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_option_a_shortcut_subsamples_and_zero_pads():
    block = BasicBlock(16, 32, stride=2)
    x = torch.randn(1, 16, 8, 8)
    s = block.shortcut(x)
    assert s.shape == (1, 32, 4, 4)
    assert torch.equal(s[:, 8:24], x[:, :, ::2, ::2])  # the old channels, in the middle
    assert s[:, :8].abs().sum() == 0 and s[:, 24:].abs().sum() == 0
    assert torch.equal(BasicBlock(16, 16, stride=1).shortcut(x), x)


def test_unknown_depth_is_refused():
    from quantsurvey.models.cifar_resnet import CifarResNet

    with pytest.raises(ValueError, match="depth 18"):
        CifarResNet(18, 10, (3, 32, 32))

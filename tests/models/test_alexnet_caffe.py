"""The Caffe BVLC AlexNet of Han et al. 2015/2016's AlexNet tables."""

import pytest
import torch
from torch import nn

from quantsurvey.errors import ConfigError
from quantsurvey.models import create_model

# Han 2015 Table 4 / Deep Compression Table 4: weights per layer (biases not counted)
WEIGHTS = {"conv1": 34_848, "conv2": 307_200, "conv3": 884_736, "conv4": 663_552,
           "conv5": 442_368, "fc6": 37_748_736, "fc7": 16_777_216, "fc8": 4_096_000}


@pytest.fixture(scope="module")
def model():
    return create_model("alexnet_caffe", num_classes=1000, input_shape=(3, 224, 224)).eval()


def test_weight_layers_are_named_and_sized_as_in_the_papers(model):
    layers = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)}
    assert {n: m.weight.numel() for n, m in layers.items()} == WEIGHTS
    assert list(layers) == list(WEIGHTS)  # definition order = data-flow order


def test_total_is_61m_parameters_244_mb(model):
    total = sum(p.numel() for p in model.parameters())
    assert total == 60_965_224
    assert round(total * 4 / 1e6, 1) == 243.9


def test_conv2_4_5_are_split_in_two_groups(model):
    assert {n: model.get_submodule(n).groups for n in ("conv1", "conv2", "conv3", "conv4",
                                                       "conv5")} == {
        "conv1": 1, "conv2": 2, "conv3": 1, "conv4": 2, "conv5": 2}


def test_lrn_follows_conv1_and_conv2(model):
    for name in ("norm1", "norm2"):
        lrn = model.get_submodule(name)
        assert isinstance(lrn, nn.LocalResponseNorm)
        assert (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 1e-4, 0.75, 1.0)


def test_each_dropout_is_defined_right_before_the_linear_layer_it_feeds(model):
    order = [n for n, m in model.named_children()
             if isinstance(m, nn.Dropout | nn.Linear)]
    assert order == ["fc6", "drop6", "fc7", "drop7", "fc8"]


@pytest.mark.parametrize("side", [227, 224, 67])
def test_forward_shape(model, side):
    # 227: Caffe's crop (the adaptive pool is a no-op); 224: our loader's; 67: the smallest
    with torch.no_grad():
        assert model(torch.randn(1, 3, side, side)).shape == (1, 1000)


def test_too_small_inputs_fail_clearly():
    with pytest.raises(ConfigError, match="at least 67×67"):
        create_model("alexnet_caffe", num_classes=10, input_shape=(3, 64, 64))
    small = create_model("alexnet_caffe", num_classes=10, input_shape=(3, 67, 67))
    assert small.fc8.out_features == 10


def test_the_adaptive_pool_is_a_no_op_on_caffes_227_px_crops(model):
    seen = {}
    hook = model.avgpool.register_forward_hook(lambda m, i, o: seen.update(i=i[0], o=o))
    try:
        with torch.no_grad():
            model(torch.randn(1, 3, 227, 227))
    finally:
        hook.remove()
    assert seen["i"].shape == (1, 256, 6, 6) and torch.equal(seen["i"], seen["o"])

import pytest
import torch

from quantsurvey.errors import ConfigError
from quantsurvey.models import create_model, list_models

INPUT = {"lenet300_100": (1, 28, 28), "lenet5": (1, 28, 28),
         "alexnet_caffe": (3, 67, 67)}  # its smallest input; others: (3, 64, 64)


@pytest.mark.parametrize("name", list_models())
def test_every_model_maps_a_batch_to_logits(name):
    shape = INPUT.get(name, (3, 64, 64))
    model = create_model(name, num_classes=7, input_shape=shape)
    assert model(torch.randn(2, *shape)).shape == (2, 7)


@pytest.mark.parametrize("name, params", [("lenet300_100", 266_610), ("lenet5", 431_080)])
def test_lenet_parameter_counts_match_the_paper(name, params):
    # Han 2015 Table 1: 267K and 431K weights (biases included)
    model = create_model(name, num_classes=10, input_shape=(1, 28, 28))
    assert sum(p.numel() for p in model.parameters()) == params


def test_lenet5_adapts_to_cifar_inputs():
    model = create_model("lenet5", num_classes=10, input_shape=(3, 32, 32))
    assert model.fc1.in_features == 50 * 5 * 5


def test_unknown_model_and_parameter_fail_clearly():
    with pytest.raises(ConfigError, match="choose one of: .*lenet5"):
        create_model("lenet7", num_classes=10, input_shape=(1, 28, 28))
    with pytest.raises(ConfigError, match="unknown parameter 'dropuot'.*Did you mean 'dropout'"):
        create_model("lenet5", num_classes=10, input_shape=(1, 28, 28), dropuot=0.5)


@pytest.mark.parametrize("name, params", [("alexnet_caffe", 60_965_224), ("alexnet", 61_100_840),
                                          ("vgg16", 138_357_544), ("squeezenet1_0", 1_248_424)])
def test_imagenet_models_have_the_published_sizes(name, params):
    # Caffe AlexNet 61M (243.9 MB), torchvision's AlexNet 61.1M, VGG-16 138M (552 MB),
    # SqueezeNet 1.25M (4.8 MB) float32 weights
    model = create_model(name, num_classes=1000, input_shape=(3, 224, 224))
    assert sum(p.numel() for p in model.parameters()) == params


@pytest.mark.parametrize("name", ["alexnet", "alexnet_caffe"])
def test_imagenet_models_refuse_mnist_inputs(name):
    with pytest.raises(ConfigError, match="3-channel inputs"):
        create_model(name, num_classes=10, input_shape=(1, 28, 28))

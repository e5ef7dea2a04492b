"""Per-layer settings: a layer's name wins over its type; unknown names are refused."""

import pytest
from torch import nn

from quantsurvey.errors import ConfigError
from quantsurvey.models import create_model
from quantsurvey.nn.layers import resolve_per_layer, weight_layers


def test_weight_layers_are_the_conv_and_linear_layers_in_definition_order():
    model = create_model("lenet5", num_classes=10, input_shape=(1, 28, 28))
    assert list(weight_layers(model)) == ["conv1", "conv2", "fc1", "fc2"]


def test_a_layer_name_wins_over_its_type_and_types_fill_the_rest():
    model = create_model("lenet5", num_classes=10, input_shape=(1, 28, 28))
    assert resolve_per_layer(model, {"conv": 8, "fc": 5, "fc2": 6}, "bits") == \
        {"conv1": 8, "conv2": 8, "fc1": 5, "fc2": 6}
    assert resolve_per_layer(model, {"conv2": 3}, "bits") == {"conv2": 3}
    assert resolve_per_layer(model, {}, "bits") == {}
    seq = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Linear(2, 2))
    assert resolve_per_layer(seq, {"fc": 1}, "bits") == {"2": 1}


def test_an_unknown_layer_is_refused_naming_the_key_and_the_layers():
    model = create_model("lenet5", num_classes=10, input_shape=(1, 28, 28))
    with pytest.raises(ConfigError, match=r"compress.share.bits: 'fc3' is not a layer of this "
                                          r"model; layers: conv1, conv2, fc1, fc2"):
        resolve_per_layer(model, {"fc1": 5, "fc3": 5}, "compress.share.bits")

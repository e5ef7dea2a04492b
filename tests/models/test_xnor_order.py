"""ResNet-18 and BN-AlexNet in XNOR-Net's block order: every inner layer sees sign(BN(x)) under
`xnor` (both signs, not the all-+1 sign of a ReLU output), the first conv and the last fc stay
real, and the one-bit file computes what the trained network computes. (The Imagewoof
experiments' stages smoke-run in tests/test_train.py::test_every_experiment_smoke_runs_all_its_
stages.)"""

from __future__ import annotations

import pytest
import torch

from quantsurvey.export import load_model
from quantsurvey.methods import StageContext, build_methods
from quantsurvey.models import create_model
from quantsurvey.nn.layers import weight_layers

# name, input shape, first and last layer, weight layers (ResNet-18: 17 convs + 3 shortcuts + fc)
MODELS = [("resnet18_xnor", (3, 32, 32), "conv1", "fc", 21),
          ("alexnet_xnor", (3, 67, 67), "conv1", "fc8", 8)]


def _ctx(tmp_path, name, shape):
    probe = torch.randn(8, *shape, generator=torch.Generator().manual_seed(5))
    return StageContext(seed=0, run_dir=tmp_path, probe=lambda: probe,
                        model_info={"name": name, "num_classes": 10,
                                    "input_shape": list(shape), "params": {}})


def _inputs_seen(model, x):
    seen = {}
    for name, layer in weight_layers(model).items():
        layer.register_forward_pre_hook(
            lambda mod, inp, name=name: seen.setdefault(name, inp[0].detach()))
    model(x)
    return seen


@pytest.mark.parametrize("name,shape,first,last,layers", MODELS)
def test_the_float_network_feeds_every_inner_layer_a_bounded_preactivation(name, shape, first,
                                                                          last, layers):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, input_shape=shape).train()
    seen = _inputs_seen(model, torch.randn(4, *shape))
    names = list(seen)
    assert names[0] == first and names[-1] == last and len(names) == layers
    for name in names[1:-1]:  # hardtanh(BN(x)): within [-1, 1], and of both signs
        x = seen[name]
        assert x.abs().max() <= 1.0 and (x < 0).any() and (x > 0).any(), name


@pytest.mark.parametrize("name,shape,first,last,layers", MODELS)
def test_xnor_binarizes_the_inner_layers_inputs_and_keeps_the_first_and_last_real(
        tmp_path, name, shape, first, last, layers):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, input_shape=shape)
    (m,) = build_methods({"xnor": {"weights": "inner", "inputs": "inner"}})
    info = m.before_training(model, _ctx(tmp_path, name, shape))
    assert first not in info["xnor_inputs"] and last not in info["xnor_inputs"]
    assert len(info["xnor_inputs"]) == layers - 2
    seen = _inputs_seen(model.train(), torch.randn(4, *shape))
    for layer in info["xnor_inputs"]:
        values = set(seen[layer].unique().tolist())
        assert values == {-1.0, 1.0}, (layer, sorted(values)[:5])
    for layer in (first, last):
        assert len(seen[layer].unique()) > 2, layer


@pytest.mark.parametrize("name,shape,first,last,layers", MODELS)
def test_the_bwn_and_xnor_files_compute_what_the_network_computes(tmp_path, name, shape, first,
                                                                  last, layers):
    for method in ("bwn", "xnor"):
        torch.manual_seed(1)
        model = create_model(name, num_classes=10, input_shape=shape)
        (m,) = build_methods({method: {}})
        ctx = _ctx(tmp_path / method, name, shape)
        (tmp_path / method).mkdir()
        m.before_training(model, ctx)
        with torch.no_grad():
            model.train()(torch.randn(16, *shape))
        model.eval()
        expected = model(ctx.probe())
        m.after_training(model, ctx)
        again = load_model(tmp_path / method / "model.qsdc").eval()
        assert torch.equal(again(ctx.probe()), expected), method



@pytest.mark.parametrize("name,smallest", [("resnet18_xnor", 32), ("alexnet_xnor", 63)])
def test_too_small_or_grey_inputs_are_refused_with_the_size_needed(name, smallest):
    from quantsurvey.errors import ConfigError

    create_model(name, num_classes=10, input_shape=(3, smallest, smallest))
    for shape in ((3, smallest - 1, smallest), (1, smallest, smallest)):
        with pytest.raises(ConfigError, match=f"model {name} needs 3-channel inputs of at least "
                                              f"{smallest}×{smallest}"):
            create_model(name, num_classes=10, input_shape=shape)

"""ResNet-18 in XNOR-Net's block order: every inner conv sees sign(BN(x)) under `xnor` (both
signs, not the all-+1 sign of a ReLU output), the stem conv and the fc stay real, and the
one-bit file computes what the trained network computes. (The Imagewoof experiment's three
stages smoke-run in tests/test_train.py::test_every_experiment_smoke_runs_all_its_stages.)"""

from __future__ import annotations

import torch

from quantsurvey.export import load_model
from quantsurvey.methods import StageContext, build_methods
from quantsurvey.models import create_model
from quantsurvey.nn.layers import weight_layers

SHAPE = (3, 32, 32)


def _ctx(tmp_path):
    probe = torch.randn(8, *SHAPE, generator=torch.Generator().manual_seed(5))
    return StageContext(seed=0, run_dir=tmp_path, probe=lambda: probe,
                        model_info={"name": "resnet18_xnor", "num_classes": 10,
                                    "input_shape": list(SHAPE), "params": {}})


def _inputs_seen(model, x):
    seen = {}
    for name, layer in weight_layers(model).items():
        layer.register_forward_pre_hook(
            lambda mod, inp, name=name: seen.setdefault(name, inp[0].detach()))
    model(x)
    return seen


def test_the_float_network_feeds_every_inner_conv_a_bounded_preactivation():
    torch.manual_seed(0)
    model = create_model("resnet18_xnor", num_classes=10, input_shape=SHAPE).train()
    seen = _inputs_seen(model, torch.randn(4, *SHAPE))
    names = list(seen)
    assert names[0] == "conv1" and names[-1] == "fc" and len(names) == 21  # 17 + 3 shortcuts + fc
    for name in names[1:-1]:  # hardtanh(BN(x)): within [-1, 1], and of both signs
        x = seen[name]
        assert x.abs().max() <= 1.0 and (x < 0).any() and (x > 0).any(), name


def test_xnor_binarizes_the_inner_convs_inputs_and_keeps_the_first_and_last_real(tmp_path):
    torch.manual_seed(0)
    model = create_model("resnet18_xnor", num_classes=10, input_shape=SHAPE)
    (m,) = build_methods({"xnor": {"weights": "inner", "inputs": "inner"}})
    info = m.before_training(model, _ctx(tmp_path))
    assert "conv1" not in info["xnor_inputs"] and "fc" not in info["xnor_inputs"]
    assert len(info["xnor_inputs"]) == 19
    seen = _inputs_seen(model.train(), torch.randn(4, *SHAPE))
    for name in info["xnor_inputs"]:
        values = set(seen[name].unique().tolist())
        assert values == {-1.0, 1.0}, (name, sorted(values)[:5])
    for name in ("conv1", "fc"):
        assert len(seen[name].unique()) > 2, name


def test_the_bwn_and_xnor_files_compute_what_the_network_computes(tmp_path):
    for method in ("bwn", "xnor"):
        torch.manual_seed(1)
        model = create_model("resnet18_xnor", num_classes=10, input_shape=SHAPE)
        (m,) = build_methods({method: {}})
        ctx = _ctx(tmp_path / method)
        (tmp_path / method).mkdir()
        m.before_training(model, ctx)
        with torch.no_grad():
            model.train()(torch.randn(16, *SHAPE))
        model.eval()
        expected = model(ctx.probe())
        m.after_training(model, ctx)
        again = load_model(tmp_path / method / "model.qsdc").eval()
        assert torch.equal(again(ctx.probe()), expected), method


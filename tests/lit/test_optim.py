import pytest
import torch

from quantsurvey.config import OptimConfig, SchedConfig
from quantsurvey.lit.optim import build_optimizer, build_scheduler


def _lrs(sched_cfg, lr=1e-2, epochs=10):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([p], OptimConfig(name="adam", lr=lr))
    sched = build_scheduler(opt, sched_cfg, lr, epochs)
    out = [opt.param_groups[0]["lr"]]
    for _ in range(epochs):
        opt.step()
        sched.step()
        out.append(opt.param_groups[0]["lr"])
    return out


def test_exponential_reaches_end_lr():  # BNN: 3e-3 decayed exponentially to 3e-7
    lrs = _lrs(SchedConfig(name="exponential", end_lr=3e-7), lr=3e-3, epochs=20)
    assert lrs[0] == 3e-3 and lrs[-1] == pytest.approx(3e-7, rel=1e-6)
    assert lrs[1] / lrs[0] == pytest.approx(lrs[2] / lrs[1])


def test_multistep_cosine_linear_step():
    assert _lrs(SchedConfig(name="multistep", milestones=[3, 6], gamma=0.1))[6] == \
        pytest.approx(1e-4)
    assert _lrs(SchedConfig(name="cosine"))[-1] == pytest.approx(0, abs=1e-12)
    assert _lrs(SchedConfig(name="cosine"))[5] == pytest.approx(5e-3)
    assert _lrs(SchedConfig(name="linear", end_lr=1e-3))[-1] == pytest.approx(1e-3)
    assert _lrs(SchedConfig(name="step", step_size=4, gamma=0.5))[4] == pytest.approx(5e-3)


@pytest.mark.parametrize("name, cls", [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam),
                                        ("adamax", torch.optim.Adamax)])
def test_optimizers_take_their_hyperparameters(name, cls):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([p], OptimConfig(name=name, lr=0.3, weight_decay=1e-4))
    assert isinstance(opt, cls)
    assert opt.param_groups[0]["lr"] == 0.3 and opt.param_groups[0]["weight_decay"] == 1e-4
    assert build_scheduler(opt, SchedConfig(name="none"), 0.3, 5) is None


def test_parameter_groups_scale_the_learning_rate_and_leave_frozen_weights_out():
    from quantsurvey.lit.optim import param_groups

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)
            self.frozen = torch.nn.Parameter(torch.zeros(2), requires_grad=False)

        def param_groups(self):
            return [{"params": list(self.a.parameters()), "lr_scale": 4.0}]

    class Method:
        def param_groups(self, model):
            return [{"params": [model.b.weight], "lr_scale": 0.5}]

    net = Net()
    opt = build_optimizer(param_groups(net, [Method()]), OptimConfig(name="sgd", lr=0.1))
    lrs = sorted((g["lr"], len(g["params"])) for g in opt.param_groups)
    assert lrs == [(0.05, 1), (0.1, 1), (0.4, 2)]  # b.weight; b.bias (the rest); a.*
    assert not any(p is net.frozen for g in opt.param_groups for p in g["params"])
    sched = build_scheduler(opt, SchedConfig(name="step", step_size=1, gamma=0.5), 0.1, 3)
    opt.step()
    sched.step()
    assert sorted(g["lr"] for g in opt.param_groups) == pytest.approx([0.025, 0.05, 0.2])
    with pytest.raises(ValueError, match="two parameter groups"):
        param_groups(net, [Method(), Method()])

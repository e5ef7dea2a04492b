"""ADMM pruning (Zhang et al. 2018): the projection, convergence on a problem whose constrained
optimum is known by brute force, exact resume inside the ADMM phase, hard prune + masked
retraining, and the bad inputs."""

from __future__ import annotations

import dataclasses
import itertools
import json

import pytest
import torch

from quantsurvey.compress.admm import (
    ADMMState,
    admm_penalty,
    project_cardinality,
    relative_residual,
)
from quantsurvey.errors import ConfigError
from quantsurvey.methods import build_methods
from quantsurvey.models import create_model
from quantsurvey.train import train
from tests.conftest import compose_cfg
from tests.test_train import _run_script


@pytest.mark.parametrize("kept", [0.1, 0.25, 0.5, 1.0])
def test_projection_keeps_exactly_k_largest_and_is_idempotent(kept):
    v = torch.randn(7, 9, generator=torch.Generator().manual_seed(0))
    z = project_cardinality(v, kept)
    k = round(kept * v.numel())
    assert int((z != 0).sum()) == k
    survivors = v.abs()[z != 0]
    dropped = v.abs()[z == 0]
    assert dropped.numel() == 0 or survivors.min() >= dropped.max()
    assert torch.equal(z[z != 0], v[z != 0])  # kept values are untouched
    assert torch.equal(project_cardinality(z, kept), z)


def test_projection_of_ties_still_keeps_exactly_k():
    z = project_cardinality(torch.ones(10), 0.3)
    assert int((z != 0).sum()) == 3


def test_admm_finds_the_constrained_least_squares_optimum():
    """min ‖Ax − b‖² s.t. card(x) ≤ 3 in R^8: the optimum, by trying all 56 supports, against
    ADMM with gradient-descent W-steps. The residual ‖x − z‖/‖x‖ shrinks towards zero and the
    support and values agree with the optimum."""
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(20, 8, generator=gen, dtype=torch.float64)
    x_true = torch.tensor([2.0, 0, 0, -1.5, 0, 0, 1.0, 0], dtype=torch.float64)
    b = a @ x_true + 0.05 * torch.randn(20, generator=gen, dtype=torch.float64)
    best = min(((torch.linalg.lstsq(a[:, list(s)], b[:, None]).solution.flatten(), s)
                for s in itertools.combinations(range(8), 3)),
               key=lambda r: (a[:, list(r[1])] @ r[0] - b).pow(2).sum().item())
    optimum = torch.zeros(8, dtype=torch.float64)
    optimum[list(best[1])] = best[0]

    x = torch.linalg.lstsq(a, b[:, None]).solution.flatten().clone().requires_grad_(True)
    state = ADMMState({"x": x}, {"x": 3 / 8}, rho=0.5)
    optimizer = torch.optim.SGD([x], lr=0.005)
    residuals = []
    for _ in range(60):  # ADMM iterations
        for _ in range(50):  # W-step: gradient descent on f + ρ/2‖x − z + u‖²
            optimizer.zero_grad()
            loss = (a @ x - b).pow(2).sum() + admm_penalty({"x": x}, state.z, state.u, state.rho)
            loss.backward()
            optimizer.step()
        residuals.append(state.update({"x": x}, rho_growth=1.1, rho_max=50.0)["residual/x"])
    assert residuals[-1] < 1e-3 < residuals[0]
    assert torch.equal(state.z["x"] != 0, optimum != 0)
    assert torch.allclose(state.z["x"], optimum, atol=2e-2)
    assert len(state.history) == 60 and state.history[-1]["rho"] == pytest.approx(50.0)


def test_one_z_and_u_update_and_the_penalty_by_hand():
    """Eqs. 6–8 on four weights, half kept: Z = Π(W + U), U ← U + W − Z, ρ grows up to ρ_max,
    and the penalty ρ/2‖W − Z + U‖² (mutation testing found all of these untested by value:
    the convergence test above also converges with Z = Π(W − U) or with ρ − 2 for ρ/2)."""
    w0 = torch.tensor([3.0, -1.0, 0.5, 2.0])
    state = ADMMState({"a": w0}, {"a": 0.5}, rho=0.5)
    assert state.z["a"].tolist() == [3.0, 0.0, 0.0, 2.0] and state.u["a"].tolist() == [0.0] * 4
    rec = state.update({"a": torch.tensor([1.0, -2.0, 0.25, 0.125])}, rho_growth=3.0, rho_max=1.0)
    assert state.z["a"].tolist() == [1.0, -2.0, 0.0, 0.0]
    assert state.u["a"].tolist() == [0.0, 0.0, 0.25, 0.125]
    assert rec["support_changed/a"] == 0.5  # index 3 left the support, 2 survivors
    assert rec["rho"] == 0.5 and state.rho == 1.0  # 0.5 · 3 capped at ρ_max
    assert rec["iteration"] == 1.0
    w2 = torch.tensor([0.0, 0.125, 0.25, 0.125])  # W + U = [0, 0.125, 0.5, 0.25]: keep 2 and 3
    rec = state.update({"a": w2})
    assert state.z["a"].tolist() == [0.0, 0.0, 0.5, 0.25]
    assert state.u["a"].tolist() == [0.0, 0.125, 0.0, 0.0]  # U + W − Z
    # both old entries (1 and −2: the negative one counts) left the support; ρ stays constant
    # by default
    assert rec["support_changed/a"] == 1.0 and rec["iteration"] == 2.0
    assert rec["rho"] == 1.0 and state.rho == 1.0
    assert [r["iteration"] for r in state.history] == [1.0, 2.0]
    # the residual ‖W − Z‖/‖W‖ of a W whose norm is below 1: ‖(0, 0.4)‖ / ‖(0.3, 0.4)‖
    assert relative_residual(torch.tensor([0.3, 0.4]), torch.tensor([0.3, 0.0])) == \
        pytest.approx(0.8)
    assert relative_residual(torch.zeros(2), torch.zeros(2)) == 0.0
    # a support of one entry that moves: 1 of 1 changed
    single = ADMMState({"b": torch.tensor([0.0, 0.0, 0.0, 1.0])}, {"b": 0.25}, rho=0.1)
    rec = single.update({"b": torch.tensor([2.0, 0.0, 0.0, 0.0])})
    assert single.z["b"].tolist() == [2.0, 0.0, 0.0, 0.0] and rec["support_changed/b"] == 1.0
    # W + U all zero: Z keeps no non-zero, the one old entry left (no division by an empty support)
    rec = single.update({"b": torch.zeros(4)})  # U = 0 + 2 − 2 = 0 before
    assert single.z["b"].tolist() == [0.0] * 4 and rec["support_changed/b"] == 1.0
    # ρ/2 ‖W − Z + U‖²: (1 − 0 + 0.5)² + (−1 − 0 + 0)² = 3.25, times 0.75 / 2
    penalty = admm_penalty({"a": torch.tensor([1.0, -1.0])}, {"a": torch.zeros(2)},
                           {"a": torch.tensor([0.5, 0.0])}, 0.75)
    assert float(penalty) == pytest.approx(0.375 * 3.25)


def test_the_edges_of_a_valid_admm_config_are_accepted():
    from quantsurvey.compress.admm import ADMMConfig

    config = ADMMConfig(kept={"fc1": 1.0}, rho_max=2.0)  # keep everything; ρ may grow to 2
    assert config.rho == 1e-4  # the authors' ρ (PAPERS.md) where a config names none
    assert config.rho_growth == 1.0 and config.interval == 5000  # constant ρ, 5000 steps
    assert ADMMConfig(kept={"fc1": 0.5}).rho_max is None
    assert ADMMConfig(kept={"fc1": 0.5}, interval=1).interval == 1  # Z/U after every step
    assert ADMMConfig(kept={"fc1": 0.5}, rho=0.5, rho_max=0.5).rho_max == 0.5
    with pytest.raises(ValueError, match=r"kept.fc1=-0.5 must be in \(0, 1\]"):
        ADMMConfig(kept={"fc1": -0.5})
    with pytest.raises(ValueError, match="rho_max=0.1 must be >= rho=0.5"):
        ADMMConfig(kept={"fc1": 0.5}, rho=0.5, rho_max=0.1)
    with pytest.raises(ValueError, match="rho=-0.5 must be a number > 0"):
        ADMMConfig(kept={"fc1": 0.5}, rho=-0.5)
    # validated once, in __post_init__: a config cannot be changed into an invalid one later
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.rho = -1.0


@pytest.mark.parametrize("section,needle", [
    ({"kept": {"fc1": 0}}, "compress.admm: kept.fc1=0 must be in (0, 1]"),
    ({"kept": {"fc1": 1.5}}, "compress.admm: kept.fc1=1.5 must be in (0, 1]"),
    ({"kept": {"fc1": 0.1}, "rho": 0}, "compress.admm: rho=0 must be a number > 0"),
    ({"kept": {"fc1": 0.1}, "interval": 0}, "compress.admm: interval=0 must be a whole"),
    ({"kept": {"fc1": 0.1}, "rho_growth": 0.5}, "compress.admm: rho_growth=0.5 must be >= 1"),
    ({}, "compress.admm: kept must name at least one layer"),
])
def test_bad_admm_configs_are_one_message(section, needle):
    with pytest.raises(ConfigError) as info:
        build_methods({"admm": section})
    assert needle in str(info.value)


def test_a_layer_the_model_lacks_is_named():
    (method,) = build_methods({"admm": {"kept": {"fc9": 0.1}}})
    model = create_model("lenet300_100", num_classes=10, input_shape=(1, 28, 28))
    with pytest.raises(ConfigError, match="compress.admm.kept: 'fc9' is not a layer"):
        method.check(model)


ADMM = ["data=synthetic", "trainer=smoke", "trainer.max_epochs=3", "trainer.limit_train_batches=4",
        "~pipeline", "seed=2", "+compress.admm.kept.fc1=0.1", "+compress.admm.kept.fc2=0.2",
        "+compress.admm.interval=3", "+compress.admm.rho=0.01", "+compress.admm.rho_growth=1.5"]


def test_resume_inside_the_admm_phase_matches_the_uninterrupted_run(tmp_path):
    """Killed after epoch 1 (step 8: two Z/U updates done, the third due at step 9): the
    resumed run has the uninterrupted run's Z/U history, ρ and metrics."""
    over = [*ADMM, f"paths.output_dir={tmp_path}"]
    full = train(compose_cfg(over), tmp_path / "full")
    assert _run_script(tmp_path / "resumed", 1, over).returncode == -9
    done = _run_script(tmp_path / "resumed", -1, [*over, "resume=true"])
    assert done.returncode == 0, done.stderr[-2000:]
    a = json.loads((tmp_path / "full" / "summary.json").read_text())
    b = json.loads((tmp_path / "resumed" / "summary.json").read_text())
    assert b["resumed"]
    assert a["compression"]["admm_iterations"] == 4  # 12 steps, every 3rd
    assert b["compression"]["admm_history"] == a["compression"]["admm_history"]
    for key in ("test/err", "test/loss", "train/loss_epoch", "train/reg_loss_epoch",
                "compress/admm_max_residual"):
        assert b["metrics"][key] == full[key], key


def test_hard_prune_then_masked_retraining_keeps_exactly_k_weights(tmp_path):
    """The next stage hard-prunes W to the same fractions and retrains: the pruned weights are
    exactly zero at the end and each layer keeps round(kept · numel) of them."""
    admm = train(compose_cfg([*ADMM, f"paths.output_dir={tmp_path}"]), tmp_path / "admm")
    assert admm["compress/admm_iterations"] == 4
    cfg = compose_cfg(["data=synthetic", "trainer=smoke", "trainer.max_epochs=2", "~pipeline",
                       "seed=2", f"init_from={tmp_path / 'admm'}",
                       "+compress.prune.kept.fc1=0.1", "+compress.prune.kept.fc2=0.2",
                       f"paths.output_dir={tmp_path}"])
    train(cfg, tmp_path / "retrain")
    saved = torch.load(tmp_path / "retrain" / "model.pt", weights_only=True)
    for name, kept in (("fc1", 0.1), ("fc2", 0.2)):
        w = saved["state_dict"][f"{name}.weight"]  # effective weights: zeros where pruned
        assert int((w != 0).sum()) == round(kept * w.numel()), name
        assert torch.equal(saved["masks"][name], w != 0)


def test_alexnet_config_keeps_the_authors_fractions_and_21x():
    """The AlexNet experiment's per-layer fractions (1 − the authors' prototxt prune ratios) on
    BVLC AlexNet's weights keep 2,906,700 of 60,954,656: 20.97×, the paper's 21× (4.76% kept);
    ADMM's Z and the hard prune after it use the same fractions."""
    cfg = compose_cfg(["experiment=zhang2018_admm/alexnet_imagenet"])
    kept = dict(cfg.pipeline.admm.compress.admm.kept)
    assert kept == dict(cfg.pipeline.retrain.compress.prune.kept)
    model = create_model("alexnet_caffe", num_classes=1000, input_shape=(3, 224, 224))
    layers = dict(model.named_modules())
    total = sum(layers[name].weight.numel() for name in kept)
    assert total == 60_954_656
    left = sum(round(f * layers[name].weight.numel()) for name, f in kept.items())
    assert left == 2_906_700 and total / left == pytest.approx(20.97, abs=0.005)

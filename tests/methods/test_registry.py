"""The method seam: a method defined in this file alone runs through a pipeline; the registry's
errors; recipes compare by meaning, so summaries written by older code are still reused."""

import csv
import json
from dataclasses import dataclass

import pytest
import torch

from quantsurvey.errors import ConfigError, RunDirError
from quantsurvey.methods import METHODS, Method, build_methods, list_methods, register_method
from quantsurvey.nn.layers import weight_layers
from quantsurvey.nn.quant import WeightTransform, add_weight_transform, latent_weight
from quantsurvey.pipeline import run_pipeline, stage_configs, stage_dir
from quantsurvey.rundir import check_same_recipe, recipe
from tests.conftest import REPO, compose_cfg


class _Halve(WeightTransform):
    def forward(self, weight):
        return weight * 0.5


@dataclass(frozen=True)
class ToyConfig:
    layers: tuple = ("fc",)
    limit: float = 0.05
    decay: float = 1e-3

    def __post_init__(self):
        if self.limit <= 0:
            raise ValueError(f"limit={self.limit} must be > 0.")


class Toy(Method):
    """Halves the fc weights, clips the latent ones, adds an L2 term, logs its state."""

    name = "toy"
    Config = ToyConfig

    def before_training(self, model, ctx):
        self.layers = [m for m in weight_layers(model).values() if isinstance(m, torch.nn.Linear)]
        for layer in self.layers:
            add_weight_transform(layer, _Halve())
        self.steps = 0
        return {"toy_layers": len(self.layers)}

    def regularizer(self, model):
        return self.config.decay * sum(latent_weight(m).square().sum() for m in self.layers)

    def after_optimizer_step(self, model):
        self.steps += 1
        with torch.no_grad():
            for m in self.layers:
                latent_weight(m).clamp_(-self.config.limit, self.config.limit)

    def state_to_log(self, model):
        return {"max_abs": max(latent_weight(m).abs().max().item() for m in self.layers)}

    def state_dict(self):
        return {"steps": self.steps}

    def load_state_dict(self, state):
        self.steps = state.get("steps", 0)

    def after_training(self, model, ctx):
        (ctx.run_dir / "toy.txt").write_text(str(self.steps))
        return model, {"toy_steps": self.steps}, {"compress/toy_steps": float(self.steps)}


@pytest.fixture
def toy():
    register_method(Toy)
    yield Toy
    METHODS.pop("toy")


def _cfg(tmp_path, *extra):
    return compose_cfg(["experiment=han2015_pruning/lenet300_100_mnist", "data=synthetic",
                        "trainer=smoke", "trainer.max_epochs=1",
                        f"paths.output_dir={tmp_path}", *extra])


def test_a_method_defined_in_a_test_file_runs_through_a_pipeline(toy, tmp_path):
    assert "toy" in list_methods()
    cfg = _cfg(tmp_path, "~pipeline.prune2", "~pipeline.prune3", "~pipeline.prune4",
               "+pipeline.prune1.compress.toy.limit=0.02")
    results = run_pipeline(cfg)
    run = tmp_path / "han2015_pruning/lenet300_100_synthetic/prune1/seed=0"
    summary = json.loads((run / "summary.json").read_text())
    steps = int(summary["metrics"]["compress/toy_steps"])
    # trainer=smoke: two batches per epoch, the stage's own epochs capped at 1: one call per step
    assert steps == 2 * summary["epochs"] and steps > 0
    assert (run / "toy.txt").read_text() == str(steps)
    assert summary["compression"]["toy_layers"] == 3
    assert "prune_kept_pct" in summary["compression"]  # the other method of the stage ran too
    rows = list(csv.DictReader((run / "csv/metrics.csv").open()))
    logged = [float(r["compress/toy/max_abs"]) for r in rows if r.get("compress/toy/max_abs")]
    assert len(logged) == steps and max(logged) <= 0.02 + 1e-7  # clipped, logged every step
    assert any(r.get("train/reg_loss_step") for r in rows)
    assert results["prune1"]["compress/toy_steps"] == steps


def test_unknown_method_and_missing_prerequisite_are_config_errors():
    with pytest.raises(ConfigError, match="'shar' is not a registered compression method.*"
                                          "Did you mean 'compress.share'"):
        build_methods({"shar": {"bits": {"fc": 4}}})
    with pytest.raises(ConfigError, match="compress.encode needs compress.share earlier"):
        build_methods({"encode": {"index_bits": {"fc": 5}}, "share": {"bits": {"fc": 4}}})
    with pytest.raises(ConfigError, match="unknown config key 'compress.share.bitz'"):
        build_methods({"share": {"bitz": {"fc": 4}}})
    assert [m.name for m in build_methods({"prune": None, "share": {"bits": {"fc": 4}}})] == \
        ["share"]


def test_summaries_written_before_the_seam_are_still_reused(tmp_path):
    """A committed summary's config (old compress keys with nulls, no `mode`, no new callbacks
    keys) has the same recipe as today's config of that stage."""
    old = json.loads((REPO / "results/runs/han2015_pruning/lenet5_mnist/prune2/seed=0.json")
                     .read_text())
    assert old["config"]["compress"].get("share", "absent") is None  # written by the old code
    cfg = compose_cfg(["experiment=han2015_pruning/lenet5_mnist",
                       f"paths.output_dir={tmp_path}"])
    dirs, rcs = {}, {}
    for name, _merged, rc in stage_configs(cfg):
        if rc.init_from in dirs:
            rc.init_from = str(dirs[rc.init_from])
        dirs[name], rcs[name] = stage_dir(rc), rc
    from omegaconf import OmegaConf

    resolved = OmegaConf.to_container(OmegaConf.structured(rcs["prune2"]), resolve=True)
    assert recipe(old["config"]) == recipe(resolved)
    run = tmp_path / "old"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps(old))
    check_same_recipe(run, resolved)  # reused: no error
    changed = json.loads(json.dumps(resolved))
    changed["compress"]["prune"]["quality"]["fc1"] = 1.1
    with pytest.raises(RunDirError, match="another recipe.*compress"):
        check_same_recipe(run, changed)


def test_a_null_section_or_a_method_added_later_does_not_change_a_recipe():
    base = {"compress": {"prune": {"quality": {"fc1": 0.5}}}}
    assert recipe(base) == recipe({"compress": {"prune": {"quality": {"fc1": 0.5}, "kept": {}},
                                                "share": None, "someday": None}})
    assert recipe({"compress": {}}) == recipe({"compress": {"prune": None, "share": None,
                                                            "encode": None}})

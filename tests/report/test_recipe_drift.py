"""Rows from a run whose config has changed since it ran are marked: the summary records the
run's command-line overrides, the report composes today's configs with them and compares the
recipe of the run's stage with the one the run recorded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from quantsurvey.cli import CONF_DIR
from quantsurvey.pipeline import stage_configs, stage_dir
from quantsurvey.report.build import render
from quantsurvey.report.recipe_drift import RecipeDrift
from tests.test_bad_inputs import SMOKE, cli

OVERRIDES = ["experiment=han2015_pruning/lenet300_100_mnist", "seed=1"]


def _stage_summary(stage: str) -> dict:
    """What a pipeline stage of OVERRIDES records (its resolved config, init_from a folder)."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=OVERRIDES)
    dirs, found = {}, None
    for name, merged, rc in stage_configs(cfg):
        if rc.init_from in dirs:
            merged = OmegaConf.merge(merged, {"init_from": str(dirs[rc.init_from])})
        dirs[name] = stage_dir(rc)
        if name == stage:
            found = OmegaConf.to_container(merged, resolve=True)
    return {"paper": "han2015_pruning", "setting": "lenet300_100_mnist", "method": found["method"],
            "model": "lenet300_100", "dataset": "mnist", "stage": stage, "name": stage,
            "seed": 1, "budget": found["budget"], "metrics": {"test/err": 1.5},
            "git": {"commit": "b" * 40, "dirty": False}, "hardware": {"device": "cpu"},
            "config": found, "overrides": list(OVERRIDES)}


def test_a_run_made_from_todays_config_has_not_drifted_and_a_changed_config_is_named(tmp_path):
    summary = _stage_summary("prune2")
    assert RecipeDrift(CONF_DIR).check(summary) is None
    # today's config gives prune2 another learning rate than the run recorded
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    path = conf / "experiment" / "han2015_pruning" / "lenet300_100_mnist.yaml"
    text = path.read_text()
    assert text.count("optim: {lr: 0.01}") >= 2
    path.write_text(text.replace("optim: {lr: 0.01}", "optim: {lr: 0.02}"))
    drift = RecipeDrift(conf).check(summary)
    assert drift is not None and drift.startswith("optim: ") and "'lr': 0.01" in drift
    assert "'lr': 0.02" in drift
    # the float stage, which the edit did not touch, has not drifted
    assert RecipeDrift(conf).check(_stage_summary("float")) is None
    # a run from before the overrides were recorded is not checked
    assert RecipeDrift(conf).check({**summary, "overrides": None}) is None
    # a stage that today's config no longer has
    assert "no stage 'prune9'" in RecipeDrift(conf).check({**summary, "stage": "prune9"})
    # the report marks the row and lists the run with its difference
    rows, _, readme = render([summary, _stage_summary("float")], [], conf_dir=conf)
    marked = {r["method"]: r["commit"] for r in rows}
    assert marked["pruned"] == "bbbbbbbbbbbb+config-changed"
    assert "## Runs whose config has changed since they ran" in readme
    assert "| han2015_pruning | lenet300_100_mnist | prune2 | 1 | bbbbbbbbbbbb | optim: " in readme
    assert "| float | 1 |" not in readme.split("## Runs whose config")[1]
    _, _, clean = render([summary], [], conf_dir=CONF_DIR)
    assert "+config-changed" not in clean.split("## Written by hand")[0].split("\n", 3)[3]


def test_a_run_records_its_overrides_and_todays_configs_give_its_recipe(tmp_path):
    done = cli(*SMOKE, "optim.lr=0.03", out_dir=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    (path,) = Path(tmp_path).rglob("summary.json")
    summary = json.loads(path.read_text())
    assert summary["overrides"][:4] == ["data=synthetic", "trainer=smoke", "~pipeline",
                                        "optim.lr=0.03"]
    assert summary["command"].startswith("quantsurvey data=synthetic trainer=smoke '~pipeline'")
    assert RecipeDrift(CONF_DIR).check(summary) is None
    assert "optim" in RecipeDrift(CONF_DIR).check(
        {**summary, "overrides": [o for o in summary["overrides"] if o != "optim.lr=0.03"]})


def _no_pipeline_summary() -> dict:
    """What a run of OVERRIDES with the pipeline dropped records (its whole resolved config)."""
    from quantsurvey.cli import apply_overrides_policy

    overrides = [*OVERRIDES, "~pipeline"]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = apply_overrides_policy(compose("config", overrides=overrides), overrides)
    return {**_stage_summary("float"), "stage": None, "name": "float",
            "config": OmegaConf.to_container(cfg, resolve=True), "overrides": overrides}


def test_todays_recipe_is_compared_resolved_so_an_interpolated_equal_value_is_no_change(tmp_path):
    """Today's config may spell a recipe value as an interpolation; the run recorded the value.
    The comparison resolves today's config first, for pipeline stages and for single runs."""
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    sgd = conf / "optim" / "sgd.yaml"
    assert "momentum: 0.9\n" in sgd.read_text()
    sgd.write_text(sgd.read_text().replace("momentum: 0.9\n", "momentum: ${oc.decode:'0.9'}\n"))
    for summary in (_stage_summary("prune2"), _no_pipeline_summary()):
        assert summary["config"]["optim"]["momentum"] == 0.9
        assert RecipeDrift(CONF_DIR).check(summary) is None
        assert RecipeDrift(conf).check(summary) is None
    sgd.write_text(sgd.read_text().replace("${oc.decode:'0.9'}", "${oc.decode:'0.8'}"))
    for summary in (_stage_summary("prune2"), _no_pipeline_summary()):
        assert RecipeDrift(conf).check(summary).startswith("optim: ")


def test_overrides_that_todays_configs_refuse_are_a_difference_with_the_reason():
    drift = RecipeDrift(CONF_DIR)
    # our own policy refuses it: a top-level optim.lr that the pipeline's stages set themselves
    ours = drift.check({**_stage_summary("prune2"), "overrides": [*OVERRIDES, "optim.lr=0.2"]})
    assert ours.startswith("today's configs refuse its overrides: optim.lr is set by pipeline "
                           "stage(s) ")
    assert "ConfigError" not in ours  # our message as written, not an exception's repr
    # Hydra refuses it: the experiment config is gone
    hydra = drift.check({**_stage_summary("prune2"),
                         "overrides": ["experiment=han2015_pruning/no_such_setting", "seed=1"]})
    assert hydra.startswith("today's configs refuse its overrides: MissingConfigException: ")
    assert "no_such_setting" in hydra

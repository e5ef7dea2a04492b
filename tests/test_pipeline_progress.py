"""The pipeline's plan and its progress lines: every stage's W&B group is the experiment's paper
(also for a stage borrowed from another paper); an init_from that names nothing is refused; the
time left is estimated from the stages that trained, not from reused ones."""

from __future__ import annotations

import pytest

from quantsurvey import pipeline
from quantsurvey.errors import ConfigError
from quantsurvey.pipeline import Progress, _duration, stage_configs
from tests.conftest import compose_cfg


def test_every_stage_is_grouped_under_the_experiments_paper():
    stages = stage_configs(compose_cfg(["experiment=zhang2018_admm/lenet5_mnist"]))
    assert stages[0][2].paper == "han2015_pruning"  # the shared float stage, borrowed
    assert {merged.logger.group for _, merged, _ in stages} == {"zhang2018_admm"}
    named = stage_configs(compose_cfg(["experiment=zhang2018_admm/lenet5_mnist",
                                       "logger.group=mine"]))
    assert {merged.logger.group for _, merged, _ in named} == {"mine"}


def test_an_init_from_that_is_neither_a_stage_nor_a_folder_is_refused(tmp_path):
    cfg = compose_cfg(["experiment=han2015_pruning/lenet300_100_mnist",
                       "pipeline.prune1.init_from=flaot"])
    with pytest.raises(ConfigError, match=r"pipeline stage 'prune1': init_from='flaot' is "
                                          r"neither an earlier stage \(float, prune1, prune2, "
                                          r"prune3, prune4\) nor a run directory"):
        stage_configs(cfg)
    folder = compose_cfg(["experiment=han2015_pruning/lenet300_100_mnist",
                          f"pipeline.prune1.init_from={tmp_path}"])
    assert stage_configs(folder)[1][2].init_from == str(tmp_path)  # a run directory will do


@pytest.mark.parametrize("seconds,text", [(0, "0 s"), (89.4, "89 s"), (90, "2 min"),
                                          (3600, "60 min")])
def test_durations_read_in_seconds_then_minutes(seconds, text):
    assert _duration(seconds) == text


def test_time_left_comes_from_the_stages_that_trained(tmp_path, monkeypatch, capsys):
    clock = [100.0]
    monkeypatch.setattr(pipeline.time, "monotonic", lambda: clock[0])
    progress = Progress([4, 2, 0, 6])
    reused = tmp_path / "b"
    reused.mkdir()
    (reused / "summary.json").write_text("{}")

    def stage(i, name, run_dir, seconds):
        progress.announce(i, name, "m", run_dir)
        clock[0] += seconds
        progress.done(i)
        return capsys.readouterr().out.strip()

    assert stage(0, "a", tmp_path / "a", 40) == (
        f"quantsurvey: stage 1/4 a (m, 4 epochs; 0 s so far) -> {tmp_path / 'a'}")
    # 4 epochs in 40 s: 10 s an epoch, 2 + 0 + 6 epochs to go; a reused stage takes 1 s here
    assert stage(1, "b", reused, 1) == (
        f"quantsurvey: stage 2/4 b (m, finished before: reused; 40 s so far; about 80 s left) "
        f"-> {reused}")
    # the reused stage taught nothing: still 10 s an epoch, 0 + 6 epochs to go
    assert stage(2, "c", tmp_path / "c", 5) == (
        f"quantsurvey: stage 3/4 c (m, evaluate only; 41 s so far; about 60 s left) "
        f"-> {tmp_path / 'c'}")
    assert stage(3, "d", tmp_path / "d", 0).startswith(
        "quantsurvey: stage 4/4 d (m, 6 epochs; 46 s so far; about 60 s left)")

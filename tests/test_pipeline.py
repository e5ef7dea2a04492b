"""Multi-stage experiments: every stage is checked before any runs; stages chain and are reused."""

import json

import pytest

from quantsurvey.errors import CheckpointError, ConfigError, RunDirError
from quantsurvey.pipeline import run_pipeline, stage_configs
from quantsurvey.train import train
from tests.conftest import compose_cfg


def _cfg(tmp_path, *extra):
    return compose_cfg(["experiment=han2016_deep_compression/lenet300_100_mnist",
                        "data=synthetic", "trainer=smoke", "trainer.max_epochs=1",
                        f"paths.output_dir={tmp_path}", *extra])


def test_stages_chain_in_order_across_papers(tmp_path):
    stages = stage_configs(_cfg(tmp_path))
    names = [n for n, _, _ in stages]
    assert names[0] == "float" and names[-1] == "quantize" and len(names) >= 4
    assert all(n == f"prune{i}" for i, n in enumerate(names[1:-1], 1))
    assert [rc.init_from for _, _, rc in stages] == [None, *names[:-1]]
    assert stages[0][2].paper == "han2015_pruning" and stages[-1][2].paper == \
        "han2016_deep_compression"
    assert all(rc.resume for _, _, rc in stages)


def test_every_stage_logs_to_its_experiments_wandb_group(tmp_path, monkeypatch):
    """Deep Compression borrows Han 2015's stages; all of them land in one W&B group."""
    from tests.wandb_records import read_records, run_info

    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    cfg = compose_cfg(["experiment=han2016_deep_compression/lenet5_mnist", "data=synthetic",
                       "trainer=smoke", "trainer.max_epochs=1", "logger=wandb",
                       f"paths.output_dir={tmp_path}"])
    stages = stage_configs(cfg)
    assert {rc.paper for _, _, rc in stages} == {"han2015_pruning", "han2016_deep_compression"}
    run_pipeline(cfg)
    seen = {}
    for run_file in tmp_path.rglob("run-*.wandb"):
        info = run_info(read_records(run_file))
        seen[info["job_type"]] = info["group"]
    assert seen == {name: "han2016_deep_compression" for name, _, _ in stages}


def test_a_typo_in_a_late_stage_fails_before_anything_runs(tmp_path):
    cfg = _cfg(tmp_path, "+pipeline.quantize.compress.share.bitz=4")
    with pytest.raises(ConfigError, match="pipeline stage 'quantize'.*bitz"):
        run_pipeline(cfg)
    assert not list(tmp_path.rglob("*.ckpt"))


def test_init_from_must_name_an_earlier_stage(tmp_path):
    with pytest.raises(ConfigError, match="must name a stage that runs before it"):
        stage_configs(_cfg(tmp_path, "pipeline.prune1.init_from=prune2"))
    with pytest.raises(ConfigError, match="neither an earlier stage"):
        stage_configs(_cfg(tmp_path, "pipeline.prune1.init_from=prune9"))


def test_rerun_reuses_finished_stages_and_refuses_another_recipe(tmp_path):
    first = run_pipeline(_cfg(tmp_path))
    float_summary = tmp_path / "han2015_pruning/lenet300_100_mnist/float/seed=0/summary.json"
    stamp = float_summary.stat().st_mtime_ns
    assert run_pipeline(_cfg(tmp_path)) == first  # nothing retrained
    assert float_summary.stat().st_mtime_ns == stamp
    with pytest.raises(RunDirError, match="another recipe.*optim"):
        run_pipeline(_cfg(tmp_path, "+pipeline.float.optim.lr=0.3"))


def test_pruned_stage_keeps_the_previous_stages_zeros(tmp_path):
    run_pipeline(_cfg(tmp_path))
    root = tmp_path / "han2015_pruning/lenet300_100_mnist"
    kept = [json.loads((root / s / "seed=0/summary.json").read_text())["metrics"]
            ["compress/kept_pct"] for s in ("prune1", "prune2", "prune3")]
    assert kept[0] > kept[1] > kept[2]


def test_missing_init_model_is_a_clear_error(tmp_path):
    cfg = compose_cfg(["data=synthetic", "trainer=smoke", f"init_from={tmp_path / 'nowhere'}",
                       f"paths.output_dir={tmp_path}"])
    with pytest.raises(CheckpointError, match="does not exist"):
        train(cfg, tmp_path / "run")

"""Multiruns: launches that never share a sweep folder, the joblib launcher running jobs at once,
a job's error reaching the launching process, the SLURM script, and an Optuna sweep."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
import yaml
from omegaconf import OmegaConf

from tests.test_bad_inputs import REPO, SMOKE, cli, one_error


def _summaries(root):
    return [json.loads(p.read_text()) for p in root.rglob("summary.json")]


def test_two_sweeps_launched_at_once_keep_their_own_multirun_yaml(tmp_path):
    """Both sweeps wrote <output_dir>/multirun.yaml: the second overwrote the first."""
    env = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline",
           "PATH": "/usr/bin:/bin"}
    procs = [subprocess.Popen(
        [sys.executable, "-m", "quantsurvey.cli", "-m", *SMOKE, f"seed={seed}",
         f"paths.output_dir={tmp_path}"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True) for seed in (7, 8)]
    for p in procs:
        assert p.wait(timeout=600) == 0, p.stderr.read()[-2000:]
    written = sorted(tmp_path.glob("sweeps/*/multirun.yaml"))
    assert len(written) == 2
    seeds = sorted(o for p in written
                   for o in yaml.safe_load(p.read_text())["hydra"]["overrides"]["task"]
                   if o.startswith("seed="))
    assert seeds == ["seed=7", "seed=8"]
    # the jobs' run directories are where single runs put theirs, not inside the sweep folder
    runs = sorted(p.parent.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("summary.json"))
    assert runs == ["han2015_pruning", "han2015_pruning"]  # the default experiment's paper


def test_the_joblib_launcher_runs_two_jobs_at_once_and_splits_the_cores(tmp_path):
    out = cli("-m", "hydra/launcher=local_parallel", *SMOKE, "seed=0,1",
              "trainer.max_epochs=3", out_dir=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    windows = []
    for path in tmp_path.rglob("summary.json"):
        s = json.loads(path.read_text())
        # a job's start: Hydra writes its .hydra/ folder first; its end: the summary
        windows.append(((path.parent / ".hydra" / "config.yaml").stat().st_mtime,
                        path.stat().st_mtime))
        assert s["config"]["trainer"]["threads"] == max(1, len(os.sched_getaffinity(0)) // 2)
    (a0, a1), (b0, b1) = sorted(windows)
    assert len(windows) == 2 and b0 < a1  # the second started before the first ended


@pytest.mark.slow  # ≈ 15–19 s of subprocess launches; .ci/run runs it
def test_a_job_that_fails_under_the_joblib_launcher_is_reported_by_the_launching_process(
        tmp_path):
    """FAILED_JOBS lived in the worker process: the launcher exited 0 after a failed job."""
    out = cli("-m", "hydra/launcher=local_parallel", *SMOKE, "optim.lr=1e6,0.1",
              "trainer.max_epochs=3", out_dir=tmp_path)
    one_error(out, "1 job(s) of the sweep failed", "job 0 (", "optim.lr=1000000.0", code=3)
    status = {s["config"]["optim"]["lr"]: s["status"] for s in _summaries(tmp_path)}
    assert status == {1e6: "failed", 0.1: "finished"}


@pytest.mark.parametrize(("launcher", "expected"), [
    (["hydra/launcher=slurm"], ("#SBATCH --gpus-per-node=1", "#SBATCH --cpus-per-task=8",
                                "#SBATCH --ntasks-per-node=1", "#SBATCH --nodes=1")),
    # data parallel: one task (one process) per GPU, on every node
    (["hydra/launcher=slurm_ddp", "hydra.launcher.nodes=2", "hydra.launcher.gpus_per_node=8"],
     ("#SBATCH --gpus-per-node=8", "#SBATCH --cpus-per-task=4", "#SBATCH --ntasks-per-node=8",
      "#SBATCH --nodes=2"))])
def test_the_slurm_launcher_renders_its_submission_script(tmp_path, monkeypatch, launcher,
                                                          expected):
    import submitit

    bin_dir = tmp_path / "bin"  # submitit looks for srun before it renders anything
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")

    from hydra import compose, initialize_config_dir

    from quantsurvey.cli import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", return_hydra_config=True, overrides=[
            *launcher, "hydra.launcher.partition=gpu", "hydra.launcher.account=lab",
            "hydra.launcher.timeout_min=90", f"paths.output_dir={tmp_path}"])
    # what hydra-submitit-launcher does with these settings before it submits
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    params.pop("_target_")
    executor = submitit.AutoExecutor(cluster="slurm", folder=tmp_path / "submitit")
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()
                                  if k not in ("submitit_folder", "max_num_timeout")})
    text = executor._executor._make_submission_file_text("python -m quantsurvey.cli seed=0",
                                                         "uid")
    lines = set(text.splitlines())
    for line in ("#SBATCH --partition=gpu", "#SBATCH --account=lab", "#SBATCH --time=90",
                 "#SBATCH --mem=32GB", *expected):
        assert line in lines, (line, text)
    assert "python -m quantsurvey.cli seed=0" in text


@pytest.mark.slow  # ≈ 15–19 s of subprocess launches; .ci/run runs it
def test_the_optuna_example_runs_trials_that_return_both_objectives(tmp_path):
    out = cli("-m", "experiment=anwar2015_fixed_point/lenet5_mnist", "~pipeline",
              "data=synthetic", "trainer=smoke", "hparams_search=fixed_point_bits_optuna",
              "hydra.sweeper.n_trials=2", out_dir=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    summaries = _summaries(tmp_path)
    assert len(summaries) == 2
    bits = {(s["config"]["compress"]["fixed_point"]["weight_bits"],
             s["config"]["compress"]["fixed_point"]["input_bits"]) for s in summaries}
    assert all(2 <= w <= 8 and 2 <= a <= 8 for w, a in bits)
    (optimized,) = tmp_path.glob("sweeps/*/optimization_results.yaml")
    best = yaml.safe_load(optimized.read_text())
    assert best["name"] == "optuna" and best["solutions"]
    for solution in best["solutions"]:  # the Pareto front: (val/err, size in bytes) per trial
        assert len(solution["values"]) == 2 and solution["values"][1] > 0


def test_an_objective_the_run_does_not_have_is_named():
    from quantsurvey.errors import ConfigError
    from quantsurvey.sweep import objective

    assert objective({"val/err": 3.0, "compress/ratio": 9.0}, ["val/err"]) == 3.0
    assert objective({"val/err": 3.0, "compress/ratio": 9.0},
                     ["val/err", "compress/ratio"]) == (3.0, 9.0)
    try:
        objective({"val/err": 3.0}, ["compress/ratio"])
    except ConfigError as err:
        assert "compress/ratio" in str(err) and "val/err" in str(err)
    else:
        raise AssertionError("no error for a missing objective metric")


def test_debug_overfit_trains_and_validates_on_one_fixed_batch(tmp_path):
    """debug=overfit: one training batch, the same every epoch, is also the validation data:
    epoch k's validation loss is exactly the training loss of step k + 1 (same weights, same
    images), the loss falls by orders of magnitude, and the run is never a row."""
    out = cli("experiment=han2015_pruning/lenet300_100_mnist", "~pipeline", "data=synthetic",
              "debug=overfit", "trainer.max_epochs=30", out_dir=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    (path,) = tmp_path.rglob("summary.json")
    s = json.loads(path.read_text())
    assert s["epochs"] == 30 and s["report"] is False
    assert "trainer.overfit_batches=1" in s["report_reason"]
    rows = list(csv.DictReader((path.parent / "csv" / "metrics.csv").open()))
    train = {int(r["step"]): float(r["train/loss_step"]) for r in rows if r["train/loss_step"]}
    val = {int(r["epoch"]): float(r["val/loss"]) for r in rows if r["val/loss"]}
    assert sorted(train) == list(range(30))  # one batch per epoch
    assert all(val[k] == train[k + 1] for k in range(29))
    assert train[29] < train[0] / 20 and s["metrics"]["val/err"] == 0.0


def test_overfit_batches_must_be_a_whole_number(tmp_path):
    one_error(cli(*SMOKE, "trainer.overfit_batches=-1", out_dir=tmp_path),
              "trainer.overfit_batches=-1 must be 0 (off) or a whole number")


def test_debug_fast_runs_five_batches_and_is_never_a_row(tmp_path):
    out = cli("experiment=han2015_pruning/lenet300_100_mnist", "~pipeline", "data=synthetic",
              "debug=fast", out_dir=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    (path,) = tmp_path.rglob("summary.json")
    s = json.loads(path.read_text())
    assert s["epochs"] == 1 and s["report"] is False
    assert "trainer.limit_train_batches=5" in s["report_reason"]
    steps = [int(r["step"]) for r in csv.DictReader((path.parent / "csv" / "metrics.csv").open())
             if r.get("train/loss_step")]
    assert max(steps) == 4  # steps 0–4: five training batches

"""Data-parallel training (trainer=ddp) with 2 CPU processes over gloo, on tiny synthetic data:
the same metrics and weights as one process, and every file of a run written once, by rank 0.

Tolerances: each process takes every second image of each global batch (data.batch_size stays
the global batch) and DDP averages the two halves' gradients, so the arithmetic differs from one
process only in the order of float sums: weights within 1e-5, losses within 1e-5 relative.
Accuracies are counts summed over the processes and must agree exactly (the weights differ by
about 2e-8 here, far below any prediction's margin; runs are deterministic, so this cannot
flicker).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from quantsurvey.report.wandb_records import read_finished_records, run_info
from tests.conftest import REPO

# a recipe whose errors are not all 0 after two epochs (the synthetic set is easy)
# (evaluation batches of 63 give the two processes unequal shares: 65 and 63 of the 128
# validation images, so a mean of per-process accuracies would not be the accuracy)
RUN = ["pipeline={}", "data=synthetic", "data.augment=none", "trainer.max_epochs=2",
       "optim.lr=0.002", "data.eval_batch_size=63", "trainer.progress_bar=none",
       "trainer.threads=1"]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_ADDR",
                        "MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_NTASKS_PER_NODE",
                        "LOCAL_WORLD_SIZE")}
    (tmp_path / "scratch").mkdir(exist_ok=True)
    env.update(TMPDIR=str(tmp_path / "scratch"), OMP_NUM_THREADS="1", WANDB_SILENT="true",
               WANDB_MODE="offline", QUANTSURVEY_DATA=str(tmp_path / "data"),
               QUANTSURVEY_CACHE=str(tmp_path / "c"), PYTHONPATH=str(REPO))
    return env


def _run(cmd: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=tmp_path, env=_env(tmp_path), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            "-m", "quantsurvey.cli", *args]


def _one_run_dir(root: Path) -> Path:
    (summary,) = root.rglob("summary.json")
    return summary.parent


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "model.pt", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def one_and_two(tmp_path_factory):
    """The same run in one process and in two (torchrun, W&B offline)."""
    tmp = tmp_path_factory.mktemp("ddp")
    _run([sys.executable, "-m", "quantsurvey.cli", *RUN, f"paths.output_dir={tmp / 'one'}"], tmp)
    two = _run(_torchrun(*RUN, f"paths.output_dir={tmp / 'two'}", "trainer=ddp",
                         "trainer.accelerator=cpu", "logger=wandb"), tmp)
    return _one_run_dir(tmp / "one"), _one_run_dir(tmp / "two"), two


def test_two_processes_train_what_one_process_trains(one_and_two):
    one, two, _ = one_and_two
    a = json.loads((one / "summary.json").read_text())
    b = json.loads((two / "summary.json").read_text())
    assert (a["hardware"]["processes"], b["hardware"]["processes"]) == (1, 2)
    assert b["config"]["trainer"]["strategy"] == "ddp" and b["report"] == a["report"]
    ma, mb = a["metrics"], b["metrics"]
    assert set(ma) == set(mb)
    assert 0 < ma["val/err"] < 100 and 0 < ma["test/err"] < 100  # the counts say something
    for key in ("val/err", "test/err", "test/top5_err", "train/acc"):
        assert ma[key] == mb[key], key
    for key in ("train/loss", "val/loss", "test/loss"):
        assert mb[key] == pytest.approx(ma[key], rel=1e-5), key
    wa, wb = _weights(one), _weights(two)
    assert set(wa) == set(wb)
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) <= 1e-5
    assert b["data"] == a["data"]  # the same splits (which share each process loads: the
    # loader tests in tests/data/, since two processes each on the whole batch would train the
    # same weights too)


def test_rank_zero_alone_writes_the_run(one_and_two):
    _, two, _ = one_and_two
    runs = sorted((two / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs  # one W&B run, not one per process
    (record_file,) = runs[0].glob("run-*.wandb")
    info = run_info(read_finished_records(record_file))
    assert info["config"]["trainer.strategy"] == "ddp"
    assert sorted(p.name for p in (two / "checkpoints").iterdir()) == [
        "epoch1.ckpt", "epoch1.ckpt.sha256", "last.ckpt"]
    rows = (two / "csv" / "metrics.csv").read_text().splitlines()
    epochs_with_val = [r for r in rows[1:] if r.split(",")[0] in ("0", "1")]
    assert len(epochs_with_val) == 4  # per epoch one validation row and one training row
    assert (two / "wandb_id.txt").read_text().strip() in record_file.name
    # rank 1's scratch folder (for what methods export) is gone again
    assert not list((two.parents[4] / "scratch").glob("quantsurvey-rank*"))


@pytest.mark.slow  # ≈ 15–19 s of subprocess launches; .ci/run runs it
def test_a_pipeline_under_lightnings_own_launcher_carries_masks_and_speaks_once(tmp_path):
    """No torchrun: Lightning starts the second process itself (through Hydra); the next
    stage starts only once rank 0 has written the previous one's files."""
    stages = ["experiment=han2015_pruning/lenet300_100_mnist", "~pipeline.prune2",
              "~pipeline.prune3", "~pipeline.prune4", "+pipeline.float.trainer.max_epochs=1",
              "pipeline.prune1.trainer.max_epochs=1", "data=synthetic", "data.augment=none",
              "trainer.progress_bar=none", "trainer.threads=1"]
    _run([sys.executable, "-m", "quantsurvey.cli", *stages,
         f"paths.output_dir={tmp_path / 'one'}"], tmp_path)
    two = _run([sys.executable, "-m", "quantsurvey.cli", *stages, "trainer=ddp",
                "trainer.accelerator=cpu", "trainer.devices=2",
                f"paths.output_dir={tmp_path / 'two'}"], tmp_path)
    assert two.stdout.count("quantsurvey: stage 1/2") == 1  # rank 1 keeps quiet
    assert two.stdout.count("pipeline done") == 1
    assert "has no checkpoint" not in two.stdout + two.stderr
    for stage in ("float", "prune1"):
        (a,) = (tmp_path / "one").rglob(f"{stage}/seed=0/summary.json")
        (b,) = (tmp_path / "two").rglob(f"{stage}/seed=0/summary.json")
        ma = json.loads(a.read_text())["metrics"]
        mb = json.loads(b.read_text())["metrics"]
        assert mb["test/loss"] == pytest.approx(ma["test/loss"], rel=1e-5), stage
    (pruned,) = (tmp_path / "two").rglob("prune1/seed=0/model.pt")
    masks = torch.load(pruned, weights_only=True)["masks"]
    (ref,) = (tmp_path / "one").rglob("prune1/seed=0/model.pt")
    ref_masks = torch.load(ref, weights_only=True)["masks"]
    assert set(masks) == set(ref_masks) and masks
    assert all(torch.equal(masks[k], ref_masks[k]) for k in masks)


def test_a_global_batch_that_does_not_split_over_the_processes_is_refused(tmp_path):
    done = subprocess.run(_torchrun(*RUN, "data.batch_size=63", "trainer=ddp",
                                    "trainer.accelerator=cpu",
                                    f"paths.output_dir={tmp_path / 'out'}"),
                          cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode != 0
    assert "data.batch_size=63 is the global batch" in done.stderr
    assert not list((tmp_path / "out").rglob("summary.json"))


LAUNCHER_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "NODE_RANK",
                "SLURM_PROCID", "SLURM_NTASKS", "SLURM_NTASKS_PER_NODE")


def test_ranks_and_node_count_under_srun(monkeypatch):
    """A task that srun started (SLURM_PROCID set) takes its rank and the run's size from SLURM;
    trainer.num_nodes must be the nodes srun used, else one message names the value to set."""
    from quantsurvey import distributed
    from quantsurvey.errors import ConfigError

    for key in LAUNCHER_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SLURM_NTASKS", "8")  # an sbatch script's own shell: not a task of srun
    assert distributed.world_size() == 1 and distributed.global_rank() == 0
    monkeypatch.setenv("SLURM_PROCID", "5")
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "4")
    assert (distributed.global_rank(), distributed.world_size(),
            distributed.local_world_size()) == (5, 8, 4)
    distributed.check_node_count(2)
    with pytest.raises(ConfigError, match=r"trainer.num_nodes=1, but the launcher started 8 "
                                          r"processes, 4 per node, i.e. 2 node\(s\): set "
                                          r"trainer.num_nodes=2"):
        distributed.check_node_count(1)
    monkeypatch.setenv("WORLD_SIZE", "4")  # torchrun's variables win where both are set
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    distributed.check_node_count(1)
    with pytest.raises(ConfigError, match="set trainer.num_nodes=1 "):
        distributed.check_node_count(2)


def test_a_node_count_the_launcher_did_not_use_is_refused_before_anything_is_written(tmp_path):
    env = {**_env(tmp_path), "SLURM_PROCID": "0", "SLURM_NTASKS": "4",
           "SLURM_NTASKS_PER_NODE": "2"}
    done = subprocess.run([sys.executable, "-m", "quantsurvey.cli", *RUN, "trainer=ddp",
                           "trainer.accelerator=cpu", f"paths.output_dir={tmp_path / 'out'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "set trainer.num_nodes=2" in done.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.json"))

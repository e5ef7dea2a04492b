"""Every bad input a user reported (issue 8), walked as a table: the command exits non-zero with
one message naming the problem, and leaves no summary, checkpoint or results row behind (a run
that fails on its numbers leaves a summary marked failed and unreportable). The committed
results/ are byte-identical before and after the whole module."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys

import pytest

from quantsurvey.errors import OutputError
from quantsurvey.rundir import run_lock
from quantsurvey.train import train
from tests.conftest import REPO, compose_cfg

SMOKE = ["data=synthetic", "trainer=smoke", "~pipeline"]


def _digest_tree(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module", autouse=True)
def committed_results_unchanged():
    before = _digest_tree(REPO / "results")
    yield
    assert _digest_tree(REPO / "results") == before


def cli(*args, out_dir, command="quantsurvey.cli"):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
           "WANDB_MODE": "offline"}
    return subprocess.run([sys.executable, "-m", command, *args,
                           f"paths.output_dir={out_dir}"], cwd=REPO, capture_output=True,
                          text=True, timeout=600, env=env)


def one_error(result, *needles, code=2):
    errors = [line for line in result.stderr.splitlines()
              if line.startswith(("quantsurvey: error:", "quantsurvey-report: error:"))]
    assert result.returncode == code, result.stderr[-2000:]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def nothing_written(root):
    assert not list(root.rglob("summary.json")) and not list(root.rglob("*.ckpt"))
    assert not list(root.rglob("*.tmp")) and not list(root.rglob("model.pt"))


# (case, overrides, words the one message must contain)
CONFIG_CASES = [
    ("typo in a key (#6)", ["trainer.max_epoch=1"],
     ["unknown config key 'trainer.max_epoch'", "Did you mean 'trainer.max_epochs'?"]),
    ("the README's own typo (#6)", ["optim.lrr=0.1"], ["'optim.lrr'", "Did you mean 'optim.lr'"]),
    ("typo added with + (#6)", ["+optim.lrr=0.1"], ["'optim.lrr'", "allowed keys"]),
    ("impossible value", ["optim.lr=0"], ["optim.lr=0.0 must be > 0"]),
    ("impossible thread count", ["trainer.threads=0"], ["trainer.threads=0 must be a whole"]),
    ("no GPU here (#10)", ["trainer.accelerator=gpu"], ["no CUDA device"]),
    ("precision 17 (#10)", ["trainer.precision=17"], ["trainer.precision='17'", "32-true"]),
    ("limit above one batch fraction (#10)", ["trainer.limit_train_batches=1.5"],
     ["trainer.limit_train_batches=1.5", "whole number"]),
    ("top-level epochs that stages override (#7)",
     ["experiment=han2015_pruning/lenet300_100_mnist", "data=synthetic", "trainer.max_epochs=1"],
     ["set by pipeline stage(s) prune1", "pipeline.prune1.trainer.max_epochs="]),
    ("layer typo in the last stage (#7)",
     ["experiment=han2016_deep_compression/lenet300_100_mnist", "data=synthetic",
      "+pipeline.quantize.compress.share.bits.fc9=4"], ["'fc9' is not a layer"]),
    ("unknown method", ["data=synthetic", "~pipeline", "+compress.prnue.kept.fc1=0.5"],
     ["'prnue' is not a registered compression method", "Did you mean 'compress.prune'"]),
    ("impossible sparsity", ["data=synthetic", "~pipeline", "+compress.prune.kept.fc1=1.5"],
     ["compress.prune: kept.fc1=1.5 must be in (0, 1]"]),
]


@pytest.mark.parametrize("case,overrides,needles", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_config_errors(case, overrides, needles, tmp_path):
    one_error(cli(*overrides, out_dir=tmp_path / "out"), *needles)
    nothing_written(tmp_path)


def test_diverging_loss_stops_at_once_and_is_marked_failed(tmp_path):
    """#2: optim.lr=1e6 used to finish with exit 0 and a reportable summary."""
    out = cli(*SMOKE, "optim.lr=1e6", "trainer.max_epochs=3", out_dir=tmp_path)
    one_error(out, "loss became", "epoch", "step", "optim.lr", code=3)
    (summary,) = tmp_path.rglob("summary.json")
    s = json.loads(summary.read_text())
    assert s["status"] == "failed" and s["report"] is False and "loss became" in s["error"]
    again = cli(*SMOKE, "optim.lr=1e6", "trainer.max_epochs=3", "resume=true", out_dir=tmp_path)
    one_error(again, "holds a failed run")


def _finished_then_unfinished(tmp_path, *extra):
    assert cli(*SMOKE, "trainer.max_epochs=2", *extra, out_dir=tmp_path).returncode == 0
    (summary,) = tmp_path.rglob("summary.json")
    summary.unlink()  # as if killed after its last checkpoint
    return summary.parent


def test_flipped_bit_in_a_checkpoint_is_never_resumed(tmp_path):
    """#3: resumed without a word, finished with test/loss 5.6e33."""
    run = _finished_then_unfinished(tmp_path)
    ckpt = (run / "checkpoints" / "last.ckpt").resolve()
    data = bytearray(ckpt.read_bytes())
    data[len(data) // 2] ^= 0x10
    ckpt.write_bytes(bytes(data))
    out = cli(*SMOKE, "trainer.max_epochs=2", "resume=true", out_dir=tmp_path)
    one_error(out, "does not match its checksum", "truncated or corrupt")
    assert not (run / "summary.json").exists()


def test_resume_with_another_recipe_is_refused(tmp_path):
    """#4: accepted; the summary reported the new recipe while the epoch ran at lr 0."""
    run = _finished_then_unfinished(tmp_path)
    out = cli(*SMOKE, "trainer.max_epochs=2", "resume=true", "optim.lr=0.3",
              "data.batch_size=32", out_dir=tmp_path)
    one_error(out, "unfinished run started with another recipe")
    assert not (run / "summary.json").exists()


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS], ids=["disk full", "read-only"])
def test_unwritable_output_is_one_message_and_leaves_no_partial_file(err, tmp_path,
                                                                     monkeypatch):
    """#5: 60-line tracebacks and truncated files written in place. Simulated: the tests run as
    root, where a full disk or a read-only folder cannot be made without mounting one."""
    import quantsurvey.atomic_io as atomic_io

    real = atomic_io.write_bytes_atomic

    def failing(path, data):
        if str(path).endswith(".ckpt"):  # the first checkpoint write fails
            raise OSError(err, os.strerror(err), str(path))
        return real(path, data)

    monkeypatch.setattr(atomic_io, "write_bytes_atomic", failing)
    monkeypatch.setattr("quantsurvey.lit.checkpoint_io.write_bytes_atomic", failing)
    cfg = compose_cfg([*SMOKE, f"paths.output_dir={tmp_path}"])
    with pytest.raises(OutputError, match="cannot write .*epoch0.ckpt: .*(full|read-only)"):
        train(cfg, tmp_path / "run")
    nothing_written(tmp_path)


def test_real_disk_full_error_from_the_atomic_writer(tmp_path, monkeypatch):
    """The writer itself: a failing write leaves neither the target nor a temporary file."""
    from quantsurvey.atomic_io import write_bytes_atomic

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: _Full(fd))
    with pytest.raises(OSError):
        write_bytes_atomic(tmp_path / "x.bin", b"12345")
    assert list(tmp_path.iterdir()) == []


class _Full:
    def __init__(self, fd):
        self.fd = fd

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.close(self.fd)

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_second_launch_of_a_running_job_is_refused(tmp_path):
    """#8: both crashed in the CSV logger and left a half-written folder."""
    run = tmp_path / "adhoc" / "adhoc" / "float" / "seed=0"
    with run_lock(run):  # the first launch, still running
        out = cli(*SMOKE, "paper=adhoc", "setting=adhoc", "name=float", out_dir=tmp_path)
    one_error(out, "being written by another process")
    nothing_written(tmp_path)


@pytest.mark.slow  # ≈ 15–19 s of subprocess launches; .ci/run runs it
def test_a_relaunched_sweep_skips_finished_jobs_and_runs_the_rest(tmp_path):
    """#9: stopped at job 0 with 'already holds a run' and never ran seed 1."""
    assert cli("-m", *SMOKE, "seed=0", out_dir=tmp_path).returncode == 0
    (first,) = tmp_path.rglob("summary.json")
    stamp = first.stat().st_mtime_ns
    out = cli("-m", *SMOKE, "seed=0,1", out_dir=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    seeds = sorted(json.loads(p.read_text())["seed"] for p in tmp_path.rglob("summary.json"))
    assert seeds == [0, 1] and first.stat().st_mtime_ns == stamp


def test_a_failing_job_does_not_stop_the_sweep(tmp_path):
    """One job's error used to end the multirun: the jobs after it never ran."""
    out = cli("-m", *SMOKE, "optim.lr=1e6,0.1", "trainer.max_epochs=3", out_dir=tmp_path)
    one_error(out, "1 job(s) of the sweep failed", "job 0 (", "optim.lr=1000000.0", code=3)
    assert "error in job 0" in out.stderr and "loss became" in out.stderr
    summaries = [json.loads(p.read_text()) for p in tmp_path.rglob("summary.json")]
    status = {s["config"]["optim"]["lr"]: s["status"] for s in summaries}
    assert status == {1e6: "failed", 0.1: "finished"}


def test_pipeline_empty_means_no_pipeline(tmp_path):
    """#7: `pipeline={}` ran the whole pipeline anyway."""
    base = ["experiment=han2015_pruning/lenet300_100_mnist", "data=synthetic", "trainer=smoke"]
    assert cli(*base, "pipeline={}", out_dir=tmp_path / "a").returncode == 0
    assert cli(*base, "~pipeline", out_dir=tmp_path / "b").returncode == 0
    for root in (tmp_path / "a", tmp_path / "b"):
        assert len(list(root.rglob("summary.json"))) == 1


def test_changed_recipe_or_other_data_is_not_reportable_and_summaries_are_readable(tmp_path):
    """#1/#10: a 3-epoch run kept `budget: cpu-30ep`; `model=lenet5 data=cifar10`-style runs
    were filed as reportable rows; summary.json was mode 0600."""
    assert cli(*SMOKE, "model=lenet5", "trainer.max_epochs=2", out_dir=tmp_path).returncode == 0
    (path,) = tmp_path.rglob("summary.json")
    s = json.loads(path.read_text())
    assert s["report"] is False and s["budget"] == "custom"
    # filed under the model and data it ran, not the experiment's lenet300_100_mnist
    assert s["setting"] == "lenet5_synthetic" and path.parent.parent.parent.name == s["setting"]
    assert "model" in s["report_reason"] and "trainer.max_epochs" in s["report_reason"]
    assert path.stat().st_mode & 0o044 == 0o044  # group and others may read it


def test_epochs_cut_by_batch_limits_are_never_reportable(tmp_path):
    """A run whose test pass saw one batch was a reportable row when only its data was real."""
    assert cli(*SMOKE, "trainer.limit_test_batches=3", out_dir=tmp_path).returncode == 0
    s = json.loads(next(tmp_path.rglob("summary.json")).read_text())
    assert s["report"] is False
    assert "trainer.limit_train_batches=2" in s["report_reason"]  # trainer=smoke's
    assert "trainer.limit_test_batches=3" in s["report_reason"]
    assert "limit_val_batches" not in s["report_reason"]  # 1.0: every batch


def test_report_collect_of_a_missing_folder(tmp_path):
    """#1: a mistyped DIR printed `collected 0 summaries`, exit 0."""
    import shutil

    results = tmp_path / "results"
    shutil.copytree(REPO / "results", results)
    before = _digest_tree(results)
    out = subprocess.run([sys.executable, "-m", "quantsurvey.report.build", "--collect",
                          str(tmp_path / "outptus"), "--results", str(results)], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    one_error(out, "outptus")
    assert _digest_tree(results) == before

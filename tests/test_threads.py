"""The torch thread count a run uses: the config's, else $OMP_NUM_THREADS, else the cores
available divided by the jobs running at once; recorded in the summary."""

import json

import torch

from quantsurvey import threads
from quantsurvey.train import train
from tests.conftest import compose_cfg


def test_default_divides_the_cores_among_parallel_jobs(monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 16)
    assert threads.default_threads() == 16
    assert threads.default_threads(parallel_jobs=4) == 4
    assert threads.default_threads(parallel_jobs=32) == 1  # never below one


def test_explicit_then_environment_then_cores(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(threads, "available_cores", lambda: 3)
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert threads.set_threads(None) == 3 and torch.get_num_threads() == 3
        assert threads.set_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        torch.set_num_threads(2)
        assert threads.set_threads(None) == 2  # the environment's choice is left alone
        assert threads.set_threads(3) == 3  # the config wins over it
    finally:
        torch.set_num_threads(before)


def test_a_run_records_the_threads_it_used(tmp_path):
    before = torch.get_num_threads()
    try:
        cfg = compose_cfg(["data=synthetic", "trainer=smoke", "~pipeline", "trainer.threads=1",
                           f"paths.output_dir={tmp_path}"])
        train(cfg, tmp_path / "run")
    finally:
        torch.set_num_threads(before)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["hardware"]["torch_threads"] == 1
    assert summary["config"]["trainer"]["threads"] == 1

"""The atomic CSV log writes what Lightning's own CSV logger writes, and a failed save leaves
the previous complete table on disk (Lightning's appends in place)."""

from __future__ import annotations

import errno
import os

import pytest
from pytorch_lightning.loggers import CSVLogger

import quantsurvey.atomic_io as atomic_io
from quantsurvey.lit.csv_log import AtomicCSVLogger

# a new column (val/err) appears at the third save, as when validation first runs
LOGS = [[({"train/loss": 2.3}, 0), ({"train/loss": 1.9}, 1)],
        [({"train/loss": 1.5}, 2)],
        [({"val/err": 12.5, "val/loss": 0.4}, 2), ({"train/loss": 1.1}, 3)]]


def _log(logger, saves):
    for rows in saves:
        for metrics, step in rows:
            logger.log_metrics(metrics, step)
        logger.save()


def test_same_table_as_lightnings_logger(tmp_path):
    ours = AtomicCSVLogger(tmp_path / "a", name="csv", version="")
    theirs = CSVLogger(tmp_path / "b", name="csv", version="")
    _log(ours, LOGS)
    _log(theirs, LOGS)
    text = (tmp_path / "a" / "csv" / "metrics.csv").read_text()
    assert text == (tmp_path / "b" / "csv" / "metrics.csv").read_text()
    lines = text.splitlines()
    assert lines[0] == "step,train/loss,val/err,val/loss" and len(lines) == 6


def test_a_failed_save_leaves_the_previous_complete_table(tmp_path, monkeypatch):
    logger = AtomicCSVLogger(tmp_path, name="csv", version="")
    _log(logger, LOGS[:2])
    path = tmp_path / "csv" / "metrics.csv"
    before = path.read_text()

    def disk_full(target, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))

    monkeypatch.setattr(atomic_io, "write_bytes_atomic", disk_full)
    with pytest.raises(OSError):
        _log(logger, LOGS[2:])
    assert path.read_text() == before and len(before.splitlines()) == 4
    assert sorted(p.name for p in path.parent.iterdir()) == ["metrics.csv"]

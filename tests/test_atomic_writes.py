"""summary.json (and model.pt) are published atomically: written whole to a temporary file beside
the target and renamed over it with os.replace, so a reader never sees half a file and a write
that fails midway leaves the previous file (or none) and no temporary file."""

from __future__ import annotations

import errno
import json
import os
import stat

import pytest

from quantsurvey.atomic_io import write_bytes_atomic, write_json_atomic
from quantsurvey.errors import OutputError
from quantsurvey.train import train

OLD = {"status": "finished", "metrics": {"test/err": 1.0}}
NEW = {"status": "finished", "metrics": {"test/err": 2.0, "test/top5_err": 0.5},
       "layers": {f"fc{i}": list(range(50)) for i in range(20)}}


def _spy_replace(monkeypatch, check=None, fail_for=()):
    """Record every os.replace(src, dst); `check(src, dst)` runs before the real rename; a
    destination named in `fail_for` fails as on a full disk instead."""
    real = os.replace
    calls = []

    def replace(src, dst, *args, **kwargs):
        calls.append((os.fspath(src), os.fspath(dst)))
        if os.path.basename(dst) in fail_for:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(dst))
        if check is not None:
            check(os.fspath(src), os.fspath(dst))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    return calls


def test_json_is_renamed_into_place_whole(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    target.write_text(json.dumps(OLD))

    def check(src, dst):
        # at the moment of publishing: the new text is complete in a file beside the target,
        # and the target still holds the previous summary
        assert os.path.dirname(src) == str(tmp_path) and src != dst
        assert json.loads(open(src).read()) == NEW
        assert json.loads(target.read_text()) == OLD

    calls = _spy_replace(monkeypatch, check)
    write_json_atomic(target, NEW)
    assert [dst for _, dst in calls] == [str(target)]
    assert json.loads(target.read_text()) == NEW
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_failed_rename_keeps_the_previous_summary_and_leaves_no_partial_file(tmp_path,
                                                                             monkeypatch):
    target = tmp_path / "summary.json"
    target.write_text(json.dumps(OLD))
    _spy_replace(monkeypatch, fail_for={"summary.json"})
    with pytest.raises(OSError) as info:
        write_json_atomic(target, NEW)
    assert info.value.errno == errno.ENOSPC
    assert json.loads(target.read_text()) == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


class _Unprintable:
    def __str__(self):
        raise RuntimeError("cannot be serialised")


def test_serialisation_failing_midway_keeps_the_previous_summary(tmp_path):
    """A value that fails half way through the JSON: the old file is untouched, whole."""
    target = tmp_path / "summary.json"
    target.write_text(json.dumps(OLD))
    with pytest.raises(RuntimeError, match="cannot be serialised"):
        write_json_atomic(target, {**NEW, "zz": _Unprintable()})
    assert json.loads(target.read_text()) == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_bytes_failing_midway_keep_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "model.pt"
    target.write_bytes(b"old model")
    real_fsync = os.fsync

    def fsync(fd):  # the data reached the temporary file, then the disk filled up
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError):
        write_bytes_atomic(target, b"new model " * 1000)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert target.read_bytes() == b"old model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_a_run_publishes_its_summary_and_model_by_rename(smoke_cfg, tmp_path, monkeypatch):
    run = tmp_path / "run"

    def check(src, dst):
        if dst.endswith("summary.json"):
            assert os.path.dirname(src) == str(run) and not os.path.exists(dst)
            assert json.loads(open(src).read())["metrics"]["test/err"] >= 0  # complete

    calls = _spy_replace(monkeypatch, check)
    metrics = train(smoke_cfg(), run)
    published = [os.path.basename(dst) for _, dst in calls]
    assert published.count("summary.json") == 1 and published.count("model.pt") == 1
    assert json.loads((run / "summary.json").read_text())["metrics"] == metrics
    assert not list(run.glob("*.tmp"))


def test_a_run_whose_summary_cannot_be_written_leaves_none(smoke_cfg, tmp_path, monkeypatch):
    run = tmp_path / "run"
    _spy_replace(monkeypatch, fail_for={"summary.json"})
    with pytest.raises(OutputError, match=r"cannot write .*summary\.json: the disk is full"):
        train(smoke_cfg(), run)
    assert not (run / "summary.json").exists()
    assert not [p for p in run.iterdir() if p.name.startswith("summary.json")]  # no partial
    assert (run / "checkpoints" / "last.ckpt").exists()  # the run can still be resumed


def test_missing_folders_are_made_and_json_keeps_its_committed_layout(tmp_path):
    """results/runs/**/summary.json are committed as written here: two-space indents, insertion
    order, a final newline, values JSON cannot hold written as text."""
    path = tmp_path / "a" / "b" / "summary.json"
    write_json_atomic(path, {"z": 1, "a": [1, 2], "p": tmp_path / "x"})
    assert path.read_text() == (f'{{\n  "z": 1,\n  "a": [\n    1,\n    2\n  ],\n'
                                f'  "p": "{tmp_path / "x"}"\n}}\n')

"""The run-directory policy on the compress recipe, without training: a finished or unfinished
run is reused or resumed only with the compress section it was made with (spelled any way that
means the same)."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from quantsurvey.errors import RunDirError
from quantsurvey.rundir import FINISHED, LAST_CKPT, SUMMARY, check_run_dir, recipe
from tests.conftest import compose_cfg


def _resolved(tmp_path, *overrides):
    from quantsurvey.config import validate_config

    rc = validate_config(compose_cfg(["data=synthetic", f"paths.output_dir={tmp_path}",
                                      *overrides]))
    return OmegaConf.to_container(OmegaConf.structured(rc), resolve=True)


PRUNE = "+compress.prune.quality.fc1=0.7"


def _finished(run_dir, config):
    run_dir.mkdir(parents=True)
    (run_dir / SUMMARY).write_text(json.dumps({"status": "finished", "config": config,
                                               "metrics": {"test/err": 1.0}}))


@pytest.mark.parametrize("other", [
    ["+compress.prune.quality.fc1=0.8"],  # another value
    ["+compress.prune.quality.fc2=0.7"],  # another layer
    ["+compress.prune.kept.fc1=0.7"],  # another rule
    [PRUNE, "+compress.share.bits.fc=4"],  # a method added
    [],  # the method removed
])
def test_finished_run_with_another_compress_section_is_refused(tmp_path, other):
    mine = _resolved(tmp_path, PRUNE)
    _finished(tmp_path / "run", mine)
    assert check_run_dir(tmp_path / "run", True, mine) == FINISHED
    theirs = _resolved(tmp_path, *other)
    assert recipe(theirs).get("compress") != recipe(mine).get("compress")
    with pytest.raises(RunDirError, match=r"finished run made with another recipe \(compress:"):
        check_run_dir(tmp_path / "run", True, theirs)


def test_the_same_compress_section_spelled_otherwise_is_reused(tmp_path):
    mine = _resolved(tmp_path, PRUNE)
    _finished(tmp_path / "run", mine)
    # defaults written out, and a null section: the same recipe
    same = _resolved(tmp_path, PRUNE, "+compress.prune.kept={}", "+compress.share=null")
    assert check_run_dir(tmp_path / "run", True, same) == FINISHED


def test_unfinished_run_with_another_compress_section_is_not_resumed(tmp_path):
    mine = _resolved(tmp_path, PRUNE)
    run = tmp_path / "run"
    (run / LAST_CKPT).parent.mkdir(parents=True)
    (run / LAST_CKPT).write_bytes(b"checkpoint")
    OmegaConf.save(OmegaConf.create(mine), run / "config.yaml")
    assert check_run_dir(run, True, mine) == run / LAST_CKPT
    with pytest.raises(RunDirError, match=r"unfinished run started with another recipe "
                                          r"\(compress:"):
        check_run_dir(run, True, _resolved(tmp_path, "+compress.prune.quality.fc1=0.6"))


def test_a_fresh_directory_under_resume_is_not_announced(tmp_path, caplog):
    """Every new pipeline stage runs with resume=true: its start is not reported as a resume
    that found nothing; a directory that holds files but no checkpoint still is."""
    import logging

    with caplog.at_level(logging.INFO, logger="quantsurvey"):
        assert check_run_dir(tmp_path / "new", True, {}) is None
        (tmp_path / "locked").mkdir()  # the run's own lock, taken before the check
        (tmp_path / "locked" / ".lock").write_text("123")
        assert check_run_dir(tmp_path / "locked", True, {}) is None
        assert "has no checkpoint" not in caplog.text
        (tmp_path / "old").mkdir()
        (tmp_path / "old" / "config.yaml").write_text("x: 1\n")
        assert check_run_dir(tmp_path / "old", True, {}) is None
        assert "has no checkpoint: starting from scratch" in caplog.text

"""The commit a run records: from git in a checkout; from $QUANTSURVEY_GIT_COMMIT, set by whoever
copied a clean checkout elsewhere (a GPU machine's copy held a stale .git that named the
previous commit), marked as such."""

from __future__ import annotations

import subprocess

from quantsurvey.provenance import REPO_ROOT, git_state


def test_a_checkout_records_its_head(monkeypatch):
    monkeypatch.delenv("QUANTSURVEY_GIT_COMMIT", raising=False)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                          text=True).stdout.strip()
    state = git_state()
    assert state["commit"] == head and "commit_from" not in state


def test_the_launchers_commit_wins_over_a_stale_git(monkeypatch):
    monkeypatch.setenv("QUANTSURVEY_GIT_COMMIT", "0" * 40)
    assert git_state() == {"commit": "0" * 40, "dirty": None, "commit_from": "environment"}


def test_a_copy_without_git_records_the_commit_it_was_given(monkeypatch, tmp_path):
    monkeypatch.delenv("QUANTSURVEY_GIT_COMMIT", raising=False)
    assert git_state(tmp_path) == {"commit": None, "dirty": None}
    monkeypatch.setenv("QUANTSURVEY_GIT_COMMIT", "ab" * 20)
    assert git_state(tmp_path) == {"commit": "ab" * 20, "dirty": None,
                                   "commit_from": "environment"}


def _repo(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)
    git("init", "-q")
    (tmp_path / ".gitignore").write_text("data/\n")
    (tmp_path / "quantsurvey").mkdir()
    (tmp_path / "quantsurvey" / "train.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    return git


def test_code_hidden_by_an_ignore_pattern_makes_the_tree_dirty(monkeypatch, tmp_path):
    monkeypatch.delenv("QUANTSURVEY_GIT_COMMIT", raising=False)
    _repo(tmp_path)
    assert git_state(tmp_path)["dirty"] is False
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "log.txt").write_text("a run's output is not code\n")
    assert git_state(tmp_path)["dirty"] is False
    (tmp_path / "quantsurvey" / "data").mkdir()
    (tmp_path / "quantsurvey" / "data" / "base.py").write_text("y = 2\n")  # ignored by data/
    state = git_state(tmp_path)
    assert state["dirty"] is True
    assert state["untracked_code"] == ["quantsurvey/data/base.py"]


def test_a_changed_tracked_file_makes_the_tree_dirty(monkeypatch, tmp_path):
    monkeypatch.delenv("QUANTSURVEY_GIT_COMMIT", raising=False)
    _repo(tmp_path)
    (tmp_path / "quantsurvey" / "train.py").write_text("x = 2\n")
    state = git_state(tmp_path)
    assert state["dirty"] is True and "untracked_code" not in state

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

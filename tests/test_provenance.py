"""The commit a run records: from git in a checkout, from $QUANTSURVEY_GIT_COMMIT in a copy of
the tree without its .git (a GPU machine), never invented."""

from __future__ import annotations

import subprocess

from quantsurvey.provenance import REPO_ROOT, git_state


def test_a_checkout_records_its_head(monkeypatch):
    monkeypatch.setenv("QUANTSURVEY_GIT_COMMIT", "0" * 40)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                          text=True).stdout.strip()
    state = git_state()
    assert state["commit"] == head and "commit_from" not in state  # git wins over the variable


def test_a_copy_without_git_records_the_commit_it_was_given(monkeypatch, tmp_path):
    monkeypatch.delenv("QUANTSURVEY_GIT_COMMIT", raising=False)
    assert git_state(tmp_path) == {"commit": None, "dirty": None}
    monkeypatch.setenv("QUANTSURVEY_GIT_COMMIT", "ab" * 20)
    assert git_state(tmp_path) == {"commit": "ab" * 20, "dirty": None,
                                   "commit_from": "environment"}

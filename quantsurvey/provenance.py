"""Where a result came from: git commit, package versions, hardware."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("torch", "torchvision", "pytorch-lightning", "torchmetrics", "hydra-core", "omegaconf",
            "wandb", "numpy", "scipy")


# code a run executes; a file of these that git does not track (untracked, or hidden by an
# ignore pattern) makes the tree dirty: the commit alone would not rebuild the run
CODE_PATHSPECS = ("quantsurvey/*.py", "conf/*.yaml")


def git_state(root: Path = REPO_ROOT) -> dict[str, Any]:
    """The commit of the checkout and whether it had uncommitted changes (None outside git):
    a tracked file changed, or code that git does not track (`CODE_PATHSPECS`, listed as
    `untracked_code`; an unanchored `data/` ignore pattern once hid a whole package this way).
    A copy of the tree sent elsewhere (a GPU machine) may carry no .git, or a stale one that
    names another commit: whoever made the copy from a clean checkout names its commit in
    $QUANTSURVEY_GIT_COMMIT, which then wins, recorded with `"commit_from": "environment"` and
    `dirty` unknown (None)."""
    def _git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                                 timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    if os.environ.get("QUANTSURVEY_GIT_COMMIT"):
        return {"commit": os.environ["QUANTSURVEY_GIT_COMMIT"], "dirty": None,
                "commit_from": "environment"}
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    untracked = _git("ls-files", "--others", "--", *CODE_PATHSPECS)
    if status is None or untracked is None:
        return {"commit": commit, "dirty": None}
    state = {"commit": commit, "dirty": bool(status or untracked)}
    if untracked:
        state["untracked_code"] = untracked.splitlines()
    return state


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict[str, Any]:
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpu = _cpu_model()
    return {"cpu": cpu, "cpu_cores": cores, "torch_threads": torch.get_num_threads(),
            "gpus": gpus, "platform": platform.platform(),
            "device": f"{gpus[0]} x{len(gpus)}" if gpus else f"cpu {cores} cores"}


def command_line() -> dict[str, Any]:
    """This run's command: Hydra's task overrides (for a sweep, this job's) and the command they
    make, so that the run can be composed again from today's configs; empty outside a Hydra
    command (a script or a test composing its own config)."""
    import shlex

    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    overrides = list(HydraConfig.get().overrides.task)
    return {"command": " ".join(["quantsurvey", *(shlex.quote(o) for o in overrides)]),
            "overrides": overrides}

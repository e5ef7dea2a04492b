"""The run-directory policy: a finished run is reused only when its recipe matches, an
unfinished one is resumed only on request, and nothing overwrites a run silently."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from quantsurvey.errors import RunDirError
from quantsurvey.methods import canonical_compress

SUMMARY = "summary.json"
LAST_CKPT = Path("checkpoints") / "last.ckpt"
FINISHED = Path("<finished>")  # check_run_dir's answer for a run that already completed
log = logging.getLogger("quantsurvey")

# what makes two runs the same experiment (paths, logging and progress bars do not)
RECIPE_KEYS = ("method", "seed", "loss", "mode", "model", "optim", "sched", "trainer.max_epochs",
               "data.name", "data.batch_size", "data.val_size", "data.split_seed",
               "data.augment", "data.pad", "data.params", "compress", "init_from",
               "callbacks.clip_weights")


def _defaults() -> dict[str, Any]:
    from quantsurvey.config import RunConfig

    return OmegaConf.to_container(OmegaConf.structured(RunConfig), resolve=True)


def _lookup(config: dict[str, Any], key: str) -> tuple[bool, Any]:
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def recipe(config: dict[str, Any]) -> dict[str, Any]:
    """The recipe keys of a resolved config, canonical: a key that a summary written by older
    code lacks takes today's default; `compress` keeps only its meaningful content."""
    defaults = _defaults()
    out = {}
    for key in RECIPE_KEYS:
        present, node = _lookup(config, key)
        if not present:
            node = _lookup(defaults, key)[1]
        if key == "compress":
            node = canonical_compress(node)
        if key == "init_from" and node:
            node = "/".join(Path(node).parts[-4:])  # paper/setting/stage/seed, not the root
        out[key] = node
    return out


def check_same_recipe(run_dir: Path, resolved: dict[str, Any]) -> None:
    """A finished run is reused only if it was made with the same recipe."""
    theirs = recipe(json.loads((run_dir / SUMMARY).read_text()).get("config", {}))
    mine = recipe(resolved)
    diff = [k for k in RECIPE_KEYS if theirs[k] != mine[k]]
    if diff:
        raise RunDirError(
            f"{run_dir} holds a finished run made with another recipe ({diff[0]}: "
            f"{theirs[diff[0]]!r} there, {mine[diff[0]]!r} now). Delete it, or give this run "
            f"another name=... / paths.output_dir.")


def check_run_dir(run_dir: Path, resume: bool, resolved: dict[str, Any]) -> Path | None:
    """The checkpoint to resume from, FINISHED, or None; refuse to overwrite a run."""
    last = run_dir / LAST_CKPT
    if resume:
        if (run_dir / SUMMARY).is_file():
            check_same_recipe(run_dir, resolved)
            return FINISHED
        if last.is_file():
            return last
        log.info("resume=true but %s has no checkpoint: starting from scratch", run_dir)
        return None
    if (run_dir / SUMMARY).exists() or last.exists():
        raise RunDirError(
            f"{run_dir} already holds a run ({SUMMARY} or a checkpoint). Pass resume=true to "
            f"continue it, choose another name=..., or delete the directory.")
    return None

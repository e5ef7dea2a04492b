"""The run-directory policy: a finished run is reused only when its recipe matches, an
unfinished one is resumed only on request, and nothing overwrites a run silently."""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from quantsurvey.distributed import is_rank_zero
from quantsurvey.errors import OutputError, RunDirError
from quantsurvey.methods import canonical_compress

SUMMARY = "summary.json"
LAST_CKPT = Path("checkpoints") / "last.ckpt"
FINISHED = Path("<finished>")  # check_run_dir's answer for a run that already completed
log = logging.getLogger("quantsurvey")

# what makes two runs the same experiment (paths, logging and progress bars do not)
RECIPE_KEYS = ("method", "seed", "loss", "mode", "model", "optim", "sched", "trainer.max_epochs",
               "trainer.limit_train_batches", "trainer.limit_val_batches",
               "trainer.limit_test_batches", "trainer.overfit_batches",
               "trainer.precision", "trainer.gradient_clip_val",
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
        if key == "model" and isinstance(node, dict):  # setting_name names a folder, no more
            node = {k: v for k, v in node.items() if k != "setting_name"}
        if key == "init_from" and node:
            node = "/".join(Path(node).parts[-4:])  # paper/setting/stage/seed, not the root
        out[key] = node
    return out


def first_difference(theirs: dict[str, Any], mine: dict[str, Any]) -> str | None:
    """'key: theirs there, mine now' for the first recipe key in which two configs differ."""
    a, b = recipe(theirs), recipe(mine)
    key = next((k for k in RECIPE_KEYS if a[k] != b[k]), None)
    return None if key is None else f"{key}: {a[key]!r} there, {b[key]!r} now"


def check_same_recipe(run_dir: Path, resolved: dict[str, Any]) -> None:
    """A finished run is reused only if it was made with the same recipe."""
    diff = first_difference(json.loads((run_dir / SUMMARY).read_text()).get("config", {}),
                            resolved)
    if diff:
        raise RunDirError(
            f"{run_dir} holds a finished run made with another recipe ({diff}). Delete it, or "
            f"give this run another name=... / paths.output_dir.")


def _check_resumed_recipe(run_dir: Path, resolved: dict[str, Any]) -> None:
    """An unfinished run continues only with the recipe it started with (its config.yaml)."""
    started = run_dir / "config.yaml"
    if not started.is_file():
        return
    diff = first_difference(OmegaConf.to_container(OmegaConf.load(started), resolve=True),
                            resolved)
    if diff:
        raise RunDirError(
            f"{run_dir} holds an unfinished run started with another recipe ({diff}); resuming "
            f"it would mix the two. Resume with the original settings, or give this run another "
            f"name=... / paths.output_dir.")


def check_run_dir(run_dir: Path, resume: bool, resolved: dict[str, Any]) -> Path | None:
    """The checkpoint to resume from, FINISHED, or None; refuse to overwrite a run."""
    last = run_dir / LAST_CKPT
    if (run_dir / SUMMARY).is_file():
        status = json.loads((run_dir / SUMMARY).read_text()).get("status", "finished")
        if status == "failed":
            raise RunDirError(
                f"{run_dir} holds a failed run (see its {SUMMARY}: 'error'). Delete the "
                f"directory to run it again, or choose another name=....")
    if last.is_symlink() and not last.exists():
        raise RunDirError(
            f"{last} points to a checkpoint that is gone (the run stopped while replacing it). "
            f"Point it at the newest checkpoints/epoch*.ckpt, or delete the directory to start "
            f"over.")
    if resume:
        if (run_dir / SUMMARY).is_file():
            check_same_recipe(run_dir, resolved)
            return FINISHED
        if last.is_file():
            _check_resumed_recipe(run_dir, resolved)
            return last
        # a new directory (every fresh pipeline stage runs with resume=true) is not news
        # (the run's own .lock, taken before this check, is not a file of an earlier run)
        held = run_dir.is_dir() and any(p.name != ".lock" for p in run_dir.iterdir())
        # (in a data-parallel run, rank 0 has written there already: the others keep quiet)
        say = log.info if held and is_rank_zero() else log.debug
        say("resume=true but %s has no checkpoint: starting from scratch", run_dir)
        return None
    if (run_dir / SUMMARY).exists() or last.exists():
        raise RunDirError(
            f"{run_dir} already holds a run ({SUMMARY} or a checkpoint). Pass resume=true to "
            f"continue it, choose another name=..., or delete the directory.")
    return None


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold `<run_dir>/.lock` while a run writes there: a second process started on the same
    directory is refused instead of interleaving its files with the first's."""
    with output_errors(run_dir):
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = open(run_dir / ".lock", "a+")  # noqa: SIM115  (held for the whole run)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        pid = handle.read().strip()
        handle.close()
        raise RunDirError(
            f"{run_dir} is being written by another process{f' (pid {pid})' if pid else ''}: "
            f"wait for it to finish (then resume=true continues or reuses it), or choose "
            f"another name=... / paths.output_dir.") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


_NO_WRITE = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
             errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
             errno.EPERM: "permission denied"}


@contextmanager
def output_errors(run_dir: Path) -> Iterator[None]:
    """Turn a failed write under the run directory into one message naming the path."""
    try:
        yield
    except OSError as err:
        inside = err.filename is None or Path(str(err.filename)).resolve().is_relative_to(
            Path(run_dir).resolve())
        if err.errno not in _NO_WRITE or not inside:  # e.g. data it could not read
            raise
        where = err.filename or run_dir
        raise OutputError(
            f"cannot write {where}: {_NO_WRITE[err.errno]}. Free space or choose a writable "
            f"paths.output_dir=...; files written atomically were left as they were (the last "
            f"complete checkpoint stays usable with resume=true).") from None

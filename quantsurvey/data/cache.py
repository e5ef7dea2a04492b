"""Decoded data sets cached as uint8 tensors, written atomically (temp file, then rename)."""

from __future__ import annotations

import contextlib
import errno
import math
import os
import tempfile
from pathlib import Path

import torch

from quantsurvey.errors import DataError

_NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


def save_tensors_atomic(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Write `tensors` to `path`; a cache that cannot be written is a DataError that names the
    cache (not the data, which was read fine) and says how to point the cache elsewhere."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        # a Python file object, so that a full disk surfaces as OSError(ENOSPC), not as
        # torch's own RuntimeError from its C++ writer
        with os.fdopen(fd, "wb") as f:
            torch.save(tensors, f)
        os.replace(tmp, path)
    except OSError as err:
        size = sum(t.numel() * t.element_size() for t in tensors.values())
        raise DataError(cache_write_message(path, err, size)) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            with contextlib.suppress(OSError):
                os.remove(tmp)


def cache_write_message(path: Path, err: OSError, size: int) -> str:
    folder = path.parent
    what = f"The data cache file {path} could not be written ({type(err).__name__}: {err})"
    fine = "The data set itself was read fine: this is about the cache folder only."
    elsewhere = "paths.cache_dir=/path/to/a/writable/folder"
    if err.errno in _NO_SPACE:
        return (f"{what}: the disk (or quota) holding {folder} is full. {fine} Free at least "
                f"{max(1, math.ceil(size / 2**20)):,} MiB there, or set {elsewhere} on a disk "
                f"with room.")
    if err.errno in _NOT_WRITABLE:
        why = "is on a read-only file system" if err.errno == errno.EROFS else "is not writable"
        return (f"{what}: the cache folder {folder} {why}. {fine} Set {elsewhere} (or the "
                f"QUANTSURVEY_CACHE environment variable), or make {folder} writable.")
    return (f"{what}. {fine} Set {elsewhere} (or the QUANTSURVEY_CACHE environment "
            f"variable) to a folder that can be written.")


def load_tensors(path: Path) -> dict[str, torch.Tensor] | None:
    """The cached tensors, or None if the cache is absent or unreadable (it is then rebuilt)."""
    if not path.is_file():
        return None
    try:
        return torch.load(path, weights_only=True)
    except Exception:
        return None

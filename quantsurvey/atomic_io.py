"""Files written atomically: in memory, to a temporary file beside the target, flushed to disk,
then renamed into place. A reader never sees half a file; a failed write (disk full, read-only)
leaves the old file (or none) and no temporary file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, flush it to disk, then rename: a reader never
    sees half a file, and a failed write (disk full, read-only) leaves the old file (or none)
    and no temporary file. Mode 0666 less the umask, like an ordinary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json_atomic(path: Path, data: Any) -> None:
    """JSON (insertion order: layers stay in model order), written atomically."""
    text = json.dumps(data, indent=2, default=str) + "\n"
    write_bytes_atomic(Path(path), text.encode())


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(Path(path), text.encode())

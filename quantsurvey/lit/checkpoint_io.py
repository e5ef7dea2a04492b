"""Checkpoints written atomically with a SHA-256 beside them, verified before a resume.

A checkpoint is serialised in memory, written to a temporary file, flushed and renamed, then its
digest is written to `<file>.sha256`; a disk that fills up mid-write leaves the previous
checkpoint intact and no partial file. Before a run resumes, `verify_checkpoint` recomputes the
digest: a flipped bit or a truncated file is one clear error, never trained on.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.plugins import TorchCheckpointIO

from quantsurvey.atomic_io import write_bytes_atomic
from quantsurvey.errors import CheckpointError

DIGEST_SUFFIX = ".sha256"


def digest_path(ckpt: Path) -> Path:
    ckpt = Path(ckpt).resolve()  # last.ckpt is a link to the newest epoch's file
    return ckpt.with_name(ckpt.name + DIGEST_SUFFIX)


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any,
                        storage_options: Any | None = None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        data = buffer.getvalue()
        write_bytes_atomic(Path(path), data)
        write_bytes_atomic(digest_path(Path(path)), hashlib.sha256(data).hexdigest().encode())

    def remove_checkpoint(self, path: Any) -> None:
        if Path(path).is_symlink():  # last.ckpt: the digest belongs to the file it points to
            super().remove_checkpoint(path)
            return
        digest = digest_path(Path(path))
        super().remove_checkpoint(path)
        if digest.exists():
            os.remove(digest)


def verify_checkpoint(ckpt: Path) -> bool:
    """True if the checkpoint matches its recorded digest; False if none was recorded (written
    before digests existed). A mismatch raises CheckpointError."""
    digest = digest_path(ckpt)
    if not digest.is_file():
        return False
    expected = digest.read_text().strip()
    actual = hashlib.sha256(Path(ckpt).resolve().read_bytes()).hexdigest()
    if actual != expected:
        raise CheckpointError(
            f"checkpoint {ckpt} does not match its checksum ({digest.name}): it is truncated or "
            f"corrupt and will not be trained on. Delete the run directory to start over.")
    return True

"""Keep one metrics.csv across an interrupted and resumed run.

Lightning's CSV logger deletes an existing metrics.csv when it starts. Before a resume we set the
old file aside; after the run we put back its rows that precede the checkpoint (global step below
the checkpoint's), so the log reads as one uninterrupted run.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from quantsurvey.atomic_io import write_text_atomic

SET_ASIDE = "metrics.before-resume.csv"


def set_aside(csv_dir: Path) -> None:
    current = csv_dir / "metrics.csv"
    if current.is_file():
        current.replace(csv_dir / SET_ASIDE)


def merge_back(csv_dir: Path, resume_step: int) -> None:
    old_path, new_path = csv_dir / SET_ASIDE, csv_dir / "metrics.csv"
    if not old_path.is_file():
        return
    with open(old_path, newline="") as f:
        old = [r for r in csv.DictReader(f) if r.get("step") and int(r["step"]) < resume_step]
    new: list[dict[str, str]] = []
    if new_path.is_file():
        with open(new_path, newline="") as f:
            new = list(csv.DictReader(f))
    keys = sorted(set().union(*(r.keys() for r in old + new)))
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=keys)
    writer.writeheader()
    writer.writerows(old + new)
    write_text_atomic(new_path, buffer.getvalue())
    old_path.unlink()

"""Matplotlib without a display, and PNG files that are the same bytes every time they are
drawn (no software/date metadata), so a redrawn figure can be compared with the committed one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plt", "save_png"]


def save_png(fig: Any, target: Path) -> Path:
    """Lay out, write `target` (its folder made if needed) at 120 dpi, close the figure."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(target, dpi=120, metadata={"Software": None})
    plt.close(fig)
    return target

"""`quantsurvey-report --to-wandb ENTITY/PROJECT`: the reproduced table and the survey figures
into one W&B run (job_type `report`, group `report`), beside the runs they come from: the table
as a W&B Table (its columns are results.csv's), each figure as an image."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from quantsurvey.provenance import git_state


def log_report(project: str, rows: list[dict[str, str]], figures: list[Path],
               offline: bool = False) -> str:
    """Log and finish the run; returns a line saying where it went."""
    import wandb

    from quantsurvey.report.build import COLUMNS

    entity, _, name = project.rpartition("/")
    commit = (git_state().get("commit") or "unknown")[:12]
    out = Path(os.environ.get("QUANTSURVEY_OUTPUT", "outputs"))
    out.mkdir(parents=True, exist_ok=True)
    run: Any = wandb.init(project=name, entity=entity or None, job_type="report", group="report",
                          name=f"report/{commit}", dir=str(out),
                          mode="offline" if offline else "online",
                          config={"commit": commit, "rows": len(rows)})
    try:
        run.log({"results": wandb.Table(columns=COLUMNS,
                                        data=[[row[c] for c in COLUMNS] for row in rows]),
                 **{f"figures/{path.stem}": wandb.Image(str(path))
                    for path in figures if path.suffix == ".png"}})
    finally:
        run.finish()
    return (f"logged the table ({len(rows)} rows) and {sum(p.suffix == '.png' for p in figures)} "
            f"figures to W&B run {run.id} of {project}" + (" (offline)" if offline else ""))

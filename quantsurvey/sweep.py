"""What a multirun needs beyond Hydra: a job's error recorded where the launching process finds
it, whichever launcher ran the job (the basic one in this process, joblib in worker processes,
submitit on other machines), and the value a sweeper optimises.

A failed job writes `<sweep dir>/failed_jobs/<job number>.json`; `FailedJobs.on_multirun_end`
(a Hydra callback, in the launching process) reads them so that `quantsurvey -m` ends with one
error line and a non-zero exit once every job has run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from quantsurvey.errors import ConfigError

FAILED_DIR = "failed_jobs"
FAILED_JOBS: list[tuple[str, int]] = []  # (description, exit code), filled at the multirun's end


def record_failure(sweep_dir: str, job_num: int, description: str, exit_code: int) -> None:
    folder = Path(sweep_dir) / FAILED_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{job_num}.json").write_text(json.dumps(
        {"job": description, "exit_code": exit_code}))


class FailedJobs(Callback):
    """Collects the failure records of the sweep that just ended, in job order."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        folder = Path(str(config.hydra.sweep.dir)) / FAILED_DIR
        records = sorted(folder.glob("*.json"), key=lambda p: int(p.stem))
        for path in records:
            record = json.loads(path.read_text())
            FAILED_JOBS.append((record["job"], int(record["exit_code"])))


def objective(metrics: dict[str, float], names: list[str]) -> float | tuple[float, ...]:
    """The metrics named by the config's `objective` (a sweeper minimises or maximises them as
    its `direction` says); NaN for a job that failed before it had them."""
    missing = [n for n in names if n not in metrics]
    if missing:
        raise ConfigError(f"objective={names}: this run has no metric {', '.join(missing)}; "
                          f"it has {', '.join(sorted(metrics))}.")
    values = tuple(float(metrics[n]) for n in names)
    return values[0] if len(values) == 1 else values


def failed_objective(names: list[str]) -> float | tuple[float, ...]:
    return math.nan if len(names) == 1 else tuple(math.nan for _ in names)

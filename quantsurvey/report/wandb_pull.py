"""Runs logged to Weights & Biases, back as run summaries: `quantsurvey-report --from-wandb
ENTITY/PROJECT` (online, through W&B's public API) or `--from-wandb-offline PATH …` (the
`run-<id>.wandb` files of offline runs, read without an account). Every run this framework logs
carries its whole summary.json in its W&B summary (`quantsurvey/summary`), so the pulled runs
build exactly the tables and figures the local summaries build; runs without it (logged by
something else, or crashed before their end) are counted and left out."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantsurvey.assemble import WANDB_SUMMARY_KEY
from quantsurvey.errors import QuantsurveyError


class PullError(QuantsurveyError):
    pass


@dataclass
class Pulled:
    summaries: dict[str, dict[str, Any]]  # W&B run id (or file) -> summary.json
    without_summary: int  # runs that carry none


def _plain(value: Any) -> Any:
    """W&B's summary objects (SummarySubDict, …) as plain JSON values."""
    return json.loads(json.dumps(value, default=lambda o: dict(o)))


def from_offline(paths: Iterable[Path]) -> Pulled:
    """The summaries in every offline run file under `paths` (files or folders). A run resumed
    after a crash has one file per attempt; only the last one's end carries the summary."""
    from quantsurvey.report.wandb_records import read_records, run_info, run_summary

    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(path.rglob("run-*.wandb"))
        elif path.is_file():
            files.append(path)
        else:
            raise PullError(f"--from-wandb-offline: {path} does not exist")
    if not files:
        raise PullError("--from-wandb-offline: no run-*.wandb file under "
                        + ", ".join(map(str, paths)))
    out: dict[str, dict[str, Any]] = {}
    runs_seen, runs_with = set(), set()
    for file in files:
        try:
            records = read_records(file)
            run_id = run_info(records)["id"]
        except Exception as err:  # not W&B's format, cut short, a protobuf it cannot parse
            raise PullError(f"{file}: not a readable W&B run file ({type(err).__name__}: "
                            f"{err})") from None
        runs_seen.add(run_id)
        summary = run_summary(records).get(WANDB_SUMMARY_KEY)
        if isinstance(summary, dict):
            out[f"{run_id}-{file.parent.name}"] = summary
            runs_with.add(run_id)
    return Pulled(out, len(runs_seen - runs_with))


def from_api(project: str, api: Any = None) -> Pulled:
    """The summaries of every run of `project` ("entity/project" or "project"), online."""
    if api is None:
        import wandb

        try:
            api = wandb.Api()
        except Exception as err:  # no login, no network
            raise PullError(f"--from-wandb {project}: cannot reach W&B ({err}); run `wandb "
                            f"login` first, or pull offline run files with "
                            f"--from-wandb-offline") from None
    out: dict[str, dict[str, Any]] = {}
    without = 0
    for run in api.runs(project):
        summary = run.summary.get(WANDB_SUMMARY_KEY)
        if summary is None:
            without += 1
            continue
        out[run.id] = _plain(summary)
    return Pulled(out, without)


def write_run_folders(pulled: Pulled, dest: Path) -> Path:
    """Each pulled summary as `<dest>/<run>/summary.json`, the layout `--collect` reads."""
    for key, summary in pulled.summaries.items():
        folder = dest / key
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
    return dest

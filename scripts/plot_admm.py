"""Zhang et al. 2018 figures: the per-layer primal residual ‖W − Z‖/‖W‖ over the ADMM iterations
(from the ADMM stages' summaries, `compression.admm_history`, one line per layer and seed), and
test error against the kept fraction of weights for ADMM and magnitude pruning (`--stages`: the
experiment's stage folders; Han 2015's iterative path through iter1 … iter4, one-shot, ADMM +
retraining, and the float model at 100%; mean and spread over the seeds).

    python scripts/plot_admm.py --runs outputs/zhang2018_admm \
        --stages outputs/zhang2018_admm/lenet5_mnist      # after running the experiment
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from quantsurvey.report.admm_figures import (
    KEPT,
    RESIDUALS,
    draw_kept,
    draw_residuals,
    kept_record,
    residual_record,
    write_record,
)

REPO = Path(__file__).resolve().parent.parent


def admm_summaries(root: Path) -> list[dict]:
    out = []
    for path in sorted(root.rglob("*.json")):
        try:
            s = json.loads(path.read_text())
        except (ValueError, OSError):
            continue
        if isinstance(s, dict) and (s.get("compression") or {}).get("admm_history"):
            out.append(s)
    return out


def _seeds(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("seed=*/summary.json"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=REPO / "results" / "runs" / "zhang2018_admm")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "figures")
    parser.add_argument("--stages", type=Path, default=None,
                        help="the experiment's stage folders (outputs/zhang2018_admm/<setting>)")
    parser.add_argument("--float-runs", type=Path, default=None,
                        help="the float stage's folder (outputs/han2015_pruning/<setting>/float)")
    args = parser.parse_args()
    summaries = admm_summaries(args.runs)
    if not summaries:
        raise SystemExit(f"no ADMM summaries (compression.admm_history) under {args.runs}")
    args.out.mkdir(parents=True, exist_ok=True)
    setting = summaries[0]["setting"]
    # the plotted series with where they came from (the ADMM stages are intermediate stages,
    # so their summaries are not among results/runs): quantsurvey-report redraws from them
    record = residual_record(summaries)
    write_record(record, args.out / f"{RESIDUALS}{setting}.png")
    print(draw_residuals(record, setting, args.out))
    if args.stages:
        stages = {name: _seeds(args.stages / name) for name in
                  ("retrain", "oneshot", "iter1", "iter2", "iter3", "iter4")}
        kept = kept_record(stages, _seeds(args.float_runs) if args.float_runs else [])
        write_record(kept, args.out / f"{KEPT}{args.stages.name}.png")
        print(draw_kept(kept, args.stages.name, args.out))


if __name__ == "__main__":
    main()

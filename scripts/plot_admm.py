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

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

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
    fig, ax = plt.subplots(figsize=(6, 4))
    for s in summaries:
        history = s["compression"]["admm_history"]
        layers = [k.removeprefix("residual/") for k in history[0] if k.startswith("residual/")]
        for i, layer in enumerate(layers):
            ax.plot([h["iteration"] for h in history], [h[f"residual/{layer}"] for h in history],
                    color=f"C{i}", alpha=0.7, label=layer if s is summaries[0] else None)
    ax.set_yscale("log")
    ax.set_xlabel("ADMM iteration (Z/U update)")
    ax.set_ylabel("‖W − Z‖ / ‖W‖")
    seeds = sorted({s["seed"] for s in summaries})
    ax.set_title(f"{summaries[0]['setting']}: primal residual per layer (seeds {seeds})")
    ax.legend()
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"admm_residuals_{summaries[0]['setting']}.png"
    fig.tight_layout()
    fig.savefig(target, dpi=120)
    # the plotted series with where they came from (the ADMM stages are intermediate stages,
    # so their summaries are not among results/runs)
    data = [{"seed": s["seed"], "git": s["git"], "budget": s["budget"],
             "hardware": s["hardware"]["device"], "wall_time_s": s["wall_time_s"],
             "admm": s["config"]["compress"]["admm"],
             "history": s["compression"]["admm_history"],
             "support_agreement": s["compression"]["admm_support_agreement"]}
            for s in summaries]
    target.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n")
    print(target)
    if args.stages:
        print(plot_kept(args.stages, args.float_runs, args.out))


KEPT_SERIES = (("ADMM + retraining", ["retrain"], "s"),
               ("one-shot magnitude + retraining", ["oneshot"], "^"),
               ("iterative magnitude (Han 2015)", ["iter1", "iter2", "iter3", "iter4"], "o"))


def plot_kept(stages: Path, float_runs: Path | None, out: Path) -> Path:
    """Test error (mean, min–max over seeds) against kept % of the weights, per method."""
    import statistics

    def load(stage: str) -> list[dict]:
        paths = sorted((stages / stage).glob("seed=*/summary.json"))
        return [json.loads(p.read_text()) for p in paths]

    fig, ax = plt.subplots(figsize=(6, 4))
    record = {}
    floats = load_float(float_runs) if float_runs else []
    for i, (label, names, marker) in enumerate(KEPT_SERIES):
        xs, ys, lo, hi, rows = [], [], [], [], []
        for name in names:
            runs = load(name)
            if not runs:
                continue
            kept = [100.0 / r["metrics"]["compress/weight_ratio"] for r in runs]
            err = [r["metrics"]["test/err"] for r in runs]
            xs.append(statistics.fmean(kept))
            ys.append(statistics.fmean(err))
            lo.append(ys[-1] - min(err))
            hi.append(max(err) - ys[-1])
            rows.append({"stage": name, "seeds": [r["seed"] for r in runs], "kept_pct": kept,
                         "test_err": err, "git": sorted({r["git"]["commit"][:12] for r in runs}),
                         "budget": runs[0]["budget"]})
        if xs:
            ax.errorbar(xs, ys, yerr=[lo, hi], marker=marker, color=f"C{i}", label=label,
                        capsize=3, ls="-" if len(xs) > 1 else "none")
            record[label] = rows
    if floats:
        err = [r["metrics"]["test/err"] for r in floats]
        ax.errorbar([100.0], [statistics.fmean(err)],
                    yerr=[[statistics.fmean(err) - min(err)], [max(err) - statistics.fmean(err)]],
                    marker="D", color="k", label="float", capsize=3)
        record["float"] = [{"seeds": [r["seed"] for r in floats], "test_err": err}]
    ax.set_xscale("log")
    ax.set_xlabel("weights kept (%), weights only (Zhang's accounting)")
    ax.set_ylabel("test error (%)")
    ax.set_title(f"{stages.name}: error against kept fraction (ours)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    target = out / f"admm_error_vs_kept_{stages.name}.png"
    fig.savefig(target, dpi=120)
    target.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    return target


def load_float(runs: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(runs.glob("seed=*/summary.json"))]


if __name__ == "__main__":
    main()

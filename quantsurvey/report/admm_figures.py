"""Zhang et al. 2018's two figures, drawn from their records (the JSON beside each PNG in
results/figures/): the per-layer primal residual ‖W − Z‖/‖W‖ over the ADMM iterations, and
test error against the kept fraction of weights for ADMM and magnitude pruning.

`scripts/plot_admm.py` makes the records from an experiment's stage summaries (intermediate
stages, which results/runs does not keep) and draws them; `quantsurvey-report` redraws every
committed record, byte for byte the same, so the figures regenerate from what is committed."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from quantsurvey.report.figure_files import plt, save_png

KEPT_SERIES = (("ADMM + retraining", ["retrain"], "s"),
               ("one-shot magnitude + retraining", ["oneshot"], "^"),
               ("iterative magnitude (Han 2015)", ["iter1", "iter2", "iter3", "iter4"], "o"))
RESIDUALS, KEPT = "admm_residuals_", "admm_error_vs_kept_"


def residual_record(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The plotted series of the ADMM stages' summaries (`compression.admm_history`), with where
    they came from."""
    return [{"seed": s["seed"], "git": s["git"], "budget": s["budget"],
             "hardware": s["hardware"]["device"], "wall_time_s": s["wall_time_s"],
             "admm": s["config"]["compress"]["admm"],
             "history": s["compression"]["admm_history"],
             "support_agreement": s["compression"]["admm_support_agreement"]}
            for s in summaries]


def kept_record(stages: dict[str, list[dict[str, Any]]], floats: list[dict[str, Any]]
                ) -> dict[str, list[dict[str, Any]]]:
    """Per series, per stage: kept % (weights only, Zhang's accounting) and test error of each
    seed; `stages` maps a stage name to its seeds' summaries."""
    record: dict[str, list[dict[str, Any]]] = {}
    for label, names, _ in KEPT_SERIES:
        rows = []
        for name in names:
            runs = stages.get(name) or []
            if runs:
                rows.append({"stage": name, "seeds": [r["seed"] for r in runs],
                             "kept_pct": [100.0 / r["metrics"]["compress/weight_ratio"]
                                          for r in runs],
                             "test_err": [r["metrics"]["test/err"] for r in runs],
                             "git": sorted({r["git"]["commit"][:12] for r in runs}),
                             "budget": runs[0]["budget"]})
        if rows:
            record[label] = rows
    if floats:
        record["float"] = [{"seeds": [r["seed"] for r in floats],
                            "test_err": [r["metrics"]["test/err"] for r in floats]}]
    return record


def draw_residuals(record: list[dict[str, Any]], setting: str, out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    for j, run in enumerate(record):
        history = run["history"]
        layers = [k.removeprefix("residual/") for k in history[0] if k.startswith("residual/")]
        for i, layer in enumerate(layers):
            ax.plot([h["iteration"] for h in history], [h[f"residual/{layer}"] for h in history],
                    color=f"C{i}", alpha=0.7, label=layer if j == 0 else None)
    ax.set_yscale("log")
    ax.set_xlabel("ADMM iteration (Z/U update)")
    ax.set_ylabel("‖W − Z‖ / ‖W‖")
    seeds = sorted({run["seed"] for run in record})
    ax.set_title(f"{setting}: primal residual per layer (seeds {seeds})")
    ax.legend()
    return save_png(fig, out / f"{RESIDUALS}{setting}.png")


def draw_kept(record: dict[str, list[dict[str, Any]]], setting: str, out: Path) -> Path:
    """Test error (mean, min–max over seeds) against kept % of the weights, per method."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (label, _, marker) in enumerate(KEPT_SERIES):
        rows = record.get(label)
        if not rows:
            continue
        xs = [statistics.fmean(r["kept_pct"]) for r in rows]
        ys = [statistics.fmean(r["test_err"]) for r in rows]
        lo = [y - min(r["test_err"]) for y, r in zip(ys, rows, strict=True)]
        hi = [max(r["test_err"]) - y for y, r in zip(ys, rows, strict=True)]
        ax.errorbar(xs, ys, yerr=[lo, hi], marker=marker, color=f"C{i}", label=label,
                    capsize=3, ls="-" if len(xs) > 1 else "none")
    if record.get("float"):
        err = record["float"][0]["test_err"]
        mean = statistics.fmean(err)
        ax.errorbar([100.0], [mean], yerr=[[mean - min(err)], [max(err) - mean]], marker="D",
                    color="k", label="float", capsize=3)
    ax.set_xscale("log")
    ax.set_xlabel("weights kept (%), weights only (Zhang's accounting)")
    ax.set_ylabel("test error (%)")
    ax.set_title(f"{setting}: error against kept fraction (ours)", fontsize=10)
    ax.legend(fontsize=8)
    return save_png(fig, out / f"{KEPT}{setting}.png")


def write_record(record: Any, png: Path) -> None:
    png.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")


def redraw_all(figures: Path) -> list[Path]:
    """Every committed ADMM record in `figures`, drawn again beside it."""
    drawn = []
    for path in sorted(figures.glob(f"{RESIDUALS}*.json")):
        drawn.append(draw_residuals(json.loads(path.read_text()),
                                    path.stem.removeprefix(RESIDUALS), figures))
    for path in sorted(figures.glob(f"{KEPT}*.json")):
        drawn.append(draw_kept(json.loads(path.read_text()), path.stem.removeprefix(KEPT),
                               figures))
    return drawn

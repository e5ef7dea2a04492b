"""Per-layer kept fractions of the pruned models (results/figures/kept_per_layer_<setting>.*):
for each layer, the % of its weights that each pruning method of each paper kept (ours: mean
over the seeds, whiskers min–max, filled; the paper's own per-layer figures hollow beside them).
Ours come from the committed summaries (`compression.prune_kept_pct`, weights only), the papers'
from `layer_kept_pct` in experiments/<paper>/reported.yaml (Han 2015 Tables 2–3; Zhang 2018's
per-layer targets)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from quantsurvey.report.figure_files import plt, save_png

PREFIX = "kept_per_layer_"


def ours_per_layer(summaries: list[dict[str, Any]]
                   ) -> dict[str, dict[str, list[dict[str, float]]]]:
    """setting → 'paper: method [budget]' → each seed's {layer: kept %}."""
    found: dict[str, dict[str, list[dict[str, float]]]] = defaultdict(lambda: defaultdict(list))
    for s in sorted(summaries, key=lambda s: (s["paper"], s["method"], s["budget"], s["seed"])):
        kept = (s.get("compression") or {}).get("prune_kept_pct")
        if kept:
            found[s["setting"]][f"{s['paper']}: {s['method']} [{s['budget']}]"].append(kept)
    return found


def papers_per_layer(experiments_dir: Path) -> dict[str, dict[str, dict[str, float]]]:
    """setting → 'paper: method (paper)' → {layer: kept %}, from every reported.yaml."""
    found: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for path in sorted(experiments_dir.glob("*/reported.yaml")):
        doc = yaml.safe_load(path.read_text())
        for row in doc.get("rows", []):
            if row.get("layer_kept_pct"):
                found[row["setting"]][f"{doc['paper']}: {row['method']} (paper)"] = {
                    str(k): float(v) for k, v in row["layer_kept_pct"].items()}
    return found


def draw(setting: str, ours: dict[str, list[dict[str, float]]],
         papers: dict[str, dict[str, float]], out_dir: Path) -> list[Path]:
    """Grouped bars, one group per layer, on a log axis (0.9% beside 66%)."""
    layers = list(dict.fromkeys(layer for runs in ours.values() for run in runs for layer in run))
    series = [(label, True) for label in ours] + [(label, False) for label in papers]
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(layers) + 2), 4.5))
    colors: dict[str, str] = {}  # 'paper: method' → colour, shared by ours and the paper's
    lowest = 100.0
    for i, (label, is_ours) in enumerate(series):
        xs = [j - 0.4 + (i + 0.5) * width for j in range(len(layers))]
        key = label.rsplit(" [", 1)[0] if is_ours else label.removesuffix(" (paper)")
        color = colors.setdefault(key, f"C{len(colors)}")
        if is_ours:
            runs = ours[label]
            values = [[run[layer] for run in runs if layer in run] for layer in layers]
            means = [statistics.fmean(v) if v else float("nan") for v in values]
            err = [[m - min(v) if v else 0 for m, v in zip(means, values, strict=True)],
                   [max(v) - m if v else 0 for m, v in zip(means, values, strict=True)]]
            lowest = min([lowest, *(min(v) for v in values if v)])
            ax.bar(xs, means, width, color=color, yerr=err, capsize=2,
                   label=f"{label} (ours, {len(runs)} seed{'s' if len(runs) > 1 else ''})")
        else:
            values = [papers[label].get(layer, float("nan")) for layer in layers]
            lowest = min([lowest, *(v for v in values if v == v)])
            ax.bar(xs, values, width, fill=False, edgecolor=color, hatch="//", label=label)
    ax.set_xticks(range(len(layers)), layers)
    ax.set_yscale("log")
    ax.set_ylim(lowest / 2, 100)
    ax.set_ylabel("weights kept (%)")
    ax.set_title(f"{setting}: weights kept per layer, pruning methods", fontsize=10)
    ax.grid(True, axis="y", which="both", lw=0.3, alpha=0.5)
    ax.legend(fontsize=7)
    png = out_dir / f"{PREFIX}{setting}.png"
    pdf = png.with_suffix(".pdf")
    pdf.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(pdf, metadata={"CreationDate": None, "Creator": None, "Producer": None})
    return [save_png(fig, png), pdf]


def draw_all(summaries: list[dict[str, Any]], experiments_dir: Path, out_dir: Path
             ) -> list[Path]:
    """One figure per setting that has a pruned run of ours."""
    papers = papers_per_layer(experiments_dir)
    return [path for setting, ours in sorted(ours_per_layer(summaries).items())
            for path in draw(setting, ours, papers.get(setting, {}), out_dir)]

"""The survey's picture, one chart per model / data set: test error against compression ratio
(the stored model's size against float), every method of every paper as a point, ours filled
with error bars (± std over seeds, both axes), the papers' own figures hollow beside them, and
the Pareto front of ours (no other point of ours is both smaller and more accurate), labelled
with method and budget; both axes logarithmic.

Drawn from the results table's rows (results.csv), so it shows exactly what the table shows: a
float row is ratio 1; a row of ours without a ratio (no stored file) is left out, and so are
diagnostics (`DIAGNOSTIC_BUDGETS`: one layer quantized at a time). PNG and PDF in
results/figures/survey_<setting>.{png,pdf}; the same rows give the same bytes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ERROR_METRICS = ("test_err", "top1_err")
# budgets of diagnostics, not compressions: a sensitivity point quantizes one layer of a float
# model (scripts/anwar_sensitivity.py); it stays in the table, not in the survey's picture
DIAGNOSTIC_BUDGETS = ("sensitivity",)


@dataclass(frozen=True)
class Point:
    paper: str
    method: str
    budget: str  # "" for a paper's own figure
    ratio: float
    ratio_std: float
    err: float
    err_std: float
    ours: bool


def _num(text: str) -> float | None:
    return float(text) if text not in ("", None) else None


def survey_points(rows: list[dict[str, str]]) -> dict[str, list[Point]]:
    """Per setting, a point per (paper, method, budget) of ours and per (paper, method) of the
    papers' figures that has an error (and a ratio, or is float)."""
    ours: dict[tuple, dict[str, tuple[float, float]]] = defaultdict(dict)
    theirs: dict[tuple, dict[str, float]] = defaultdict(dict)
    for r in rows:
        if r["metric"] not in (*ERROR_METRICS, "ratio") or \
                r["budget"].split(" [")[0] in DIAGNOSTIC_BUDGETS:
            continue
        metric = "err" if r["metric"] in ERROR_METRICS else "ratio"
        if _num(r["ours"]) is not None:
            key = (r["setting"], r["paper"], r["method"], r["budget"])
            ours[key][metric] = (_num(r["ours"]), _num(r["ours_std"]) or 0.0)
        if _num(r["reported"]) is not None:
            theirs[(r["setting"], r["paper"], r["method"], "")][metric] = _num(r["reported"])
    points: dict[str, list[Point]] = defaultdict(list)
    for (setting, paper, method, budget), m in sorted(ours.items()):
        ratio = m.get("ratio", (1.0, 0.0) if method == "float" else None)
        if "err" in m and ratio is not None:
            points[setting].append(Point(paper, method, budget, ratio[0], ratio[1],
                                         m["err"][0], m["err"][1], True))
    for (setting, paper, method, _), m in sorted(theirs.items()):
        ratio = m.get("ratio", 1.0 if method == "float" else None)
        if "err" in m and ratio is not None and setting in points:
            points[setting].append(Point(paper, method, "", ratio, 0.0, m["err"], 0.0, False))
    return dict(points)


def pareto_front(points: list[Point]) -> list[Point]:
    """The points no other point dominates (ratio ≥ and error ≤, one of them strictly), by
    increasing ratio."""
    front = [p for p in points
             if not any(q.ratio >= p.ratio and q.err <= p.err
                        and (q.ratio > p.ratio or q.err < p.err) for q in points)]
    return sorted(front, key=lambda p: (p.ratio, p.err))


def draw(setting: str, points: list[Point], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    papers = sorted({p.paper for p in points})
    colors = {paper: plt.get_cmap("tab10")(i % 10) for i, paper in enumerate(papers)}
    fig, ax = plt.subplots(figsize=(8, 5.5))
    front = pareto_front([p for p in points if p.ours])
    for p in points:
        color = colors[p.paper]
        if p.ours:
            ax.errorbar(p.ratio, p.err, xerr=p.ratio_std or None, yerr=p.err_std or None,
                        fmt="o", color=color, ms=6, capsize=2, lw=1)
        else:
            ax.plot(p.ratio, p.err, "o", mfc="none", mec=color, ms=9, mew=1.5)
        if p in front or not p.ours:  # labels where they are read: the front, the papers
            label = (f"{p.method} [{p.budget}]" if p.ours else f"{p.method} (paper)")
            ax.annotate(label, (p.ratio, p.err), textcoords="offset points", xytext=(5, 4),
                        fontsize=6, color=color)
    if len(front) > 1:
        ax.step([p.ratio for p in front], [p.err for p in front], where="post", color="0.3",
                lw=1, ls="--", label="Pareto front (ours)")
    for paper in papers:
        ax.plot([], [], "o", color=colors[paper], label=paper)
    ax.plot([], [], "o", mfc="none", mec="0.3", label="a paper's own figure (hollow)")
    ax.set_xscale("log")
    ax.set_yscale("log")  # from the best models' 0.5% to a failed quantizer's 70%
    from matplotlib.ticker import FuncFormatter, LogLocator

    # ticks written 0.5, 2, 30; errors often span less than a decade: denser there
    for axis, subs in ((ax.xaxis, (1.0, 2.0, 5.0)), (ax.yaxis, (1.0, 1.5, 2.0, 3.0, 5.0, 7.0))):
        axis.set_major_locator(LogLocator(base=10, subs=subs))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.set_xlabel("compression ratio (float model bytes ÷ stored model bytes; float = 1)")
    ax.set_ylabel("test error (%)")
    ax.set_title(f"{setting}: error against compression, every method")
    ax.grid(True, which="both", lw=0.3, alpha=0.5)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"survey_{setting}.png", out_dir / f"survey_{setting}.pdf"]
    fig.savefig(paths[0], dpi=150, metadata={"Software": None})
    fig.savefig(paths[1], metadata={"CreationDate": None, "Creator": None, "Producer": None})
    plt.close(fig)
    return paths


def draw_all(rows: list[dict[str, str]], out_dir: Path) -> list[Path]:
    return [path for setting, points in survey_points(rows).items()
            for path in draw(setting, points, out_dir)]

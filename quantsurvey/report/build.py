"""`quantsurvey-report`: rebuild results/results.csv and results/README.md from the committed run
summaries (results/runs/**.json) and the papers' numbers (experiments/<paper>/reported.yaml).

Our figures and the papers' never share a column; every row of ours names its seeds, budget,
device and commit, and regenerates from a fresh clone. Storage accounting checks (summaries with
method `storage_accounting`: random-initialised weights, no accuracy) get their own section of the
README, never a row beside the papers' figures; results.csv keeps them under that method.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from quantsurvey.errors import QuantsurveyError
from quantsurvey.provenance import REPO_ROOT

COLUMNS = ["paper", "setting", "method", "model", "dataset", "metric", "reported", "ours",
           "ours_std", "seeds", "budget", "device", "commit"]
METRICS = ("test_err", "top1_err", "top5_err", "ratio", "size_kb", "kept_pct")
_IDENTITY = ("paper", "setting", "method", "model", "dataset")
ACCOUNTING = "storage_accounting"  # storage-only checks on random-init weights: not reproductions
ACCOUNTING_TITLE = "Storage accounting checks (random-initialised weights, not reproduced ratios)"


class ReportError(QuantsurveyError):
    pass


def summary_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """A run summary's figures under the results table's metric names (errors in %)."""
    m = summary.get("metrics", {})
    out: dict[str, float] = {}
    if "test/err" in m:
        out["top1_err" if summary["dataset"] == "imagenet" else "test_err"] = m["test/err"]
    if summary["dataset"] == "imagenet" and "test/top5_err" in m:
        out["top5_err"] = m["test/top5_err"]
    if "compress/ratio" in m:
        out["ratio"] = m["compress/ratio"]
    if "compress/size_bytes" in m:
        out["size_kb"] = m["compress/size_bytes"] / 1000.0
    if "compress/kept_pct" in m:
        out["kept_pct"] = m["compress/kept_pct"]
    return out


def collect(sources: list[Path], runs_dir: Path) -> list[Path]:
    """Copy every finished run's summary.json under `sources` into
    `runs_dir/<paper>/<setting>/<name>/seed=<seed>.json`, with its encoded model file
    (`model.qsdc`, tens of kilobytes for the LeNets) beside it as `seed=<seed>.qsdc`."""
    copied = []
    for src in sources:
        for path in sorted(Path(src).rglob("summary.json")):
            s = json.loads(path.read_text())
            if not s.get("report", True):  # an intermediate stage (e.g. prune1 of three)
                continue
            dest = runs_dir / s["paper"] / s["setting"] / s["name"] / f"seed={s['seed']}.json"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
            if (path.parent / "model.qsdc").is_file():
                shutil.copyfile(path.parent / "model.qsdc", dest.with_suffix(".qsdc"))
            copied.append(dest)
    return copied


def load_summaries(runs_dir: Path) -> list[dict[str, Any]]:
    summaries = []
    for path in sorted(runs_dir.rglob("*.json")):
        try:
            s = json.loads(path.read_text())
            missing = [k for k in (*_IDENTITY, "seed", "budget", "metrics") if k not in s]
        except json.JSONDecodeError as err:
            raise ReportError(f"{path} is not valid JSON ({err}); delete or re-collect it."
                              ) from None
        if missing:
            raise ReportError(f"{path} is not a run summary: it lacks {', '.join(missing)}.")
        summaries.append(s)
    return summaries


def load_reported(experiments_dir: Path) -> list[dict[str, Any]]:
    """Rows of every experiments/<paper>/reported.yaml: the papers' own figures."""
    rows = []
    for path in sorted(experiments_dir.glob("*/reported.yaml")):
        doc = yaml.safe_load(path.read_text())
        paper = doc.get("paper")
        if paper != path.parent.name:
            raise ReportError(f"{path}: paper {paper!r} must equal its folder name "
                              f"{path.parent.name!r}.")
        for row in doc.get("rows", []):
            metrics = row.get("metrics", {})
            unknown = sorted(set(metrics) - set(METRICS))
            if unknown:
                raise ReportError(f"{path}: unknown metric(s) {unknown}; allowed: {METRICS}.")
            for metric, value in metrics.items():
                rows.append({"paper": paper, **{k: row[k] for k in _IDENTITY[1:]},
                             "metric": metric, "reported": value})
    return rows


def _fmt(x: float | None) -> str:
    if x is None:
        return ""
    return f"{x:.0f}" if abs(x) >= 1000 else f"{x:.3f}"


def _budget_label(summary: dict[str, Any]) -> str:
    """The budget; a storage accounting check also names which check it is (its run name, e.g.
    storage-deep_compression_6bit), so two checks of one setting are never averaged together."""
    if summary["method"] == ACCOUNTING and summary.get("name"):
        return f"{summary['budget']} [{summary['name']}]"
    return summary["budget"]


def build_rows(summaries: list[dict[str, Any]], reported: list[dict[str, Any]]
               ) -> list[dict[str, str]]:
    """One row per (paper, setting, method, metric[, budget]); ours = mean (std) over seeds."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for s in summaries:
        groups[(*(s[k] for k in _IDENTITY), _budget_label(s))].append(s)
    ours: dict[tuple, list[dict[str, str]]] = defaultdict(list)
    for (*ident, budget), runs in sorted(groups.items()):
        per_metric: dict[str, list[float]] = defaultdict(list)
        for s in runs:
            for metric, value in summary_metrics(s).items():
                per_metric[metric].append(value)
        devices = sorted({s.get("hardware", {}).get("device", "?") for s in runs})
        commits = sorted({(s.get("git", {}).get("commit") or "unknown")[:12]
                          + ("+dirty" if s.get("git", {}).get("dirty") else "") for s in runs})
        for metric, values in per_metric.items():
            ours[(*ident, metric)].append({
                "ours": _fmt(statistics.fmean(values)),
                "ours_std": _fmt(statistics.stdev(values)) if len(values) > 1 else "",
                "seeds": str(len(values)), "budget": budget, "device": ";".join(devices),
                "commit": ";".join(commits)})
    rows = []
    reported_by_key = {(*(r[k] for k in _IDENTITY), r["metric"]): r["reported"] for r in reported}
    keys = sorted(set(reported_by_key) | set(ours), key=lambda k: (*k[:3], METRICS.index(k[5])))
    for key in keys:
        base = dict(zip((*_IDENTITY, "metric"), key, strict=True))
        rep = _fmt(reported_by_key.get(key))
        for entry in ours.get(key) or [{c: "" for c in COLUMNS[7:]}]:
            rows.append({**base, "reported": rep, "ours": "", **entry})
    return rows


def render_csv(rows: list[dict[str, str]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def render_markdown(rows: list[dict[str, str]]) -> str:
    lines = ["# Results", "",
             "Generated by `quantsurvey-report` from `results/runs/**.json` (one summary per run) "
             "and `experiments/<paper>/reported.yaml`; do not edit by hand. Errors are in %; "
             "`ours` is the mean over `seeds` runs, `± std` the sample standard deviation. "
             "`budget` is `paper` where the paper's schedule was followed, else a label of the "
             "shortened or substituted schedule (see the experiment config's header). "
             "`commit` lists the commits the runs started from; `+dirty` means the working "
             "tree had uncommitted edits then. Each summary also records its command's "
             "config, package versions, hardware (torch thread count included) and wall time.",
             ""]
    by_paper: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        if r["method"] != ACCOUNTING:  # they have their own section (render_accounting)
            by_paper[r["paper"]].append(r)
    for paper, prow in by_paper.items():
        lines += [f"## {paper}", "",
                  "| setting | method | metric | paper | ours | seeds | budget | device | commit |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in prow:
            ours = r["ours"] + (f" ± {r['ours_std']}" if r["ours_std"] else "")
            lines.append(f"| {r['setting']} | {r['method']} | {r['metric']} | {r['reported']} | "
                         f"{ours} | {r['seeds']} | {r['budget']} | {r['device']} | "
                         f"{r['commit']} |")
        lines.append("")
    return "\n".join(lines)


LAYER_COLUMNS = [("kept_pct", "kept %", ".1f"), ("weight_bits_pq", "weight bits P+Q", "d"),
                 ("weight_bits_huffman", "weight bits Huffman", ".2f"),
                 ("index_bits_pq", "index bits P+Q", "d"),
                 ("index_bits_huffman", "index bits Huffman", ".2f"),
                 ("stored_bytes", "stored bytes", ",.0f"), ("ratio", "ratio ×", ".1f")]


def render_layer_tables(summaries: list[dict[str, Any]]) -> str:
    """Per-layer storage of every encoded model, laid out like Deep Compression's Tables 2–5:
    the mean over the seeds of one (paper, setting, method, budget)."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for s in summaries:
        enc = s.get("compression", {}).get("encoded")
        if enc:
            groups[(s["paper"], s["setting"], s["method"], _budget_label(s))].append(enc)
    lines = []
    for (paper, setting, method, budget), encs in sorted(groups.items()):
        layers = encs[0]["layers"]
        size = statistics.fmean(e["size_bytes"] for e in encs)
        original = encs[0]["original_bytes"]
        lines += [f"### {paper} / {setting} / {method} ({budget}, {len(encs)} seed(s))", "",
                  f"Encoded file {size / 1000:,.1f} kB (original {original / 1000:,.0f} kB, "
                  f"{original / size:.1f}×); every figure is read from the file's contents.", "",
                  "| layer | params | " + " | ".join(h for _, h, _ in LAYER_COLUMNS) + " |",
                  "| --- " * (len(LAYER_COLUMNS) + 2) + "|"]
        for name, first in layers.items():
            cells = []
            for key, _, fmt in LAYER_COLUMNS:
                value = statistics.fmean(e["layers"][name][key] for e in encs)
                cells.append(format(int(value) if fmt == "d" else value, fmt))
            lines.append(f"| {name} | {first['params']:,} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def render_accounting(summaries: list[dict[str, Any]]) -> str:
    """The storage accounting checks' own section: stored and original bytes and their ratio
    (mean over the seeds of one (paper, setting, budget)), then their per-layer tables."""
    checks = [s for s in summaries if s["method"] == ACCOUNTING]
    if not checks:
        return ""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for s in checks:
        groups[(s["paper"], s["setting"], s.get("name", ""), s["budget"])].append(s)
    lines = [f"## {ACCOUNTING_TITLE}", "",
             f"Summaries with method `{ACCOUNTING}` (e.g. `scripts/imagenet_storage.py`): the "
             "papers' kept fractions and bit-widths applied to random-initialised ImageNet "
             "weights, with no training and no accuracy. They check the encoded file's storage "
             "accounting at full scale; random weights are not a trained network's (their "
             "Huffman gains differ), so these ratios are not reproductions of the papers' and "
             "stay out of the tables above. In `results.csv` their rows carry method "
             f"`{ACCOUNTING}`.", "",
             "| paper | setting | check | stored bytes | original bytes | ratio | seeds | budget "
             "| commit |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for (paper, setting, name, budget), runs in sorted(groups.items()):
        stored, original = [], []
        for s in runs:
            enc = s.get("compression", {}).get("encoded") or {}
            m = s.get("metrics", {})
            size = enc.get("size_bytes", m.get("compress/size_bytes"))
            orig = enc.get("original_bytes")
            if orig is None and size is not None and "compress/ratio" in m:
                orig = m["compress/ratio"] * size
            if size is not None:
                stored.append(float(size))
            if orig is not None:
                original.append(float(orig))
        size = statistics.fmean(stored) if stored else None
        orig = statistics.fmean(original) if original else None
        ratio = f"{orig / size:.1f}×" if size and orig else ""
        commits = sorted({(s.get("git", {}).get("commit") or "unknown")[:12]
                          + ("+dirty" if s.get("git", {}).get("dirty") else "") for s in runs})
        lines.append(f"| {paper} | {setting} | {name} | {'' if size is None else f'{size:,.0f}'} | "
                     f"{'' if orig is None else f'{orig:,.0f}'} | {ratio} | {len(runs)} | "
                     f"{budget} | {';'.join(commits)} |")
    lines.append("")
    tables = render_layer_tables(checks)
    if tables:
        lines += ["Per-layer storage of the checked files:", "", tables]
    return "\n".join(lines)


def build(results_dir: Path, experiments_dir: Path) -> list[dict[str, str]]:
    summaries = load_summaries(results_dir / "runs")
    rows = build_rows(summaries, load_reported(experiments_dir))
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "results.csv").write_text(render_csv(rows))
    tables = render_layer_tables([s for s in summaries if s["method"] != ACCOUNTING])
    text = render_markdown(rows)
    if tables:
        text += "\n## Per-layer storage of the encoded models\n\n" + tables
    accounting = render_accounting(summaries)
    if accounting:
        text += "\n" + accounting
    (results_dir / "README.md").write_text(text)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="quantsurvey-report", description=__doc__.split("\n")[0])
    parser.add_argument("--collect", nargs="*", type=Path, default=[], metavar="RUN_DIR",
                        help="first copy the summary.json of every run under these folders "
                             "into <results>/runs/")
    parser.add_argument("--results", type=Path, default=REPO_ROOT / "results")
    parser.add_argument("--experiments", type=Path, default=REPO_ROOT / "experiments")
    args = parser.parse_args(argv)
    try:
        copied = collect(args.collect, args.results / "runs")
        rows = build(args.results, args.experiments)
    except QuantsurveyError as err:
        print(f"quantsurvey-report: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    print(f"collected {len(copied)} summaries; wrote {len(rows)} rows to "
          f"{args.results / 'results.csv'} and {args.results / 'README.md'}")


if __name__ == "__main__":
    main()

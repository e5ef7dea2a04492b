"""`quantsurvey-report`: rebuild results/results.csv, results/README.md, results/<paper>.md,
results/tables.tex, results/references.bib, the survey figures
(results/figures/survey_<setting>.*), the per-layer kept fractions of the pruned models
(results/figures/kept_per_layer_<setting>.*) and the grid tables and figures from the committed run
summaries (results/runs/**.json) and the papers' numbers (experiments/<paper>/reported.yaml),
and redraw the ADMM, Lin 2016 and Anwar 2015 analysis figures, and rewrite the latter two's
tables, from the records committed beside them (results/figures/admm_*.json from
scripts/plot_admm.py; results/lin2016_fixed_point/*.json and results/anwar2015_fixed_point/*.json
from scripts/lin2016_analysis.py, fixed_point_step_rules.py, optimal_steps_table.py and
anwar_sensitivity.py), and results/mutation/README.md from the mutation records beside it.

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
import math
import re
import shutil
import statistics
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from quantsurvey.cli import CONF_DIR
from quantsurvey.errors import QuantsurveyError
from quantsurvey.provenance import REPO_ROOT
from quantsurvey.report import (
    fixed_point_figures,
    fixed_point_tables,
    layer_kept_figure,
    mutation_table,
)
from quantsurvey.report.admm_figures import redraw_all
from quantsurvey.report.grid import write_grids
from quantsurvey.report.latex import render_latex
from quantsurvey.report.paper_pages import render_pages, write_pages
from quantsurvey.report.recipe_drift import RecipeDrift
from quantsurvey.report.survey_figure import draw_all
from quantsurvey.rundir import recipe as run_recipe

COLUMNS = ["paper", "setting", "method", "model", "dataset", "metric", "reported", "ours",
           "ours_std", "seeds", "budget", "device", "commit"]
METRICS = ("test_err", "top1_err", "top5_err", "ratio", "weight_ratio", "size_kb", "kept_pct")
_IDENTITY = ("paper", "setting", "method", "model", "dataset")
# a reported.yaml row: its identity, the paper's metrics, and optionally its per-layer kept %
REPORTED_ROW_KEYS = (*_IDENTITY[1:], "metrics", "layer_kept_pct")
# methods that quantize without pruning (their incidental zeros are not a kept fraction)
QUANTIZE_ONLY = ("fixed_point", "fixed_point_allocated", "bnn", "bwn", "xnor")
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
    # zeros that a quantizer happens to produce are not pruning: no kept % / weight ratio rows
    prunes = summary.get("method") not in QUANTIZE_ONLY
    if "compress/weight_ratio" in m and prunes:  # weights only (Zhang 2018's accounting)
        out["weight_ratio"] = m["compress/weight_ratio"]
    if "compress/size_bytes" in m:
        out["size_kb"] = m["compress/size_bytes"] / 1000.0
    if "compress/kept_pct" in m and prunes:
        out["kept_pct"] = m["compress/kept_pct"]
    return out


_REQUIRED: dict[str, type] = {"paper": str, "setting": str, "method": str, "model": str,
                              "dataset": str, "name": str, "seed": int, "budget": str,
                              "metrics": dict}
_OPTIONAL: dict[str, type] = {"report": bool, "status": str, "config": dict, "git": dict,
                              "hardware": dict, "compression": dict}
# What makes two runs seeds of one recipe: these config entries must be equal (see recipe()).
_SHOW = 3  # differences / problems named in one message before "+N more"


def read_summary(path: Path) -> dict[str, Any]:
    """A run summary's JSON, checked against the schema (summary_problem); ReportError naming
    `path` otherwise."""
    try:
        s = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise ReportError(f"{path}: cannot be read ({err})") from None
    except json.JSONDecodeError as err:
        raise ReportError(f"{path}: is not valid JSON ({err}); the file may be cut short"
                          ) from None
    problem = summary_problem(s)
    if problem:
        raise ReportError(f"{path}: {problem}")
    return s


def _type_name(kind: type) -> str:
    return {str: "a string", int: "an integer", bool: "true or false", dict: "an object"}[kind]


def summary_problem(s: Any) -> str | None:
    """Why `s` is not a run summary (missing keys, wrong types, metrics that are not numbers),
    or None."""
    if not isinstance(s, dict):
        return f"is not a run summary: a JSON {type(s).__name__}, not an object"
    missing = [k for k in _REQUIRED if k not in s]
    if missing:
        return f"is not a run summary: it lacks {', '.join(missing)}"
    for key, kind in (*_REQUIRED.items(), *_OPTIONAL.items()):
        value = s.get(key)
        if key in s and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
            return f"{key} must be {_type_name(kind)}, not {json.dumps(value)[:40]}"
    for key in ("paper", "setting", "name"):
        if not s[key] or s[key] in (".", "..") or "/" in s[key] or "\\" in s[key]:
            return f"{key} {s[key]!r} cannot name a folder"
    for metric, value in s["metrics"].items():
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
            return f"metric {metric} must be a number, not {json.dumps(value)[:40]}"
    commit = s.get("git", {}).get("commit")
    if commit is not None and not isinstance(commit, str):
        return f"git.commit must be a string, not {json.dumps(commit)[:40]}"
    return None


def unreportable(s: dict[str, Any]) -> str | None:
    """Why a (schema-valid) summary may never be reported: a failed run, or a metric that is not
    a finite number; None if it may."""
    if s.get("status") == "failed":
        return "the run failed (status: failed); re-run it, or leave it out"
    bad = [f"{k}={v}" for k, v in s["metrics"].items() if v is None or not math.isfinite(v)]
    if bad:
        return f"metric(s) not finite: {', '.join(bad[:_SHOW])}" + _more(bad)
    if not s.get("report", True):
        return "is an intermediate stage (report: false), not a reportable run"
    return None


def _more(items: list[Any]) -> str:
    return f" (+{len(items) - _SHOW} more)" if len(items) > _SHOW else ""


def _dig(tree: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(tree, dict):
            return None
        tree = tree.get(part)
    return tree


def recipe(s: dict[str, Any]) -> dict[str, Any]:
    """The recipe fingerprint: the run-directory policy's recipe of the summary's resolved
    `config` (`quantsurvey.rundir.recipe`: the same keys that decide whether a finished run is
    reused, missing keys at today's defaults, `compress` by meaning), less the seed, with the
    run's own `seed=<seed>` in `init_from` written `seed=*` (seed 1 starts from seed 1's
    previous stage, seed 2 from seed 2's)."""
    out = run_recipe(s.get("config") or {})
    out.pop("seed", None)
    init_from = out["init_from"]
    if isinstance(init_from, str):
        own = re.compile(rf"seed={re.escape(str(s.get('seed')))}(?=$|\.)")
        out["init_from"] = "/".join(own.sub("seed=*", part)
                                    for part in PurePosixPath(init_from).parts[-4:])
    return out


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; an empty object counts as absent (None)."""
    if isinstance(tree, dict) and tree:
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: None if tree == {} else tree}


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The keys whose values differ, in a's order then b's."""
    return [k for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]


def _show(value: Any) -> str:
    if isinstance(value, float):
        return format(value, ".4g")
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _commit(s: dict[str, Any]) -> str:
    return (s.get("git", {}).get("commit") or "unknown")[:12]


def describe_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    """A short, readable diff of two summaries of one destination: seed, budget, recipe keys,
    metrics and git commit that differ (`old -> new`)."""
    parts = [f"{k} {_show(old.get(k))} -> {_show(new.get(k))}" for k in ("seed", "budget")
             if old.get(k) != new.get(k)]
    a, b = _flat(recipe(old)), _flat(recipe(new))
    keys = _differences(a, b)
    parts += [f"{k} {_show(a.get(k))} -> {_show(b.get(k))}" for k in keys[:_SHOW]]
    if len(keys) > _SHOW:
        parts.append(f"+{len(keys) - _SHOW} more recipe keys")
    keys = _differences(old["metrics"], new["metrics"])
    parts += [f"{k} {_show(old['metrics'].get(k))} -> {_show(new['metrics'].get(k))}"
              for k in keys[:_SHOW]]
    if len(keys) > _SHOW:
        parts.append(f"+{len(keys) - _SHOW} more metrics")
    if _commit(old) != _commit(new):
        parts.append(f"git commit {_commit(old)} -> {_commit(new)}")
    if not parts:
        others = _differences(old, new)
        parts.append(f"other fields differ: {', '.join(others[:_SHOW])}{_more(others)}")
    return "; ".join(parts)


def _summary_label(s: dict[str, Any]) -> str:
    return f"{s['paper']}/{s['setting']}/{s['name']}/seed={s['seed']}"


def check_groups(summaries: list[dict[str, Any]], labels: list[str] | None = None) -> None:
    """Seeds share a row only when they are seeds of one recipe: the summaries of one
    (paper, setting, method, budget) must have the same dataset, model and recipe(); ReportError
    naming two of them (`labels`, e.g. their files) and the first difference otherwise."""
    labels = labels or [_summary_label(s) for s in summaries]
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, s in enumerate(summaries):
        groups[(s["paper"], s["setting"], s["method"], _budget_label(s))].append(i)
    for (paper, setting, method, budget), members in groups.items():
        first = summaries[members[0]]
        seeds = [summaries[i].get("seed") for i in members]
        twice = sorted({x for x in seeds if seeds.count(x) > 1}, key=str)
        if twice:
            same = [labels[i] for i in members if summaries[i].get("seed") == twice[0]]
            raise ReportError(f"{same[0]} and {same[1]} are both seed {twice[0]} of one row "
                              f"({paper} / {setting} / {method}, budget {budget}); remove one")
        base = _flat(recipe(first))
        for i in members[1:]:
            s = summaries[i]
            diff = [k for k in ("dataset", "model") if s[k] != first[k]]
            if diff:
                key, a, b = diff[0], first[diff[0]], s[diff[0]]
            else:
                other = _flat(recipe(s))
                diff = _differences(base, other)
                if not diff:
                    continue
                key, a, b = f"config {diff[0]}", base.get(diff[0]), other.get(diff[0])
            raise ReportError(
                f"{labels[members[0]]} and {labels[i]} would be seeds of one row ({paper} / "
                f"{setting} / {method}, budget {budget}) but differ in {key} ({_show(a)} vs "
                f"{_show(b)}); give the odd run its own budget label, or remove it")


def load_runs(runs_dir: Path, skip: set[Path] = frozenset()) -> dict[Path, dict[str, Any]]:
    """Every summary under `runs_dir` (but `skip`), by file, checked: the schema
    (summary_problem) and reportability (unreportable)."""
    runs = {}
    for path in sorted(runs_dir.rglob("*.json")):
        if path in skip:
            continue
        s = read_summary(path)
        problem = unreportable(s)
        if problem:
            raise ReportError(f"{path}: {problem}; delete it or re-collect the run")
        runs[path] = s
    return runs


def load_summaries(runs_dir: Path) -> list[dict[str, Any]]:
    return list(load_runs(runs_dir).values())


@dataclass
class Collection:
    """What `--collect` will do: the runs to write (source summary.json -> destination), those
    already there unchanged, and every summary the table is built from afterwards."""

    write: dict[Path, Path] = field(default_factory=dict)  # destination -> source summary.json
    replaced: set[Path] = field(default_factory=set)  # destinations that exist and differ
    unchanged: int = 0
    skipped: int = 0  # intermediate stages (report: false)
    runs: dict[Path, dict[str, Any]] = field(default_factory=dict)  # the table's summaries
    labels: dict[Path, str] = field(default_factory=dict)  # how messages name runs[path]

    def apply(self) -> list[Path]:
        """Copy the runs (summary, and its model.qsdc beside it); drop a replaced run's stale
        model.qsdc where the new run has none."""
        for dest, src in sorted(self.write.items()):
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            model = src.parent / "model.qsdc"
            if model.is_file() and _keeps_model(src):
                shutil.copyfile(model, dest.with_suffix(".qsdc"))
            else:
                dest.with_suffix(".qsdc").unlink(missing_ok=True)
        return sorted(self.write)


def _keeps_model(summary: Path) -> bool:
    """Whether results/ keeps the run's model file: not for the evaluate-only points of a grid
    (dozens of post-training conversions, each remade in seconds by its command)."""
    s = json.loads(summary.read_text())
    return not (s.get("mode") == "evaluate" and (s.get("config") or {}).get("grid"))


def _model(summary: Path) -> bytes | None:
    """The encoded model file beside a run's summary.json that results/ keeps, if any."""
    model = summary.parent / "model.qsdc"
    return model.read_bytes() if model.is_file() and _keeps_model(summary) else None


def _same_model(src: Path, dest: Path) -> bool:
    """The run at `src` brings no model file, or the same one as `dest` has beside it."""
    model, old = _model(src), dest.with_suffix(".qsdc")
    return model is None or (old.is_file() and old.read_bytes() == model)


def _refuse(problems: list[str], what: str) -> ReportError:
    return ReportError(f"{what}: " + " | ".join(problems[:_SHOW]) + _more(problems)
                       + "; nothing was collected")


def plan_collect(sources: list[Path], runs_dir: Path, replace: bool = False) -> Collection:
    """Check every summary.json under `sources`, and the runs they join, before anything is
    written: a bad summary, a run that would silently replace a different one at its
    destination (`results/runs/<paper>/<setting>/<name>/seed=<seed>.json`; allowed with
    `replace`), or seeds of different recipes in one row raise ReportError, naming the files."""
    plan = Collection()
    found: dict[Path, None] = {}
    missing = []
    for src in sources:
        if not src.is_dir():
            missing.append(f"{src} {'is not a folder' if src.exists() else 'does not exist'}")
            continue
        files = sorted(src.rglob("summary.json"))
        if not files:
            missing.append(f"{src} holds no summary.json (no finished run under it)")
        found.update((f.resolve(), None) for f in files)
    if missing:
        raise ReportError("--collect: " + "; ".join(missing))
    problems: list[str] = []
    new: dict[Path, tuple[Path, dict[str, Any]]] = {}
    for path in found:
        try:
            s = read_summary(path)
        except ReportError as err:
            problems.append(str(err))
            continue
        if not s.get("report", True):  # an intermediate stage (e.g. prune1 of three)
            plan.skipped += 1
            continue
        problem = unreportable(s)
        if problem:
            problems.append(f"{path}: {problem}")
            continue
        dest = runs_dir / s["paper"] / s["setting"] / s["name"] / f"seed={s['seed']}.json"
        if dest in new:
            other, first = new[dest]
            if first != s or _model(other) != _model(path):
                why = describe_difference(first, s) if first != s else "model.qsdc differs"
                problems.append(f"{other} and {path} are both {_summary_label(s)} but differ "
                                f"({why})")
            continue
        new[dest] = (path, s)
        if dest.exists():
            try:
                old = read_summary(dest)
            except ReportError as err:
                if not replace:
                    problems.append(f"{err}; it would be replaced by {path} (pass --replace)")
                    continue
                old = None
            if old == s and _same_model(path, dest):
                plan.unchanged += 1
                continue
            if not replace:
                why = "model.qsdc differs" if old == s else describe_difference(old, s)
                problems.append(f"{dest} already holds a different run than {path} ({why}); "
                                "pass --replace to overwrite it")
                continue
            plan.replaced.add(dest)
        plan.write[dest] = path
    if problems:
        raise _refuse(problems, "refusing to collect")
    if runs_dir.is_dir():
        plan.runs = load_runs(runs_dir, skip=set(plan.write))
        plan.labels = {p: str(p) for p in plan.runs}
    for dest, src in plan.write.items():
        plan.runs[dest] = new[dest][1]
        plan.labels[dest] = str(src)
    plan.runs = dict(sorted(plan.runs.items()))  # the order load_runs reads them in afterwards
    try:
        check_groups(list(plan.runs.values()), [plan.labels[p] for p in plan.runs])
    except ReportError as err:
        raise ReportError(f"{err}; nothing was collected" if plan.write else str(err)) from None
    return plan


def collect(sources: list[Path], runs_dir: Path, replace: bool = False) -> list[Path]:
    """Copy every finished run's summary.json under `sources` into
    `runs_dir/<paper>/<setting>/<name>/seed=<seed>.json`, with its encoded model file
    (`model.qsdc`, tens of kilobytes for the LeNets) beside it as `seed=<seed>.qsdc`; all or
    nothing (plan_collect). Returns the files written."""
    return plan_collect(sources, runs_dir, replace).apply()


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
            unknown_keys = sorted(set(row) - set(REPORTED_ROW_KEYS))
            if unknown_keys:
                raise ReportError(f"{path}: unknown key(s) {unknown_keys} in the row {row}; "
                                  f"allowed: {list(REPORTED_ROW_KEYS)}.")
            kept = row.get("layer_kept_pct")
            if kept is not None and not (isinstance(kept, dict) and all(
                    isinstance(v, int | float) and 0 < v <= 100 for v in kept.values())):
                raise ReportError(f"{path}: layer_kept_pct in the row {row} must map layer "
                                  f"names to kept percentages in (0, 100].")
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
    storage-deep_compression_6bit), and so does a point of an experiment's declared grid (its
    stage directory, e.g. direct_w3_a8), so two of them are never averaged together."""
    if summary["method"] == ACCOUNTING and summary.get("name"):
        return f"{summary['budget']} [{summary['name']}]"
    if (summary.get("config") or {}).get("grid") and summary.get("name"):
        # a point of the experiment's grid (e.g. direct_w3_a8): its settings label its row
        return f"{summary['budget']} [{summary['name']}]"
    return summary["budget"]


def _commit_label(s: dict[str, Any], changed: bool = False) -> str:
    """The run's commit; +dirty: uncommitted edits then; +config-changed: today's configs give
    its stage another recipe (RecipeDrift)."""
    return ((s.get("git", {}).get("commit") or "unknown")[:12]
            + ("+dirty" if s.get("git", {}).get("dirty") else "")
            + ("+config-changed" if changed else ""))


def build_rows(summaries: list[dict[str, Any]], reported: list[dict[str, Any]],
               drift: Callable[[dict[str, Any]], str | None] | None = None
               ) -> list[dict[str, str]]:
    """One row per (paper, setting, method, metric[, budget]); ours = mean (std) over seeds,
    which must be seeds of one recipe (check_groups); `drift(summary)` says whether today's
    configs give a run another recipe."""
    check_groups(summaries)
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for s in summaries:  # check_groups: one model and dataset per (paper, setting, method, budget)
        groups[(*(s[k] for k in _IDENTITY), _budget_label(s))].append(s)
    ours: dict[tuple, list[dict[str, str]]] = defaultdict(list)
    for (*ident, budget), runs in sorted(groups.items()):
        per_metric: dict[str, list[float]] = defaultdict(list)
        for s in runs:
            for metric, value in summary_metrics(s).items():
                per_metric[metric].append(value)
        devices = sorted({s.get("hardware", {}).get("device", "?") for s in runs})
        commits = sorted({_commit_label(s, bool(drift and drift(s))) for s in runs})
        for metric, values in per_metric.items():
            ours[(*ident, metric)].append({
                "ours": _fmt(statistics.fmean(values)),
                "ours_std": _fmt(statistics.stdev(values)) if len(values) > 1 else "",
                "seeds": str(len(values)), "budget": budget, "device": ";".join(devices),
                "commit": ";".join(commits)})
    rows = []
    reported_by_key = {(*(r[k] for k in _IDENTITY), r["metric"]): r["reported"] for r in reported}
    # model and dataset break ties (a paper's row and ours of another model name): set order
    # alone would depend on the string hash seed
    keys = sorted(set(reported_by_key) | set(ours),
                  key=lambda k: (*k[:3], METRICS.index(k[5]), k[3], k[4]))
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
             "tree had uncommitted edits (or code that git did not track) then; "
             "`+config-changed` that today's configs, composed with the run's recorded "
             "command-line overrides, give it another recipe (listed at the end; runs made "
             "before the overrides were recorded are not "
             "checked). Each summary also records its command's "
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
# a ternary layer (Zhu et al. 2017): 2-bit codes and its two scales
TERNARY_LAYER_COLUMNS = [("zero_pct", "zeros %", ".1f"), ("w_p", "W_p", ".4f"),
                         ("w_n", "W_n", ".4f"), ("stored_bytes", "stored bytes", ",.0f"),
                         ("ratio", "ratio ×", ".1f")]
# a fixed-point layer (Lin et al. 2016, Anwar et al. 2015): b-bit codes and its step
FIXED_POINT_LAYER_COLUMNS = [("bits", "bits", "d"), ("step", "step", ".3g"),
                             ("stored_bytes", "stored bytes", ",.0f"), ("ratio", "ratio ×", ".1f")]


# a binary layer (BNN, BWN, XNOR-Net): 1 bit per weight (+ α per filter where scaled)
BINARY_LAYER_COLUMNS = [("bits", "bits", "d"), ("stored_bytes", "stored bytes", ",.0f"),
                        ("ratio", "ratio ×", ".1f")]


def render_layer_tables(summaries: list[dict[str, Any]]) -> str:
    """Per-layer storage of every encoded model, laid out like Deep Compression's Tables 2–5
    (ternary models: zeros, scales, bytes; fixed point: bits, step, bytes): the mean over the
    seeds of one (paper, setting, method, budget). The evaluate-only points of a grid (dozens of
    post-training conversions) are left to their summaries."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for s in summaries:
        enc = s.get("compression", {}).get("encoded")
        if enc and not (s.get("mode") == "evaluate" and (s.get("config") or {}).get("grid")):
            groups[(s["paper"], s["setting"], s["method"], _budget_label(s))].append(enc)
    lines = []
    for (paper, setting, method, budget), encs in sorted(groups.items()):
        layers = encs[0]["layers"]
        if all("zero_pct" in row for row in layers.values()):
            columns = TERNARY_LAYER_COLUMNS
        elif all("step" in row for row in layers.values()):
            columns = FIXED_POINT_LAYER_COLUMNS
        elif all("scaled" in row for row in layers.values()):  # binary: 1 bit per weight
            columns = BINARY_LAYER_COLUMNS
        else:
            columns = LAYER_COLUMNS
        size = statistics.fmean(e["size_bytes"] for e in encs)
        original = encs[0]["original_bytes"]
        lines += [f"### {paper} / {setting} / {method} ({budget}, {len(encs)} seed(s))", "",
                  f"Encoded file {size / 1000:,.1f} kB (original {original / 1000:,.0f} kB, "
                  f"{original / size:.1f}×); every figure is read from the file's contents.", "",
                  "| layer | params | " + " | ".join(h for _, h, _ in columns) + " |",
                  "| --- " * (len(columns) + 2) + "|"]
        for name, first in layers.items():
            cells = []
            for key, _, fmt in columns:
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
        commits = sorted({_commit_label(s) for s in runs})
        lines.append(f"| {paper} | {setting} | {name} | {'' if size is None else f'{size:,.0f}'} | "
                     f"{'' if orig is None else f'{orig:,.0f}'} | {ratio} | {len(runs)} | "
                     f"{budget} | {';'.join(commits)} |")
    lines.append("")
    tables = render_layer_tables(checks)
    if tables:
        lines += ["Per-layer storage of the checked files:", "", tables]
    return "\n".join(lines)


def render_drift(summaries: list[dict[str, Any]], changes: dict[int, str | None]) -> str:
    """The runs marked +config-changed, each with the first recipe key that differs."""
    lines = [f"| {s['paper']} | {s['setting']} | {s.get('stage') or s.get('name')} | {s['seed']} "
             f"| {_commit_label(s)} | {changes[id(s)]} |"
             for s in sorted(summaries, key=lambda s: (s["paper"], s["setting"],
                                                       s.get("stage") or "", s["seed"]))
             if changes[id(s)]]
    if not lines:
        return ""
    return ("\n## Runs whose config has changed since they ran (`+config-changed`)\n\n"
            "Today's configs, composed with the run's own command-line overrides, give its stage "
            "another recipe (the first key that differs: the run's value, then today's). Run "
            "them again or restore the config.\n\n"
            "| paper | setting | stage | seed | commit | first difference |\n"
            "| --- | --- | --- | --- | --- | --- |\n" + "\n".join(lines) + "\n")


def render(summaries: list[dict[str, Any]], reported: list[dict[str, Any]],
           conf_dir: Path | str = CONF_DIR) -> tuple[list[dict[str, str]], str, str]:
    """The table's rows, results.csv and README.md."""
    drift = RecipeDrift(conf_dir)
    changes = {id(s): drift.check(s) for s in summaries}
    rows = build_rows(summaries, reported, lambda s: changes[id(s)])
    tables = render_layer_tables([s for s in summaries if s["method"] != ACCOUNTING])
    text = render_markdown(rows)
    if tables:
        text += "\n## Per-layer storage of the encoded models\n\n" + tables
    accounting = render_accounting(summaries)
    if accounting:
        text += "\n" + accounting
    text += render_drift(summaries, changes)
    text += ("\n## Written by hand\n\nEvery other table and figure in results/ is rewritten by "
             "`quantsurvey-report`; these notes are not (each names the commands behind its "
             "figures):\n\n" + "".join(f"- [{path}]({path}): {what}\n"
                                        for path, what in HAND_WRITTEN.items()))
    return rows, render_csv(rows), text


# notes in results/ that quantsurvey-report does not write (prose around measured figures)
HAND_WRITTEN = {
    "benchmarks/README.md": "speed and overhead benchmarks (scripts/bench_*.py; their records "
                            "are the JSON files beside it)",
    "seam_equivalence.md": "the method seam changed no Deep Compression number "
                           "(scripts/compare_code_versions.sh)",
    "prune_recipe_search.md": "the prune-schedule search (scripts/prune_recipe_search.py, from "
                              "runs that are not committed)",
}

FRAMEWORK_BIB = """@software{quantsurvey,
  title  = {quantsurvey: reproducible re-runs of the model-compression papers of a quantization
            survey},
  note   = {See CITATION.cff; cite the commit named in the results you use},
  year   = {2026}
}
"""


def render_bib(experiments_dir: Path) -> str:
    """Every paper's citation.bib (in paper-key order), then how to cite this framework."""
    parts = [f"% {path.parent.name}\n{path.read_text().strip()}\n"
             for path in sorted(experiments_dir.glob("*/citation.bib"))]
    return "\n".join([*parts, "% this framework\n" + FRAMEWORK_BIB])


def _write(results_dir: Path, csv_text: str, readme: str, bib: str | None = None,
           tex: str | None = None) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "results.csv").write_text(csv_text)
    (results_dir / "README.md").write_text(readme)
    if bib is not None:
        (results_dir / "references.bib").write_text(bib)
    if tex is not None:
        (results_dir / "tables.tex").write_text(tex)


def build(results_dir: Path, experiments_dir: Path) -> list[dict[str, str]]:
    runs = load_runs(results_dir / "runs")
    summaries = list(runs.values())
    check_groups(summaries, [str(p) for p in runs])  # names the files
    rows, csv_text, readme = render(summaries, load_reported(experiments_dir))
    _write(results_dir, csv_text, readme, render_bib(experiments_dir),
           render_latex(rows, skip_methods=(ACCOUNTING,)))
    write_pages(render_pages(rows, experiments_dir, skip_methods=(ACCOUNTING,)), results_dir)
    draw_all(rows, results_dir / "figures")
    layer_kept_figure.draw_all(summaries, experiments_dir, results_dir / "figures")
    redraw_all(results_dir / "figures")
    fixed_point_figures.redraw_all(results_dir)
    fixed_point_tables.rewrite_all(results_dir)
    mutation_table.rewrite(results_dir)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="quantsurvey-report", description=__doc__.split("\n")[0])
    parser.add_argument("--collect", nargs="*", type=Path, default=[], metavar="RUN_DIR",
                        help="first copy the summary.json of every run under these folders "
                             "into <results>/runs/ (all or nothing: every summary is checked "
                             "first)")
    parser.add_argument("--replace", action="store_true",
                        help="let --collect overwrite a different run already collected at the "
                             "same <paper>/<setting>/<name>/seed=<seed>.json")
    pull = parser.add_mutually_exclusive_group()
    pull.add_argument("--from-wandb", metavar="ENTITY/PROJECT",
                      help="collect the runs of a W&B project (online; each run's W&B summary "
                           "holds its summary.json); use with --results DIR to keep them apart "
                           "from the committed results")
    pull.add_argument("--from-wandb-offline", nargs="+", type=Path, default=[], metavar="PATH",
                      help="the same from offline run files (run-*.wandb) under these files or "
                           "folders")
    parser.add_argument("--to-wandb", metavar="ENTITY/PROJECT",
                        help="also log the results table (a W&B Table) and the survey figures "
                             "(images) to a run of this project (job_type report)")
    parser.add_argument("--wandb-offline", action="store_true",
                        help="--to-wandb: log offline (files under $QUANTSURVEY_OUTPUT or "
                             "./outputs, for `wandb sync`)")
    parser.add_argument("--results", type=Path, default=REPO_ROOT / "results")
    parser.add_argument("--experiments", type=Path, default=REPO_ROOT / "experiments")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="quantsurvey-pull-") as pulled_dir:
        _main(args, Path(pulled_dir))


def _main(args: argparse.Namespace, pulled_dir: Path) -> None:
    try:
        sources = list(args.collect)
        if args.from_wandb or args.from_wandb_offline:
            from quantsurvey.report import wandb_pull

            pulled = (wandb_pull.from_api(args.from_wandb) if args.from_wandb
                      else wandb_pull.from_offline(args.from_wandb_offline))
            sources.append(wandb_pull.write_run_folders(pulled, pulled_dir))
            print(f"pulled {len(pulled.summaries)} run summaries from W&B"
                  + (f" ({pulled.without_summary} runs without one left out)"
                     if pulled.without_summary else ""))
            if not pulled.summaries:
                raise ReportError("no W&B run carries a quantsurvey summary: nothing to collect")
        plan = plan_collect(sources, args.results / "runs", args.replace)
        rows, csv_text, readme = render(list(plan.runs.values()), load_reported(args.experiments))
        bib = render_bib(args.experiments)
        tex = render_latex(rows, skip_methods=(ACCOUNTING,))
        pages = render_pages(rows, args.experiments, skip_methods=(ACCOUNTING,))
        copied = plan.apply()  # nothing is written before every check has passed
        _write(args.results, csv_text, readme, bib, tex)
        write_pages(pages, args.results)
        figures = draw_all(rows, args.results / "figures")
        figures += layer_kept_figure.draw_all(list(plan.runs.values()), args.experiments,
                                              args.results / "figures")
        grids = write_grids(args.results)
        admm = redraw_all(args.results / "figures")
        if admm:
            grids.append(f"redrew {len(admm)} ADMM figures from their records in "
                         f"{args.results / 'figures'}")
        fixed = fixed_point_figures.redraw_all(args.results)
        tables = fixed_point_tables.rewrite_all(args.results)
        if mutation_table.rewrite(args.results):
            grids.append(f"rewrote {args.results / 'mutation' / 'README.md'} from its records")
        if fixed or tables:
            grids.append(f"redrew {len(fixed)} Lin 2016 / Anwar 2015 figures and rewrote "
                         f"{len(tables)} of their tables from their records")
        if args.to_wandb:
            from quantsurvey.report.wandb_push import log_report

            grids.append(log_report(args.to_wandb, rows, figures, args.wandb_offline))
    except QuantsurveyError as err:
        print(f"quantsurvey-report: error: {err.user_message()}", file=sys.stderr)
        sys.exit(err.exit_code)
    extra = [f"{n} {what}" for n, what in ((len(plan.replaced), "replaced"),
                                          (plan.unchanged, "already there, unchanged"),
                                          (plan.skipped, "intermediate stages skipped")) if n]
    print(f"collected {len(copied)} summaries" + (f" ({'; '.join(extra)})" if extra else "")
          + f"; wrote {len(rows)} rows to {args.results / 'results.csv'}, "
          f"{args.results / 'README.md'}, {args.results / 'tables.tex'} and {len(pages)} "
          f"per-paper pages; drew "
          f"{len(figures)} survey figures in {args.results / 'figures'}")
    for line in grids:
        print(line)


if __name__ == "__main__":
    main()

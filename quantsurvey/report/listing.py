"""`quantsurvey-list`: every experiment config with its stages, the paper's figures
(experiments/<paper>/reported.yaml), our latest figures (results/results.csv) and what its header
says about time.

    quantsurvey-list                 # all papers
    quantsurvey-list zhang2018_admm  # one paper
"""

from __future__ import annotations

import argparse
import csv
import re
from collections import defaultdict
from pathlib import Path

import yaml

from quantsurvey.provenance import REPO_ROOT

TIME = re.compile(r"\btime\b", re.IGNORECASE)


def experiments(conf_dir: Path) -> list[tuple[str, str, Path]]:
    root = conf_dir / "experiment"
    return sorted((p.parent.name, p.stem, p) for p in root.glob("*/*.yaml"))


def header(path: Path) -> list[str]:
    lines = []
    for line in path.read_text().splitlines():
        if line.startswith("# @package"):
            continue
        if not line.startswith("#"):
            break
        lines.append(line[1:].strip())
    return lines


def figures(results_csv: Path, experiments_dir: Path) -> tuple[dict, dict]:
    """({(paper, setting): ["method metric value"]} of the papers, the same of ours)."""
    paper: dict = defaultdict(list)
    for path in sorted(experiments_dir.glob("*/reported.yaml")):
        doc = yaml.safe_load(path.read_text()) or {}
        for row in doc.get("rows", []):
            for metric, value in row.get("metrics", {}).items():
                paper[(doc["paper"], row["setting"])].append(f"{row['method']} {metric} {value}")
    ours: dict = defaultdict(list)
    if results_csv.is_file():
        with results_csv.open() as f:
            for row in csv.DictReader(f):
                if row["ours"] and row["metric"] in ("test_err", "top1_err", "ratio"):
                    spread = f" ± {row['ours_std']}" if row["ours_std"] else ""
                    ours[(row["paper"], row["setting"])].append(
                        f"{row['method']} {row['metric']} {float(row['ours']):.3g}{spread} "
                        f"({row['seeds']} seed(s), {row['budget']})")
    return paper, ours


def render(conf_dir: Path, results_dir: Path, experiments_dir: Path, only: str | None) -> str:
    paper_figs, our_figs = figures(results_dir / "results.csv", experiments_dir)
    out = []
    for paper, setting, path in experiments(conf_dir):
        if only and paper != only:
            continue
        doc = yaml.safe_load(path.read_text()) or {}
        stages = list((doc.get("pipeline") or {}).keys())
        head = header(path)
        out.append(f"{paper}/{setting}")
        out.append(f"  run:    quantsurvey experiment={paper}/{setting}")
        out.append(f"  stages: {' → '.join(stages) if stages else '(one run)'}")
        if head:
            out.append(f"  target: {head[0]}")
        times = [h for h in head[1:] if TIME.search(h)]
        if times:
            out.append(f"  time:   {times[0]}")
        for label, figs in (("paper", paper_figs), ("ours", our_figs)):
            for fig in figs.get((paper, setting), [])[:8] or ["—"]:
                out.append(f"  {label + ':':7} {fig}")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    from quantsurvey.cli import CONF_DIR

    parser = argparse.ArgumentParser(prog="quantsurvey-list", description=__doc__.split("\n")[0])
    parser.add_argument("paper", nargs="?", help="only this paper key")
    parser.add_argument("--results", type=Path, default=REPO_ROOT / "results")
    parser.add_argument("--experiments", type=Path, default=REPO_ROOT / "experiments")
    args = parser.parse_args(argv)
    known = {p for p, _, _ in experiments(Path(CONF_DIR))}
    if args.paper and args.paper not in known:
        raise SystemExit(f"quantsurvey-list: error: no experiments for {args.paper!r}; papers: "
                         f"{', '.join(sorted(known))}")
    print(render(Path(CONF_DIR), args.results, args.experiments, args.paper))


if __name__ == "__main__":
    main()

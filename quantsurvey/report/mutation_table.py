"""results/mutation/README.md: the mutation score of every module scored so far, and each
module's surviving mutants with the reason each lives, rendered from the per-module records that
scripts/mutation_score.py writes beside it (`quantsurvey-report` rewrites it, byte for byte)."""

from __future__ import annotations

import json
from pathlib import Path

MUTATION_DIR = "mutation"


def _after(r: dict) -> tuple[int, int, float | None]:
    """(equivalent, killed since, % of the non-equivalent mutants that today's tests kill) from
    the reasons written for the survivors; a survivor without a reason counts as living."""
    reasons = [s.get("reason", "") for s in r["survivors"]]
    equivalent = sum(x.startswith("equivalent") for x in reasons)
    since = sum(x.startswith("killed since") for x in reasons)
    killed = r["killed"] + r["incompetent"] + r["timeout"] + since
    competent = r["mutants"] - r.get("not run", 0) - equivalent
    return equivalent, since, (round(100.0 * killed / competent, 1) if competent else None)


def render_table(out: Path) -> str:
    """The table of the records (*.json) in `out`, then every module's survivors."""
    rows = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    lines = ["# Mutation scores (cosmic-ray)", "",
             "`python scripts/mutation_score.py --modules …` (see its docstring). Score = killed ÷ "
             "(killed + survived), incompetent and timed-out mutants counted as killed, at the "
             "commit named (the tests of that commit). Each module's JSON lists its surviving "
             "mutants with the reason each lives: 'equivalent' (no test can tell it from the "
             "code, the reason says why; a mutant inside a function's type annotation is marked "
             "so by the script itself), 'killed since' (a later test kills it, re-applied by "
             "hand) or 'adopted' (the mutant was the better code and replaced it; counted as "
             "living). `after %` = mutants killed by the tests of today (at the commit, plus "
             "'killed since') ÷ the mutants that are not equivalent: the figure the goal is "
             "about; a re-run at a newer commit measures it directly.", "",
             "| module | tests | mutants | killed | survived | score % | equivalent | "
             "killed since | after % | goal % | commit | wall s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        killed = r["killed"] + r["incompetent"] + r["timeout"]
        equivalent, since, after = _after(r)
        lines.append(f"| {r['module']} | {', '.join(r['tests'])} | {r['mutants']} | {killed} | "
                     f"{r['survived']} | {r['score_pct']} | {equivalent} | {since} | {after} | "
                     f"{r['goal_pct']:.0f} | {r.get('commit', '?')} | {r['wall_s']} |")
    for r in rows:
        if r["survivors"]:
            lines += ["", f"Surviving mutants of {r['module']} (line, operator: why it lives):", ""]
            lines += [f"- line {s['line']}, {s['operator']}: {s.get('reason', 'not yet examined')}"
                      for s in r["survivors"]]
    return "\n".join(lines) + "\n"


def rewrite(results_dir: Path) -> Path | None:
    """results_dir/mutation/README.md from the records there (None when there are none)."""
    folder = results_dir / MUTATION_DIR
    if not any(folder.glob("*.json")):
        return None
    (folder / "README.md").write_text(render_table(folder))
    return folder / "README.md"

"""Re-apply the surviving mutants of a mutation record to today's committed code and run the
module's tests: which of them do today's tests kill?

    python scripts/mutation_reapply.py results/mutation/quantsurvey__compress__admm.json
    python scripts/mutation_reapply.py RECORD --write     # reason 'killed since: <test> …'

Each survivor without a reason (or, with --all, every survivor) is applied alone to a throwaway
copy of HEAD's tree (`git worktree`; the working tree is never touched) with `git apply`, and
the module's tests (scripts/mutation_score.py's MODULES) run with `-x`. A mutant whose diff no
longer applies (the code moved or changed since the record's commit) is reported and left. With
`--write`, a killed survivor gets the reason "killed since: <first failing test> (re-applied by
scripts/mutation_reapply.py at <commit>)"; the record's README row is then rebuilt by
`python scripts/mutation_score.py --modules M --out DIR --summarize-only` or quantsurvey-report.
Slow like the mutation run itself (one pytest start per mutant); run by hand, not in CI.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

from mutation_score import MODULES, throwaway_tree  # noqa: E402

FAILED = re.compile(r"^FAILED (.+?)(?: - .*)?$", re.MULTILINE)  # node ids may hold spaces


def patch_text(diff: str) -> str:
    """cosmic-ray's diff without its '--- mutation diff ---' banner: a patch for `git apply`."""
    lines = diff.splitlines()
    if lines and lines[0].startswith("--- mutation diff"):
        lines = lines[1:]
    return "\n".join(lines) + "\n"


def reapply(tree: Path, survivor: dict, tests: list[str]) -> tuple[str, str]:
    """('killed', test id) / ('survived', '') / ('does not apply', git's message)."""
    patch = patch_text(survivor["diff"])
    applied = subprocess.run(["git", "apply", "-"], input=patch, text=True, cwd=tree,
                             capture_output=True)
    if applied.returncode:
        return "does not apply", applied.stderr.strip().splitlines()[0]
    try:
        run = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                              "-p", "no:randomly", "-rf", *tests], cwd=tree, text=True,
                             capture_output=True)
    finally:
        subprocess.run(["git", "apply", "-R", "-"], input=patch, text=True, cwd=tree,
                       check=True, capture_output=True)
    if run.returncode == 0:
        return "survived", ""
    failed = FAILED.search(run.stdout)
    return "killed", failed.group(1) if failed else f"pytest exit {run.returncode}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("record", type=Path)
    parser.add_argument("--all", action="store_true", help="also survivors that have a reason")
    parser.add_argument("--write", action="store_true",
                        help="write 'killed since' reasons into the record")
    args = parser.parse_args()
    record = json.loads(args.record.read_text())
    tests = MODULES[record["module"]]
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, text=True, check=True,
                            capture_output=True).stdout.strip()
    counts: dict[str, int] = {}
    with throwaway_tree(commit, "mutation-reapply-") as tree:
        for survivor in record["survivors"]:
            if survivor.get("reason") and not args.all:
                continue
            outcome, detail = reapply(tree, survivor, tests)
            counts[outcome] = counts.get(outcome, 0) + 1
            print(f"line {survivor['line']} {survivor['operator']} #{survivor['occurrence']}: "
                  f"{outcome} {detail}", flush=True)
            if outcome == "killed" and args.write:
                survivor["reason"] = (f"killed since: {detail} (re-applied by "
                                      f"scripts/mutation_reapply.py at {commit[:12]})")
    if args.write:
        args.record.write_text(json.dumps(record, indent=1) + "\n")
    print(", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no survivor to re-apply")


if __name__ == "__main__":
    main()

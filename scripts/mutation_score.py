"""Mutation scores per module with cosmic-ray, in a throwaway copy of the committed tree.

    python scripts/mutation_score.py                              # every module in MODULES
    python scripts/mutation_score.py --modules quantsurvey/compress/bit_pack.py \\
        --out results/mutation

For each module, cosmic-ray plants one small change at a time (an operator, a constant, a
comparison, a removed statement …) and runs that module's tests (`MODULES`: the test files that
exercise it, stopping at the first failure); a mutant is killed when the tests fail or time out.
Runs in a copy of HEAD's tree (`git worktree`), never in the working tree, so an interrupted run
leaves no mutated file behind. Writes `<out>/<module path with / as __>.json` (counts, score, and
every surviving mutant: operator, line, diff) and `<out>/README.md` (the table of all modules
scored so far). Slow (one pytest start per mutant, ≈ 4–10 s here); run by hand, not in CI.
The sessions live in `--work` (default outputs/mutation/<module>/): calling the script again
after an interruption continues each session where it stopped (the mutated copy is rebuilt from
the commit, so a file left mutated by a kill is not carried over); the wall time recorded is
that of the last call. `--summarize-only` rewrites the records from the finished sessions without
running anything (commit and wall time kept from the earlier record).
Reasons written by hand into an earlier record are carried over to the same mutant (same
operator, occurrence and diff; quantsurvey/report/mutation_reasons.py): all of them when the
session is the same one (summarised again or continued), only 'equivalent' ones when a new
session re-tested the module.
Score = killed ÷ (killed + survived); cosmic-ray's "incompetent" mutants (the module no longer
imports) count as killed, as the tests fail on them. A survivor that changes only a function's
type annotation is marked equivalent by itself (quantsurvey/report/annotation_mutants.py); every
other survivor awaits a test or a written reason in its JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from quantsurvey.report.annotation_mutants import REASON, annotation_spans, in_annotation  # noqa: E402
from quantsurvey.report.mutation_reasons import CARRIED_IN_A_NEW_SESSION, carry_reasons  # noqa: E402
from quantsurvey.report.mutation_table import render_table  # noqa: E402

# module → the tests that exercise it (the goal: ≥ 90% killed in compress/, nn/ and export,
# ≥ 80% elsewhere)
MODULES = {
    "quantsurvey/compress/bit_pack.py": ["tests/compress/test_fixed_point.py"],
    "quantsurvey/compress/sqnr.py": ["tests/compress/test_fixed_point.py"],
    "quantsurvey/compress/binary.py": ["tests/methods/test_binary.py"],
    "quantsurvey/compress/xnor_popcount.py": ["tests/methods/test_binary.py",
                                              "tests/compress/test_xnor_popcount.py"],
    "quantsurvey/compress/fixed_point.py": ["tests/compress/test_fixed_point.py"],
    "quantsurvey/compress/pruning.py": ["tests/compress/test_pruning.py"],
    "quantsurvey/compress/kmeans.py": ["tests/compress/test_kmeans.py"],
    "quantsurvey/compress/huffman.py": ["tests/compress/test_huffman_and_index.py"],
    "quantsurvey/compress/sparse_index.py": ["tests/compress/test_huffman_and_index.py"],
    "quantsurvey/compress/container.py": ["tests/compress/test_export.py"],
    "quantsurvey/nn/masking.py": ["tests/compress/test_pruning.py"],
    "quantsurvey/nn/weight_sharing.py": ["tests/compress/test_kmeans.py"],
    "quantsurvey/compress/ternary_pack.py": [  # the packing tests of a slow file
        f"tests/methods/test_ternary.py::{t}" for t in (
            "test_two_bit_packing_round_trips_any_length",
            "test_unpacking_returns_int8_codes_under_numpy_2_promotion",
            "test_damaged_packed_codes_are_refused",
            "test_trained_ternary_values_are_exactly_minus_wn_zero_wp",
            "test_export_round_trip_gives_the_same_outputs_and_2_bits_per_weight")],
    "quantsurvey/atomic_io.py": ["tests/test_atomic_writes.py"],
    "quantsurvey/compress/shift.py": ["tests/methods/test_shift_based.py"],
    "quantsurvey/nn/shift_batchnorm.py": ["tests/methods/test_shift_based.py"],
    "quantsurvey/optim/shift_adamax.py": ["tests/methods/test_shift_based.py"],
    "quantsurvey/data/sampler.py": ["tests/data/test_sampler_and_augment.py"],
    "quantsurvey/compress/optimal_quantizer.py": ["tests/compress/test_fixed_point.py"],
    "quantsurvey/compress/admm.py": ["tests/methods/test_admm.py"],
    "quantsurvey/compress/sensitivity_allocation.py": [
        "tests/compress/test_sensitivity_allocation.py"],
    "quantsurvey/nn/quant.py": ["tests/nn/test_quant.py", "tests/compress/test_pruning.py",
                                "tests/compress/test_kmeans.py", "tests/compress/test_export.py"],
    "quantsurvey/nn/layers.py": ["tests/nn/test_layers.py", "tests/methods/test_registry.py",
                                 "tests/models/test_xnor_order.py"],
    "quantsurvey/nn/binary.py": ["tests/methods/test_binary.py",
                                 "tests/models/test_xnor_order.py"],
    "quantsurvey/nn/fixed_point.py": ["tests/methods/test_fixed_point.py"],
    "quantsurvey/nn/calibration.py": ["tests/methods/test_fixed_point.py"],
    "quantsurvey/nn/ternary.py": ["tests/methods/test_ternary.py"],
    "quantsurvey/nn/packed_inference.py": ["tests/methods/test_binary.py"],
    "quantsurvey/export.py": ["tests/compress/test_export.py", "tests/methods/test_binary.py",
                              "tests/methods/test_fixed_point.py", "tests/methods/test_ternary.py",
                              "tests/models/test_xnor_order.py"],
    # the machinery: each mutant that survives costs the whole list (test_pipeline.py ≈ 2 min)
    "quantsurvey/stages.py": ["tests/test_pipeline.py", "tests/test_evaluate.py"],
    "quantsurvey/pipeline.py": ["tests/test_pipeline.py"],
    "quantsurvey/data/base.py": ["tests/data/test_sampler_and_augment.py",
                                 "tests/data/test_loaders_in_training.py",
                                 "tests/data/test_mnist.py"],
    "quantsurvey/lit/classifier.py": ["tests/lit/test_classifier.py", "tests/test_train.py"],
    "quantsurvey/report/build.py": ["tests/report/test_build.py", "tests/report/test_collect.py"],
    "quantsurvey/report/recipe_drift.py": ["tests/report/test_recipe_drift.py"],
    "quantsurvey/report/listing.py": ["tests/report/test_listing.py"],
}
GOAL = {"quantsurvey/compress/": 90.0, "quantsurvey/nn/": 90.0, "quantsurvey/export": 90.0}


def goal(module: str) -> float:
    return next((v for k, v in GOAL.items() if module.startswith(k)), 80.0)


def score_module(module: str, tests: list[str], tree: Path, timeout: float,
                 work: Path) -> dict:
    """Mutate and test `module` in `tree`; the session lives in `work` (an interrupted run
    continues where it stopped when called again with the same `work`)."""
    work.mkdir(parents=True, exist_ok=True)
    config = work / "cosmic-ray.toml"
    command = " ".join([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                        "-p", "no:randomly", *tests])
    config.write_text(
        "[cosmic-ray]\n"
        f'module-path = "{module}"\n'
        f"timeout = {timeout}\n"
        "excluded-modules = []\n"
        f'test-command = "{command}"\n\n'
        "[cosmic-ray.distributor]\n"
        'name = "local"\n')
    session = work / "session.sqlite"
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}  # the copy's code
    env_cmd = {"cwd": tree, "check": True, "capture_output": True, "text": True, "env": env}
    if not session.is_file():
        subprocess.run(["cosmic-ray", "init", str(config), str(session)], **env_cmd)
    start = time.time()
    subprocess.run(["cosmic-ray", "exec", str(config), str(session)], **env_cmd)
    record = summarize(session, module, tests, (tree / module).read_text())
    record["wall_s"] = round(time.time() - start, 1)
    return record


def summarize(session: Path, module: str, tests: list[str], source: str) -> dict:
    """Counts, score and survivors of a cosmic-ray session; a survivor that only changes a
    function's type annotation in `source` (the module's text at the commit, unmutated) is
    marked equivalent (hand-written reasons: carry_reasons)."""
    spans = annotation_spans(source)
    dump = subprocess.run(["cosmic-ray", "dump", str(session)], check=True, capture_output=True,
                          text=True).stdout
    counts = {"killed": 0, "survived": 0, "incompetent": 0, "timeout": 0, "not run": 0}
    survivors = []
    for line in dump.splitlines():
        job, result = json.loads(line)
        if result is None:
            counts["not run"] += 1
            continue
        outcome = result["test_outcome"]
        if result.get("worker_outcome") == "timeout":
            counts["timeout"] += 1
        elif outcome == "killed":
            counts["killed"] += 1
        elif outcome == "incompetent":
            counts["incompetent"] += 1
        else:
            counts["survived"] += 1
            mutation = job["mutations"][0]
            survivor = {"operator": mutation["operator_name"],
                        "occurrence": mutation["occurrence"],
                        "line": mutation["start_pos"][0],
                        "diff": result.get("diff", "")}
            if in_annotation(mutation["start_pos"], mutation["end_pos"], spans):
                survivor["reason"] = REASON
            survivors.append(survivor)
    killed = counts["killed"] + counts["incompetent"] + counts["timeout"]
    total = killed + counts["survived"]
    return {"module": module, "tests": tests, **counts, "mutants": total,
            "score_pct": round(100.0 * killed / total, 1) if total else None,
            "goal_pct": goal(module), "survivors": survivors}


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True,
                          text=True).stdout


@contextlib.contextmanager
def throwaway_tree(commit: str, prefix: str):
    """A `git worktree` of `commit` in a temporary folder, with the compiled popcount kernel built
    as `pip install` builds it (a test checks it is there); removed on exit, whatever happens."""
    tree = Path(tempfile.mkdtemp(prefix=prefix)) / "tree"
    git("worktree", "add", "--detach", str(tree), commit)
    try:
        subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=tree,
                       check=True, capture_output=True)
        yield tree
    finally:  # unchecked: a failure here must not hide the real one
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO,
                       capture_output=True)
        shutil.rmtree(tree.parent, ignore_errors=True)


def summarize_again(module: str, session: Path, previous: dict | None) -> dict:
    """The record of a finished session, read again without running anything; the module's
    source (for its annotations), the tests, the commit and the wall time are those of the
    earlier record."""
    if not (session / "session.sqlite").is_file():
        raise SystemExit(f"mutation_score: no session for {module} in {session}: run without "
                         f"--summarize-only first.")
    if previous is None:
        raise SystemExit(f"mutation_score: {module} has no earlier record to take the commit "
                         f"and wall time from: run without --summarize-only.")
    source = git("show", f"{previous['commit']}:{module}")
    record = summarize(session / "session.sqlite", module, previous["tests"], source)
    return {**record, "wall_s": previous.get("wall_s"), "commit": previous["commit"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", nargs="+", default=list(MODULES), choices=list(MODULES))
    parser.add_argument("--out", type=Path, default=REPO / "results" / "mutation")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant")
    parser.add_argument("--work", type=Path, default=REPO / "outputs" / "mutation",
                        help="sessions, one folder per module: a second call continues them")
    parser.add_argument("--summarize-only", action="store_true",
                        help="rewrite the records from the sessions in --work, run nothing")
    args = parser.parse_args()
    commit = git("rev-parse", "HEAD").strip()
    args.out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        tree = None if args.summarize_only else stack.enter_context(
            throwaway_tree(commit, "mutation-tree-"))
        for module in args.modules:
            print(f"mutation_score: {module} …", flush=True)
            name = module.replace("/", "__").removesuffix(".py") + ".json"
            work = args.work / name.removesuffix(".json")
            old = args.out / name
            previous = json.loads(old.read_text()) if old.is_file() else None
            same_session = (work / "session.sqlite").is_file()
            if args.summarize_only:
                record = summarize_again(module, work, previous)
            else:
                record = {**score_module(module, MODULES[module], tree, args.timeout, work),
                          "commit": commit[:12]}
            kinds = None if same_session else CARRIED_IN_A_NEW_SESSION
            carried = carry_reasons((previous or {}).get("survivors", []), record["survivors"],
                                    kinds)
            (args.out / name).write_text(json.dumps(record, indent=1) + "\n")
            (args.out / "README.md").write_text(render_table(args.out))
            print(f"  {record['score_pct']}% of {record['mutants']} killed "
                  f"({record['survived']} survived; {carried} reasons carried over) in "
                  f"{record['wall_s']} s", flush=True)

if __name__ == "__main__":
    main()

"""How the step rule decides a fixed-point conversion (no fine-tuning): Lin et al.'s σ·S(β) with
the Gaussian table (their rule), the same with the Laplacian table, the range rule (step =
max|x| / 2^(b−1): nothing clips) and Anwar et al.'s L2-optimal weight steps, each at a few
weight / input bit-widths, on a trained float network: test error and the logits' SQNR. Lin's
and the range rule also with unsigned codes for non-negative inputs (`act_signed: auto`).

    python scripts/fixed_point_step_rules.py \
        --run outputs/zhu2017_ttq/resnet20_cifar10/float/seed=0 --data-root ../shared/data

Writes results/lin2016_fixed_point/step_rules_<setting>_seed<s>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from lin2016_analysis import load_float_run, logits, quantized, test_error  # noqa: E402

from quantsurvey.atomic_io import write_json_atomic  # noqa: E402
from quantsurvey.compress.sqnr import sqnr_db  # noqa: E402
from quantsurvey.provenance import git_state, hardware  # noqa: E402
from quantsurvey.report.fixed_point_tables import step_rules_md  # noqa: E402
from quantsurvey.threads import set_threads  # noqa: E402

RULES = {
    "Lin: σ·S(β), Gaussian": {"weight_step": "sqnr", "act_step": "sqnr",
                               "distribution": "gaussian"},
    "σ·S(β), Laplacian": {"weight_step": "sqnr", "act_step": "sqnr", "distribution": "laplacian"},
    "range: max|x| / 2^(b−1)": {"weight_step": "max", "act_step": "max"},
    "Anwar: L2-optimal w, range a": {"weight_step": "l2", "act_step": "max"},
    # act_signed auto: unsigned codes for every input whose calibrated minimum is >= 0 (here
    # every layer's but the first, which sees the normalised image): one more level of
    # resolution for a ReLU output at the same bits
    "Lin, unsigned inputs ≥ 0": {"weight_step": "sqnr", "act_step": "sqnr",
                                 "distribution": "gaussian", "act_signed": "auto"},
    "range, unsigned inputs ≥ 0": {"weight_step": "max", "act_step": "max",
                                   "act_signed": "auto"},
}
BITS = ((8, 8), (6, 6), (4, 8), (8, 4))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path, default=REPO / "data" / "cache")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "lin2016_fixed_point")
    args = parser.parse_args()
    start, git = time.time(), git_state()
    set_threads(args.threads)
    summary, rc, dm, model, val, test, ctx = load_float_run(
        args.run, args.data_root, args.cache_dir, 1000, args.out)
    reference = logits(model, val)
    rows = []
    for rule, section in RULES.items():
        for wb, ab in BITS:
            m, layers = quantized(model, {**section, "weight_bits": wb, "input_bits": ab,
                                          "power_of_two": True, "calibration_batches": 10},
                                  "fixed_point", ctx)
            unsigned = [name for name, entry in layers.items()
                        if not entry.get("input", {}).get("signed", True)]
            rows.append({"rule": rule, "weight_bits": wb, "input_bits": ab,
                         "unsigned_inputs": unsigned, "test_err": test_error(m, test),
                         "logit_sqnr_db": sqnr_db(reference, logits(m, val))})
            print(rows[-1], flush=True)
    result = {"float_run": str(args.run), "float_test_err": test_error(model, test),
              "float_budget": summary["budget"], "rows": rows, "rules": RULES,
              "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "git": git,
              "hardware": hardware(), "threads": args.threads,
              "wall_time_s": round(time.time() - start, 1)}
    stem = f"step_rules_{summary['setting']}_seed{summary['seed']}"
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / f"{stem}.json", result)
    record = json.loads((args.out / f"{stem}.json").read_text())  # as quantsurvey-report reads it
    (args.out / f"{stem}.md").write_text(step_rules_md(record))
    print(f"wrote {args.out / stem}.{{json,md}}")


if __name__ == "__main__":
    main()

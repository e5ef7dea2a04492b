"""The MSE-optimal uniform quantizer steps for unit-variance Gaussian, Laplacian and uniform
inputs, 1–16 bits, mid-rise and with zero as a level (Lin et al. 2016 Table 1; Max 1960):
step, SQNR on its own distribution (dB) and dB per bit.

    python scripts/optimal_steps_table.py      # → results/lin2016_fixed_point/optimal_steps.*
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from quantsurvey.atomic_io import write_json_atomic  # noqa: E402
from quantsurvey.compress.optimal_quantizer import optimal_table  # noqa: E402
from quantsurvey.provenance import git_state  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "results" / "lin2016_fixed_point")
    args = parser.parse_args()
    start = time.time()
    rows = optimal_table(range(1, 17))
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "optimal_steps.json", {
        "what": "MSE-optimal step of a b-bit uniform quantizer on a unit-variance density "
                "(quantsurvey.compress.optimal_quantizer); SQNR = 10·log10(1/MSE)",
        "git": git_state(), "wall_time_s": round(time.time() - start, 1), "rows": rows})
    lines = ["# Optimal uniform quantizer steps (unit variance)", "",
             "Computed by `python scripts/optimal_steps_table.py` "
             "(quantsurvey.compress.optimal_quantizer: exact MSE by quadrature per cell, "
             "minimised over the step). Lin et al. 2016 Table 1 (Gaussian, mid-rise): "
             "1 bit 1.596, 2 bits 0.996 — the paper's figures, not ours.", ""]
    for dist in ("gaussian", "laplacian", "uniform"):
        lines += [f"## {dist}", "",
                  "| bits | mid-rise step | SQNR dB | dB/bit | zero-level step | SQNR dB "
                  "| dB/bit |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        for b in range(1, 17):
            mr, zl = (next(r for r in rows if r["distribution"] == dist and r["bits"] == b
                           and r["levels"] == lv) for lv in ("mid_rise", "zero_level"))
            lines.append(f"| {b} | {mr['step']:.6g} | {mr['sqnr_db']:.2f} | "
                         f"{mr['db_per_bit']:.2f} | {zl['step']:.6g} | {zl['sqnr_db']:.2f} | "
                         f"{zl['db_per_bit']:.2f} |")
        lines.append("")
    (args.out / "optimal_steps.md").write_text("\n".join(lines))
    print(f"wrote {args.out}/optimal_steps.{{json,md}}")


if __name__ == "__main__":
    main()

"""The MSE-optimal uniform quantizer steps for unit-variance Gaussian, Laplacian and uniform
inputs, 1–16 bits, mid-rise and with zero as a level (Lin et al. 2016 Table 1; Max 1960):
step, SQNR on its own distribution (dB) and dB per bit.

    python scripts/optimal_steps_table.py      # → results/lin2016_fixed_point/optimal_steps.*
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from quantsurvey.atomic_io import write_json_atomic  # noqa: E402
from quantsurvey.compress.optimal_quantizer import optimal_table  # noqa: E402
from quantsurvey.provenance import git_state  # noqa: E402
from quantsurvey.report.fixed_point_tables import optimal_steps_md  # noqa: E402


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
    record = json.loads((args.out / "optimal_steps.json").read_text())  # as the report reads it
    (args.out / "optimal_steps.md").write_text(optimal_steps_md(record))
    print(f"wrote {args.out}/optimal_steps.{{json,md}}")


if __name__ == "__main__":
    main()

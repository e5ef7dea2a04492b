"""zhu2017_ttq/resnet20_cifar10 on one GPU within a time limit: float, then TTQ and the
fixed-scale ablation, three seeds each, all seeds at once.

    python scripts/gpu_ttq_resnet20.py --seconds 480 --timing results/benchmarks/gpu.json \\
        --data-dir DATA --output-dir OUT [--seeds 0 1 2] [--dry-run]

The budget is the longest schedule from `EPOCHS` whose estimated time fits `--seconds`:
estimated from the latest `bench_gpu.py` record in `--timing` (median epoch time of `resnet20`
with as many jobs as seeds, of `resnet20_ttq` with twice as many) plus `STARTUP_S` per phase.
Every stage runs that many epochs with the paper's milestones scaled to 50% / 75% / 91.5% and is
labelled `budget=gpu-<E>ep` (the full 164 epochs are labelled `paper`). Phase 1 runs the float
stage of every seed at once; phase 2 the ttq and the fixed_scale stages of every seed at once
(each reuses its seed's finished float stage). Each command is printed before it runs, so the
runs can be repeated one by one on any machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

EPOCHS = (164, 120, 100, 80, 64, 50, 40, 32, 24, 16, 12, 8)
STARTUP_S = 25.0  # per phase: imports, data to the device, cuDNN autotuning, final test
EXPERIMENT = "experiment=zhu2017_ttq/resnet20_cifar10"


def schedule(epochs: int) -> list[str]:
    if epochs == 164:
        return []  # the config is the paper's schedule
    marks = [round(epochs * f) for f in (0.5, 0.75, 0.915)]
    return [f"budget=gpu-{epochs}ep", f"trainer.max_epochs={epochs}",
            f"sched.milestones=[{','.join(map(str, marks))}]"]


def choose_epochs(timing: Path, seeds: int, seconds: float) -> tuple[int, dict]:
    record = json.loads(timing.read_text())[-1]
    rows = {(r["case"], r["jobs"]): r["epoch_s_median"] for r in record["rows"]}
    try:
        t_float, t_ternary = rows[("resnet20", seeds)], rows[("resnet20_ttq", 2 * seeds)]
    except KeyError as err:
        sys.exit(f"gpu_ttq_resnet20: {timing} has no timing for {err.args[0]}: run "
                 f"bench_gpu.py --case resnet20 --jobs {seeds} and --case resnet20_ttq "
                 f"--jobs {2 * seeds} first.")
    for epochs in EPOCHS:
        estimate = 2 * STARTUP_S + epochs * (t_float + t_ternary)
        if estimate <= seconds:
            return epochs, {"float_epoch_s": t_float, "ternary_epoch_s": t_ternary,
                            "estimate_s": round(estimate, 1), "gpu": record["gpu"]}
    sys.exit(f"gpu_ttq_resnet20: not even {EPOCHS[-1]} epochs fit in {seconds} s.")


def run_all(commands: list[list[str]], logs: Path, dry_run: bool) -> None:
    procs = []
    for i, cmd in enumerate(commands):
        print(" ".join(cmd), flush=True)
        if not dry_run:
            log = open(logs / f"{int(time.time())}-{i}.log", "w")  # noqa: SIM115
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
    failed = [p.args for p in procs if p.wait() != 0]
    if failed:
        sys.exit(f"gpu_ttq_resnet20: {len(failed)} run(s) failed; see {logs}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--timing", type=Path, required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, help="skip the choice: this many epochs")
    parser.add_argument("--accelerator", default="gpu")
    parser.add_argument("--extra", nargs="*", default=[],
                        help="more overrides, e.g. trainer.limit_train_batches=2 to try it")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    if args.epochs:
        epochs, why = args.epochs, {"chosen": "by --epochs"}
    else:
        epochs, why = choose_epochs(args.timing, len(args.seeds), args.seconds)
    print(json.dumps({"epochs": epochs, **why}), flush=True)
    common = [EXPERIMENT, *schedule(epochs), f"trainer.accelerator={args.accelerator}",
              "trainer.devices=1", f"trainer.threads={args.threads}",
              "trainer.progress_bar=none", f"paths.data_dir={args.data_dir}",
              f"paths.output_dir={args.output_dir}", *args.extra]
    logs = Path(args.output_dir) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    quantsurvey = [sys.executable, "-m", "quantsurvey.cli"]
    start = time.time()
    run_all([[*quantsurvey, *common, f"seed={s}", "~pipeline.ttq", "~pipeline.fixed_scale"]
             for s in args.seeds], logs, args.dry_run)
    print(f"phase 1 (float) took {time.time() - start:.0f} s", flush=True)
    start = time.time()
    run_all([[*quantsurvey, *common, f"seed={s}", f"~pipeline.{drop}"]
             for s in args.seeds for drop in ("fixed_scale", "ttq")], logs, args.dry_run)
    print(f"phase 2 (ttq, fixed_scale) took {time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()

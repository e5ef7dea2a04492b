"""The binary-network experiments on one GPU within a time limit, every stage at once.

    C="bnn_mlp4096_float bnn_mlp4096_bnn"               # e.g. the MNIST MLP, 3 seeds
    python scripts/bench_gpu.py --mix $C $C $C --epochs 2 --threads 1 --out probe.json
    python scripts/gpu_binary.py --only $C --timing probe.json --safety 1.15 --seconds 500 \\
        --data-dir DATA --output-dir OUT [--dry-run]
    python scripts/gpu_binary.py --only bnn_mlp4096_bnn --epochs 0 26 …         # no probe

The probe that worked (NVIDIA H200, session 6, results/benchmarks/README.md): two WHOLE epochs
of exactly the stages to run, side by side, then `--safety 1.15` (estimated 492 s; the six MNIST
stages finished in 380–399 s). A probe of short epochs (`--limit-train-batches 150`) of all
eleven stages under-estimated whole epochs 2.0–2.2× (session 5), hence the default 2.3 for it.

Eleven stages, each its own `quantsurvey` process on the one GPU, all started together (each
trains from scratch, as both papers do, so none waits for another):
- courbariaux2016_bnn/bnn_convnet_cifar10: `float` and `bnn`, seed 0;
- rastegari2016_xnor/bnn_convnet_cifar10: `float`, `bwn` and `xnor`, seed 0;
- courbariaux2016_bnn/bnn_mlp_mnist at Theano's width 4096: `float` and `bnn`, seeds 0, 1, 2.

The budget per family (CIFAR-10, MNIST) is the largest whole number of epochs E whose estimate
(`STARTUP_S` + E × `--safety` × the family's slowest `full_epoch_s` in the latest `--timing`
record + `FINISH_S`) fits `--seconds`, capped at `MAX_EPOCHS`. The safety factor is measured: on
an H200 (2026-11-27, results/benchmarks/gpu_binary_probe.json) the probe's short epochs
(150 batches) overlapped less with the other jobs' than whole epochs do, and the eleven stages
then ran 2.0–2.2× slower than estimated (CIFAR-10 11–13 of 21 epochs, MNIST 18–21 of 32 in the
480 s; none finished). Hence the default 2.3. Every stage of the family runs E epochs,
labelled `budget=gpu-<E>ep`: the papers' Adam and start learning rate, decayed exponentially to
start/100 over the E epochs (SHORTENED: the papers decay to 3e-7 over 500 epochs (CIFAR-10) and
1000 (MNIST)). No checkpoints are written (a lent machine's runs cannot be resumed there).
Each command is printed before it runs, so every stage can be repeated alone on
any machine.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

STARTUP_S = 30.0  # imports, data to the device, cuDNN set-up
FINISH_S = 30.0   # the last validation, the test, the export and its read-back check
MAX_EPOCHS = {"cifar10": 500, "mnist": 1000}  # the papers' schedules
CIFAR_BNN = "experiment=courbariaux2016_bnn/bnn_convnet_cifar10"
CIFAR_XNOR = "experiment=rastegari2016_xnor/bnn_convnet_cifar10"
MNIST_BNN = "experiment=courbariaux2016_bnn/bnn_mlp_mnist"
# (family, timing case, overrides): one stage each; `~pipeline.<s>` drops the other stages
STAGES = [
    ("cifar10", "bnn_convnet_float", [CIFAR_BNN, "~pipeline.bnn", "sched.end_lr=1.0e-5"]),
    ("cifar10", "bnn_convnet_bnn", [CIFAR_BNN, "~pipeline.float", "sched.end_lr=1.0e-5"]),
    ("cifar10", "xnor_convnet_float",
     [CIFAR_XNOR, "~pipeline.bwn", "~pipeline.xnor", "sched.end_lr=1.0e-5"]),
    ("cifar10", "xnor_convnet_bwn",
     [CIFAR_XNOR, "~pipeline.float", "~pipeline.xnor", "sched.end_lr=1.0e-5"]),
    ("cifar10", "xnor_convnet_xnor",
     [CIFAR_XNOR, "~pipeline.float", "~pipeline.bwn", "sched.end_lr=1.0e-5"]),
    *[("mnist", f"bnn_mlp4096_{stage}",
       [MNIST_BNN, f"~pipeline.{other}", f"seed={seed}"])  # width 4096, end lr 3e-5: the config's
      for seed in (0, 1, 2) for stage, other in (("float", "bnn"), ("bnn", "float"))],
]
MIX = " ".join(case for _, case, _ in STAGES)


def choose_epochs(timing: Path, seconds: float, safety: float,
                  stages: list[tuple[str, str, list[str]]] = STAGES
                  ) -> tuple[dict[str, int], dict]:
    """Epochs per family of `stages` (the families without a stage get 0)."""
    record = json.loads(timing.read_text())[-1]
    full = {row["case"]: row["full_epoch_s"] for row in record["rows"] if "full_epoch_s" in row}
    missing = sorted({case for _, case, _ in stages} - set(full))
    if missing:
        mix = " ".join(case for _, case, _ in stages)
        sys.exit(f"gpu_binary: {timing} has no full_epoch_s for {', '.join(missing)}: run "
                 f"bench_gpu.py --mix {mix} --limit-train-batches 150 first.")
    epochs = dict.fromkeys(MAX_EPOCHS, 0)
    why = {"gpu": record["gpu"], "timing_commit": record["commit"], "safety": safety}
    for family in sorted({fam for fam, _, _ in stages}, key=list(MAX_EPOCHS).index):
        slowest = safety * max(full[case] for fam, case, _ in stages if fam == family)
        fit = math.floor((seconds - STARTUP_S - FINISH_S) / slowest)
        if fit < 1:
            sys.exit(f"gpu_binary: not one {family} epoch ({slowest} s) fits in {seconds} s.")
        epochs[family] = min(fit, MAX_EPOCHS[family])
        why[f"{family}_epoch_s"] = round(slowest, 2)
        why[f"{family}_estimate_s"] = round(STARTUP_S + epochs[family] * slowest + FINISH_S, 1)
    return epochs, why


def budget(epochs: int, family: str) -> list[str]:
    if epochs == MAX_EPOCHS[family]:
        return [f"trainer.max_epochs={epochs}"]
    return [f"budget=gpu-{epochs}ep", f"trainer.max_epochs={epochs}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print-mix", action="store_true",
                        help="print the timing cases for bench_gpu.py --mix, and stop")
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--timing", type=Path, help="a bench_gpu.py --mix record")
    parser.add_argument("--safety", type=float, default=2.3,
                        help="whole epochs under load ÷ the probe's estimate (measured: 2.0–2.2)")
    parser.add_argument("--epochs", type=int, nargs=2, metavar=("CIFAR10", "MNIST"),
                        help="skip the choice: these many epochs")
    parser.add_argument("--data-dir")
    parser.add_argument("--output-dir")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--accelerator", default="gpu")
    parser.add_argument("--extra", nargs="*", default=[],
                        help="more overrides, e.g. trainer.limit_train_batches=2 to try it")
    parser.add_argument("--only", nargs="+", metavar="CASE", help="run only these stages")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    if args.print_mix:
        print(MIX)
        return
    if None in (args.data_dir, args.output_dir) or (args.seconds is None and not args.epochs):
        parser.error("--data-dir and --output-dir are required, and --seconds unless --epochs "
                     "names the epochs")
    stages = [stage for stage in STAGES if not args.only or stage[1] in args.only]
    if not stages:
        parser.error(f"--only names no stage; the cases are: {MIX}")
    if args.epochs:
        epochs, why = dict(zip(MAX_EPOCHS, args.epochs, strict=True)), {"chosen": "by --epochs"}
    elif args.timing:
        epochs, why = choose_epochs(args.timing, args.seconds, args.safety, stages)
    else:
        sys.exit("gpu_binary: give --timing (a bench_gpu.py --mix record) or --epochs.")
    print(json.dumps({"epochs": epochs, **why}), flush=True)
    common = [f"trainer.accelerator={args.accelerator}", "trainer.devices=1",
              "callbacks.checkpoint=false",  # no resume on a lent machine: no epoch-end writes
              f"trainer.threads={args.threads}", "trainer.progress_bar=none",
              f"paths.data_dir={args.data_dir}", f"paths.output_dir={args.output_dir}"]
    logs = Path(args.output_dir) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs, start = [], time.time()
    for i, (family, case, overrides) in enumerate(STAGES):
        if (family, case, overrides) not in stages:
            continue
        cmd = [sys.executable, "-m", "quantsurvey.cli", *overrides,
               *budget(epochs[family], family), *common, *args.extra]
        print(" ".join(cmd), flush=True)
        if not args.dry_run:
            log = open(logs / f"{i:02d}-{case}.log", "w")  # noqa: SIM115
            procs.append((case, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)))
    failed = []
    for case, proc in procs:
        code = proc.wait()
        print(f"{case}: exit {code} after {time.time() - start:.0f} s", flush=True)
        failed += [case] if code else []
    if failed:
        sys.exit(f"gpu_binary: {len(failed)} stage(s) failed ({', '.join(failed)}); see {logs}")


if __name__ == "__main__":
    main()

"""Epoch time and throughput of framework runs on one GPU, alone and several at once.

    python scripts/bench_gpu.py --case resnet20 --jobs 1 3 --epochs 3
    python scripts/bench_gpu.py --case lenet5 --jobs 1 4 8 --out results/benchmarks/gpu.json

Each of `--jobs` N starts N training processes at the same time on the one GPU (each
`--threads` torch threads, default 2), each a fresh `quantsurvey` run (`train()`, accelerator gpu,
the in-memory data set on the device). An epoch's time is the time between the starts of
consecutive training epochs (training, validation, checkpoint, logging), epoch 0 (warm-up:
cuDNN autotuning, data to the device) dropped. Reported per N: the median epoch time of a run,
and the throughput of the GPU as a whole (N × training images per epoch ÷ median epoch time).

Cases: `resnet20` (the CIFAR ResNet-20 float recipe of zhu2017_ttq at batch 128 on CIFAR-10
shaped data: `--data cifar10` reads the real set, `--data synthetic` 50,000 random images of
the same shape, for a machine that has no copy), `resnet20_ttq` (the same with the TTQ
transform on the 18 inner convs), `lenet5` and `lenet300_100` (the han2015_pruning float
recipes on MNIST), and the binary networks' recipes: `bnn_convnet_float`, `bnn_convnet_bnn`
(courbariaux2016_bnn, CIFAR-10 ConvNet, batch 50), `xnor_convnet_float`, `xnor_convnet_bwn`,
`xnor_convnet_xnor` (rastegari2016_xnor), `bnn_mlp4096_float`, `bnn_mlp4096_bnn` (the 3×4096
MNIST MLP, batch 100). Appends a record with the GPU's name and the commit to `--out`.

    python scripts/bench_gpu.py --mix bnn_convnet_float bnn_convnet_bnn bnn_mlp4096_bnn ... \
        --limit-train-batches 150 --epochs 3 --data synthetic --out probe.json

`--mix` starts one run of each named case at the same time (a case named twice runs twice) and
records each case's median epoch time; with `--limit-train-batches K` an epoch is K training
batches and 2 validation batches, and `full_epoch_s` estimates a whole epoch: the median time of
a training step (an epoch's start to its validation's start, ÷ K) × the batches of the training
split, plus the rest of the measured epoch (validation, checkpoint, logging).
`scripts/gpu_binary.py` chooses its budget from such a record.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

RESNET = ["experiment=zhu2017_ttq/resnet20_cifar10", "~pipeline", "budget=bench"]
# the binary cases without checkpoints, as scripts/gpu_binary.py runs them
NO_CKPT = ["budget=bench", "callbacks.checkpoint=false"]
BNN_CONVNET = ["experiment=courbariaux2016_bnn/bnn_convnet_cifar10", "~pipeline", *NO_CKPT]
XNOR_CONVNET = ["experiment=rastegari2016_xnor/bnn_convnet_cifar10", "~pipeline", *NO_CKPT]
BNN_MLP = ["experiment=courbariaux2016_bnn/bnn_mlp_mnist", "~pipeline", *NO_CKPT,
           "model.params.width=4096"]
BNN = ["method=bnn", "+compress.bnn.weights=all", "+compress.bnn.inputs=all_but_first"]
CASES = {
    "resnet20": RESNET,
    "resnet20_ttq": [*RESNET, "+compress.ttq.t=0.05"],
    "lenet5": ["experiment=han2015_pruning/lenet5_mnist", "~pipeline", "budget=bench"],
    "lenet300_100": ["experiment=han2015_pruning/lenet300_100_mnist", "~pipeline",
                     "budget=bench"],
    "bnn_convnet_float": BNN_CONVNET,
    "bnn_convnet_bnn": [*BNN_CONVNET, *BNN],
    "xnor_convnet_float": XNOR_CONVNET,
    "xnor_convnet_bwn": [*XNOR_CONVNET, "method=bwn", "+compress.bwn.weights=inner"],
    "xnor_convnet_xnor": [*XNOR_CONVNET, "method=xnor", "+compress.xnor.weights=inner",
                          "+compress.xnor.inputs=inner", "+compress.xnor.input_scale=true"],
    "bnn_mlp4096_float": BNN_MLP,
    "bnn_mlp4096_bnn": [*BNN_MLP, *BNN],
}
CIFAR_SHAPED = ("resnet", "bnn_convnet", "xnor_convnet")
SYNTHETIC_CIFAR = ["data=synthetic", "data.params.input_shape=[3,32,32]",
                   "data.params.train_size=50000", "data.params.test_size=10000",
                   "data.val_size=5000", "data.eval_batch_size=1000"]
RESNET_DATA = ["data.batch_size=128", "data.augment=crop_flip", "data.pad=4"]
BINARY_DATA = ["data.batch_size=50", "data.augment=none"]


def worker(args: argparse.Namespace) -> None:
    from hydra import compose, initialize_config_dir

    from quantsurvey.cli import CONF_DIR
    from quantsurvey.lit.classifier import ClassifierModule
    from quantsurvey.train import train

    marks: list[float] = []
    val_marks: list[float] = []

    def marking(hook, into):
        def wrapped(self, *a):
            into.append(time.perf_counter())
            return hook(self, *a)

        return wrapped

    ClassifierModule.on_train_epoch_start = marking(ClassifierModule.on_train_epoch_start, marks)
    ClassifierModule.on_train_end = marking(ClassifierModule.on_train_end, marks)
    ClassifierModule.on_validation_epoch_start = marking(
        ClassifierModule.on_validation_epoch_start, val_marks)
    data = []
    if args.case.startswith(CIFAR_SHAPED) and args.data == "synthetic":
        data = [*SYNTHETIC_CIFAR,
                *(RESNET_DATA if args.case.startswith("resnet") else BINARY_DATA)]
    limit = ([f"trainer.limit_train_batches={args.limit_train_batches}",
              "trainer.limit_val_batches=2", "trainer.limit_test_batches=2"]
             if args.limit_train_batches else [])
    out = Path(args.worker_out)
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[
            *CASES[args.case], *data, *limit, f"trainer.max_epochs={args.epochs}",
            f"trainer.accelerator={args.accelerator}", "trainer.devices=1",
            f"trainer.threads={args.threads}",
            "trainer.progress_bar=none", f"seed={args.seed}", f"paths.output_dir={out}"])
    from quantsurvey.assemble import build_datamodule
    from quantsurvey.config import validate_config

    datamodule = build_datamodule(validate_config(cfg))
    images, batch = len(datamodule.train_idx), int(cfg.data.batch_size)
    train(cfg, out / "run")
    (out / "marks.json").write_text(json.dumps({"marks": marks, "val_marks": val_marks,
                                                "images": images, "batch": batch}))


def _epoch_times(run: dict) -> list[float]:
    """Times between consecutive epoch starts (and the end), epoch 0 dropped."""
    marks = run["marks"]
    return [b - a for a, b in zip(marks[1:-1], marks[2:], strict=False)]


def launch(cases: list[str], epochs: int, threads: int, data: str, accelerator: str,
           limit_train_batches: int | None) -> list[dict]:
    """One run of each case, all at once; their epoch marks."""
    with tempfile.TemporaryDirectory() as tmp:
        limit = ["--limit-train-batches", str(limit_train_batches)] if limit_train_batches else []
        procs = [subprocess.Popen(
            [sys.executable, __file__, "--worker-out", f"{tmp}/{i}", "--case", case,
             "--epochs", str(epochs), "--threads", str(threads), "--seed", str(i),
             "--data", data, "--accelerator", accelerator, *limit],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for i, case in enumerate(cases)]
        for case, p in zip(cases, procs, strict=True):
            _, err = p.communicate()
            if p.returncode:
                sys.exit(f"bench_gpu: a {case} job failed:\n{err[-3000:]}")
        return [json.loads(Path(f"{tmp}/{i}/marks.json").read_text())
                for i in range(len(cases))]


def _data_name(case: str, data: str) -> str:
    return data if case.startswith(CIFAR_SHAPED) else "mnist"


def measure(case: str, jobs: int, epochs: int, threads: int, data: str,
            accelerator: str = "gpu") -> dict:
    runs = launch([case] * jobs, epochs, threads, data, accelerator, None)
    epoch_times = [t for r in runs for t in _epoch_times(r)]
    median = statistics.median(epoch_times)
    return {"case": case, "jobs": jobs, "epochs": epochs, "threads": threads,
            "data": _data_name(case, data),
            "epoch_s_median": round(median, 3), "epoch_s_all": [round(t, 3) for t in epoch_times],
            "images_per_epoch": runs[0]["images"],
            "gpu_images_per_s": round(jobs * runs[0]["images"] / median, 1)}


def measure_mix(cases: list[str], epochs: int, threads: int, data: str, accelerator: str,
                limit_train_batches: int | None) -> list[dict]:
    """One run of each case at once: per case, the median epoch time and, when epochs were cut
    to `limit_train_batches` batches, the estimate for a whole epoch."""
    runs = launch(cases, epochs, threads, data, accelerator, limit_train_batches)
    rows = []
    for case in dict.fromkeys(cases):
        times = [t for c, r in zip(cases, runs, strict=True) if c == case
                 for t in _epoch_times(r)]
        run = runs[cases.index(case)]
        median = statistics.median(times)
        full_batches = -(-run["images"] // run["batch"])
        batches = min(limit_train_batches or full_batches, full_batches)
        # the training part of an epoch: its start to its validation's start
        steps = [v - s for r in (x for c, x in zip(cases, runs, strict=True) if c == case)
                 for s, v in zip(r["marks"][1:-1], r["val_marks"][1:], strict=False)]
        step = statistics.median(steps) / batches
        rest = median - step * batches  # validation, checkpoint, logging
        rows.append({"case": case, "jobs": cases.count(case), "mix": len(cases),
                     "epochs": epochs, "threads": threads, "data": _data_name(case, data),
                     "limit_train_batches": limit_train_batches,
                     "epoch_s_median": round(median, 3),
                     "epoch_s_all": [round(t, 3) for t in times],
                     "step_ms_median": round(1000 * step, 2), "rest_s_median": round(rest, 3),
                     "full_epoch_s": round(rest + step * full_batches, 2),
                     "images_per_epoch": run["images"], "batch": run["batch"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--case", choices=sorted(CASES))
    which.add_argument("--mix", choices=sorted(CASES), nargs="+",
                       help="one run of each, all at once")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1])
    parser.add_argument("--limit-train-batches", type=int,
                        help="short epochs of this many training batches (and 2 validation)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", choices=["cifar10", "synthetic"], default="cifar10")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--accelerator", default="gpu", help="cpu: a dry run of this script")
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_out:
        return worker(args)
    import torch

    from quantsurvey.provenance import git_state

    if args.accelerator == "gpu" and not torch.cuda.is_available():
        sys.exit("bench_gpu: no CUDA GPU here.")
    gpu = torch.cuda.get_device_name(0) if args.accelerator == "gpu" else "none (cpu dry run)"
    record = {"gpu": gpu, "torch": torch.__version__,
              "cpu_cores": os.cpu_count(), "commit": git_state().get("commit"),
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": []}
    old = json.loads(args.out.read_text()) if args.out and args.out.is_file() else []

    def keep(rows: list[dict]) -> None:
        record["rows"].extend(rows)
        for row in rows:
            print(json.dumps(row), flush=True)
        if args.out:  # after every row: a run cut short keeps what it measured
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps([*old, record], indent=1) + "\n")

    if args.mix:
        keep(measure_mix(args.mix, args.epochs, args.threads, args.data, args.accelerator,
                         args.limit_train_batches))
        return
    for jobs in args.jobs:
        keep([measure(args.case, jobs, args.epochs, args.threads, args.data, args.accelerator)])


if __name__ == "__main__":
    main()

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
recipes on MNIST). Appends a record with the GPU's name and the commit to `--out`.
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
CASES = {
    "resnet20": RESNET,
    "resnet20_ttq": [*RESNET, "+compress.ttq.t=0.05"],
    "lenet5": ["experiment=han2015_pruning/lenet5_mnist", "~pipeline", "budget=bench"],
    "lenet300_100": ["experiment=han2015_pruning/lenet300_100_mnist", "~pipeline",
                     "budget=bench"],
}
SYNTHETIC_CIFAR = ["data=synthetic", "data.params.input_shape=[3,32,32]",
                   "data.params.train_size=50000", "data.params.test_size=10000",
                   "data.val_size=5000", "data.batch_size=128", "data.eval_batch_size=1000",
                   "data.augment=crop_flip", "data.pad=4"]


def worker(args: argparse.Namespace) -> None:
    from hydra import compose, initialize_config_dir

    from quantsurvey.cli import CONF_DIR
    from quantsurvey.lit.classifier import ClassifierModule
    from quantsurvey.train import train

    marks: list[float] = []

    def marking(hook):
        def wrapped(self, *a):
            marks.append(time.perf_counter())
            return hook(self, *a)

        return wrapped

    ClassifierModule.on_train_epoch_start = marking(ClassifierModule.on_train_epoch_start)
    ClassifierModule.on_train_end = marking(ClassifierModule.on_train_end)
    data = SYNTHETIC_CIFAR if args.case.startswith("resnet") and args.data == "synthetic" else []
    out = Path(args.worker_out)
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[
            *CASES[args.case], *data, f"trainer.max_epochs={args.epochs}",
            f"trainer.accelerator={args.accelerator}", "trainer.devices=1",
            f"trainer.threads={args.threads}",
            "trainer.progress_bar=none", f"seed={args.seed}", f"paths.output_dir={out}"])
    from quantsurvey.assemble import build_datamodule
    from quantsurvey.config import validate_config

    images = len(build_datamodule(validate_config(cfg)).train_idx)
    train(cfg, out / "run")
    (out / "marks.json").write_text(json.dumps({"marks": marks, "images": images}))


def measure(case: str, jobs: int, epochs: int, threads: int, data: str,
            accelerator: str = "gpu") -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        procs = [subprocess.Popen(
            [sys.executable, __file__, "--worker-out", f"{tmp}/{i}", "--case", case,
             "--epochs", str(epochs), "--threads", str(threads), "--seed", str(i),
             "--data", data, "--accelerator", accelerator],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for i in range(jobs)]
        for p in procs:
            _, err = p.communicate()
            if p.returncode:
                sys.exit(f"bench_gpu: a {case} job failed:\n{err[-3000:]}")
        runs = [json.loads(Path(f"{tmp}/{i}/marks.json").read_text()) for i in range(jobs)]
    epoch_times = [b - a for r in runs for a, b in zip(r["marks"][1:-1], r["marks"][2:],
                                                       strict=False)]
    median = statistics.median(epoch_times)
    data = data if case.startswith("resnet") else "mnist"
    return {"case": case, "jobs": jobs, "epochs": epochs, "threads": threads, "data": data,
            "epoch_s_median": round(median, 3), "epoch_s_all": [round(t, 3) for t in epoch_times],
            "images_per_epoch": runs[0]["images"],
            "gpu_images_per_s": round(jobs * runs[0]["images"] / median, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), required=True)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1])
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
    for jobs in args.jobs:
        record["rows"].append(measure(args.case, jobs, args.epochs, args.threads, args.data,
                                      args.accelerator))
        print(json.dumps(record["rows"][-1]), flush=True)
        if args.out:  # after every row: a run cut short keeps what it measured
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps([*old, record], indent=1) + "\n")


if __name__ == "__main__":
    main()

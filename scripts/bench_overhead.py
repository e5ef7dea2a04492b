"""What the framework costs per epoch, against a plain PyTorch loop doing the same work.

    python scripts/bench_overhead.py                        # every case, 3 runs each side
    python scripts/bench_overhead.py --cases lenet5 --runs 5 --epochs 6

Each run is a fresh process with `--threads` torch threads (default 1), the framework and the
plain loop alternating. Both read the same data (the data module's in-memory tensors and its
55k/5k split; $QUANTSURVEY_DATA or ../shared/data), build the same model from the registry, and
train with the experiment's recipe: SGD with momentum and weight decay, cosine schedule stepped
per epoch, the same batch augmentation (`quantsurvey.data.augment`), deterministic algorithms,
validation after every epoch. The plain loop does nothing else (no logging, metrics, checkpoints
or reseeding): what the framework adds on top of it is its overhead. Compression cases: masks
(`torch.nn.utils.prune.custom_from_mask` in the plain loop) and shared weights (a parametrization
`codebook[assignment]` in the plain loop) on the float recipe.

An epoch's time is the time between the starts of consecutive training epochs (training,
validation, checkpoint, logging); epoch 0 (warm-up) is dropped. Figures: the median over all
measured epochs of all runs, in process CPU seconds and in wall seconds; ratio = framework / plain.
Results go to results/benchmarks/overhead.{json,md} with the machine and commit.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
# decoded data sets, kept between runs (the first CIFAR-10 run decodes 60,000 PNGs)
CACHE = Path(os.environ.get("QUANTSURVEY_CACHE", REPO / "data" / "cache")).resolve()

PRUNE_KEPT = {"fc1": 0.08, "fc2": 0.09, "fc3": 0.26}  # Han 2015's LeNet-300-100 fractions
SHARE_BITS = {"fc1": 6, "fc2": 6, "fc3": 6}
CASES: dict[str, list[str]] = {
    "lenet300_100": ["experiment=han2015_pruning/lenet300_100_mnist"],
    "lenet5": ["experiment=han2015_pruning/lenet5_mnist"],
    "resnet20": ["model=resnet20", "data=cifar10", "data.augment=crop_flip", "data.pad=4",
                 "optim.lr=0.1", "optim.weight_decay=1e-4", "sched=cosine",
                 "trainer.limit_train_batches=30", "trainer.limit_val_batches=2"],
    "pruned": ["experiment=han2015_pruning/lenet300_100_mnist"]
    + [f"+compress.prune.kept.{k}={v}" for k, v in PRUNE_KEPT.items()],
    "shared": ["experiment=han2015_pruning/lenet300_100_mnist"]
    + [f"+compress.share.bits.{k}={v}" for k, v in SHARE_BITS.items()],
}


SEED = 0  # the recipe's seed on both sides (--seed)


def compose(case: str, epochs: int, out: Path, extra: list[str] = ()):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from quantsurvey.cli import CONF_DIR

    data_dir = os.environ.get("QUANTSURVEY_DATA", str(REPO.parent / "shared" / "data"))
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        return hydra_compose("config", overrides=[
            *CASES[case], "~pipeline", f"trainer.max_epochs={epochs}", f"paths.output_dir={out}",
            f"paths.data_dir={data_dir}", f"paths.cache_dir={CACHE}", f"seed={SEED}", *extra])


def framework_epochs(case: str, epochs: int, out: Path, extra: list[str] = ()
                     ) -> list[tuple[float, float]]:
    from quantsurvey.lit.classifier import ClassifierModule
    from quantsurvey.train import train

    marks: list[tuple[float, float]] = []

    def marking(hook):  # the module's own hooks: a timing callback would add its own cost
        def wrapped(self, *args):
            marks.append((time.process_time(), time.perf_counter()))
            return hook(self, *args)

        wrapped.__name__ = hook.__name__
        return wrapped

    ClassifierModule.on_train_epoch_start = marking(ClassifierModule.on_train_epoch_start)
    ClassifierModule.on_train_end = marking(ClassifierModule.on_train_end)
    train(compose(case, epochs, out, extra), out / "run")
    return marks


def plain_epochs(case: str, epochs: int, out: Path, extra: list[str] = ()
                 ) -> list[tuple[float, float]]:
    import torch
    import torch.nn.functional as F
    from torch.nn.utils import parametrize, prune

    from quantsurvey.assemble import build_datamodule
    from quantsurvey.config import validate_config
    from quantsurvey.data.augment import augment_batch
    from quantsurvey.models import create_model

    rc = validate_config(compose(case, epochs, out))
    torch.manual_seed(rc.seed)
    torch.use_deterministic_algorithms(True)
    dm = build_datamodule(rc)
    images, labels = dm._data["train"]
    model = create_model(rc.model.name, num_classes=dm.num_classes, input_shape=dm.input_shape,
                         **rc.model.params)
    layers = dict(model.named_modules())
    for name, kept in (rc.compress.get("prune") or {}).get("kept", {}).items():
        w = layers[name].weight.detach().abs().flatten()
        threshold = w.kthvalue(len(w) - int(round(kept * len(w))) + 1).values
        prune.custom_from_mask(layers[name], "weight", layers[name].weight.abs() >= threshold)
    for name, bits in (rc.compress.get("share") or {}).get("bits", {}).items():
        w = layers[name].weight.detach()
        edges = torch.linspace(float(w.min()), float(w.max()), 2 ** bits)
        assignment = torch.bucketize(w, edges).clamp(max=len(edges) - 1)

        class Codebook(torch.nn.Module):
            def __init__(self, centroids, assignment):
                super().__init__()
                self.centroids = torch.nn.Parameter(centroids)
                self.register_buffer("assignment", assignment)

            def forward(self, weight):
                return self.centroids[self.assignment]

        parametrize.register_parametrization(layers[name], "weight", Codebook(edges, assignment))
    o, s = rc.optim, rc.sched
    optimizer = torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum,
                                weight_decay=o.weight_decay, nesterov=o.nesterov)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs,
                                                          eta_min=s.end_lr or 0.0)
    mean = torch.tensor(dm.mean).view(1, -1, 1, 1)
    std = torch.tensor(dm.std).view(1, -1, 1, 1)
    limit = rc.trainer.limit_train_batches
    batches = -(-len(dm.train_idx) // rc.data.batch_size)
    if limit != 1.0:
        batches = int(limit) if limit > 1 else int(batches * limit)
    gen = torch.Generator().manual_seed(rc.seed)
    marks = []
    for epoch in range(epochs):
        marks.append((time.process_time(), time.perf_counter()))
        model.train()
        order = dm.train_idx[torch.randperm(len(dm.train_idx), generator=gen)]
        for b in range(batches):
            idx = order[b * rc.data.batch_size : (b + 1) * rc.data.batch_size]
            x = augment_batch(images[idx].float().div_(255.0), dm.augment, dm.pad, gen)
            loss = F.cross_entropy(model((x - mean) / std), labels[idx])
            if not math.isfinite(loss.item()):  # the framework checks every step as well
                raise SystemExit(
                    f"the plain loop diverged (loss {loss.item()}) at epoch {epoch}, batch {b}: "
                    f"timing it would time NaN arithmetic (faster than real numbers on this "
                    f"CPU). Choose another --seed.")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        correct = 0
        val_starts = range(0, len(dm.val_idx), rc.data.eval_batch_size)
        val_limit = rc.trainer.limit_val_batches
        if val_limit != 1.0:
            val_starts = val_starts[: int(val_limit) if val_limit > 1 else
                                    int(len(val_starts) * val_limit)]
        with torch.no_grad():
            for start in val_starts:
                idx = dm.val_idx[start : start + rc.data.eval_batch_size]
                x = images[idx].float().div_(255.0)
                correct += int((model((x - mean) / std).argmax(1) == labels[idx]).sum())
        schedule.step()
    marks.append((time.process_time(), time.perf_counter()))
    return marks


def worker(args: argparse.Namespace) -> None:
    import torch

    global SEED
    SEED = args.seed
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        run = framework_epochs if args.worker == "framework" else plain_epochs
        marks = run(args.cases, args.epochs, Path(tmp), args.framework_override)
    cpu = [b[0] - a[0] for a, b in zip(marks, marks[1:], strict=False)]
    wall = [b[1] - a[1] for a, b in zip(marks, marks[1:], strict=False)]
    print(json.dumps({"cpu": cpu, "wall": wall}))


def render(paths: list[Path]) -> str:
    """A markdown table of one or more overhead.json records (e.g. before and after a change)."""
    lines = ["| case | code | threads | framework s/epoch (CPU) | plain s/epoch (CPU) | ratio CPU "
             "| ratio wall | epochs measured |", "| --- " * 8 + "|"]
    for path in paths:
        record = json.loads(Path(path).read_text())
        code = record["git"]["commit"][:7] + ("+dirty" if record["git"].get("dirty") else "")
        for case, row in record["results"].items():
            lines.append(f"| {case} | {code} | {record['threads']} | "
                         f"{row['framework']['cpu']:.2f} | {row['plain']['cpu']:.2f} | "
                         f"{row['ratio_cpu']:.3f} | {row['ratio_wall']:.3f} | "
                         f"{row['epochs_measured']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="the recipe's seed, both sides")
    parser.add_argument("--record", default="overhead.json",
                        help="the file written in --out (default overhead.json)")
    parser.add_argument("--framework-override", action="append", default=[],
                        help="a config override for the framework side only (e.g. "
                             "callbacks.lr_monitor=false), to see what a feature costs")
    parser.add_argument("--render", nargs="+", type=Path,
                        help="print the markdown table of these overhead.json files and stop")
    parser.add_argument("--worker", choices=["framework", "plain"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "benchmarks")
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if args.render:
        return print(render(args.render), end="")

    from quantsurvey.provenance import git_state, hardware

    git = git_state()  # the code measured: recorded before the runs start
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(REPO)}
    results = {}
    for case in args.cases.split(","):
        per_side: dict[str, dict[str, list[float]]] = {
            "framework": {"cpu": [], "wall": []}, "plain": {"cpu": [], "wall": []}}
        for _ in range(args.runs):
            for side in ("framework", "plain"):
                out = subprocess.run(
                    [sys.executable, __file__, "--worker", side, "--cases", case,
                     "--epochs", str(args.epochs), "--threads", str(args.threads),
                     "--seed", str(args.seed),
                     *(f"--framework-override={o}" for o in args.framework_override)],
                    capture_output=True, text=True, env=env, cwd=REPO)
                if out.returncode != 0:
                    sys.exit(f"{case} / {side} failed:\n{out.stderr[-3000:]}")
                times = json.loads(out.stdout.strip().splitlines()[-1])
                for kind in ("cpu", "wall"):
                    per_side[side][kind] += times[kind][1:]  # epoch 0 is warm-up
        row = {side: {kind: statistics.median(v) for kind, v in d.items()}
               for side, d in per_side.items()}
        row["ratio_cpu"] = row["framework"]["cpu"] / row["plain"]["cpu"]
        row["ratio_wall"] = row["framework"]["wall"] / row["plain"]["wall"]
        row["epochs_measured"] = len(per_side["plain"]["wall"])
        results[case] = row
        print(f"{case:14s} framework {row['framework']['cpu']:.2f} s  plain "
              f"{row['plain']['cpu']:.2f} s CPU/epoch  ratio {row['ratio_cpu']:.3f} "
              f"(wall {row['ratio_wall']:.3f})", flush=True)
    record = {"command": " ".join(["python", "scripts/bench_overhead.py", *sys.argv[1:]]),
              "git": git, "hardware": hardware(), "threads": args.threads, "seed": args.seed,
              "runs": args.runs, "epochs_per_run": args.epochs, "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / args.record).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()

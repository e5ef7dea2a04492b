"""What PyTorch Lightning itself costs per epoch for a LeNet-300-100, with nothing of ours in it.

    python scripts/bench_lightning_floor.py                    # 3 runs × 4 epochs per variant
    python scripts/bench_lightning_floor.py --runs 5 --chunk 16

The framework's overhead target for LeNet-300-100 (issue 9: at most 1.10× a plain loop) is
below what Lightning's training loop costs on its own for a step this short (≈ 2 ms on one CPU
thread). This benchmark measures that floor, on the same in-memory tensors and the same model
(`models.create_model("lenet300_100")`), SGD (lr 0.05, momentum 0.9, weight decay 5e-4), batch
128, 430 steps an epoch, one torch thread, no validation, no augmentation:

- `plain`: a torch loop (zero_grad, forward, cross-entropy, backward, step);
- `auto`: a bare LightningModule, automatic optimisation; `Trainer(logger=False,
  enable_checkpointing=False, enable_progress_bar=False)`, no callbacks of ours;
- `manual`: the same with manual optimisation (`manual_backward`, Lightning's optimizer wrapper);
- `chunk`: manual optimisation, `--chunk` batches per `training_step` (one Lightning step runs
  that many optimiser steps): Lightning's per-batch loop cost divided by the chunk;
- `chunk_raw`: as `chunk`, but `loss.backward()` and the raw torch optimizer inside the step
  (Lightning's optimizer wrapper and precision plugin bypassed; Lightning then counts no
  optimizer steps, so `global_step` would be wrong: a lower bound, not a design).

Data: 55,000 synthetic 28×28 images (normal noise) labelled by a fixed random linear teacher,
so the loss falls and never diverges. Each run is a fresh process, the variants alternating; an
epoch's time is process CPU seconds between epoch starts; epoch 0 is dropped as warm-up;
figures are medians over all measured epochs of all runs. Record: results/benchmarks/
lightning_floor.json (the machine and commit with it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
VARIANTS = ("plain", "auto", "manual", "chunk", "chunk_raw")
N, BATCH = 55_000, 128


def _data():
    import torch

    gen = torch.Generator().manual_seed(0)
    images = torch.randn(N, 1, 28, 28, generator=gen)
    teacher = torch.randn(28 * 28, 10, generator=gen)
    return images, (images.flatten(1) @ teacher).argmax(1)


def _batches(images, labels, gen):
    import torch

    order = torch.randperm(N, generator=gen)
    for start in range(0, N, BATCH):
        idx = order[start : start + BATCH]
        yield images[idx], labels[idx]


def _model_and_optimizer():
    import torch

    from quantsurvey.models import create_model

    torch.manual_seed(0)
    model = create_model("lenet300_100", num_classes=10, input_shape=(1, 28, 28))
    return model, lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9,
                                                 weight_decay=5e-4)


def run_variant(variant: str, epochs: int, chunk: int) -> list[float]:
    """Process CPU seconds of each epoch of one run."""
    import torch
    import torch.nn.functional as F

    images, labels = _data()
    gen = torch.Generator().manual_seed(1)
    model, make_optimizer = _model_and_optimizer()
    marks: list[float] = []
    if variant == "plain":
        optimizer = make_optimizer(model.parameters())
        for _ in range(epochs):
            marks.append(time.process_time())
            for x, y in _batches(images, labels, gen):
                optimizer.zero_grad(set_to_none=True)
                F.cross_entropy(model(x), y).backward()
                optimizer.step()
        marks.append(time.process_time())
        return [b - a for a, b in zip(marks, marks[1:], strict=False)]

    import pytorch_lightning as pl

    per_call = chunk if variant.startswith("chunk") else 1

    class Epochs:  # an iterable the Trainer takes as its loader: batches, or lists of them
        def __iter__(self):
            batches = _batches(images, labels, gen)
            if per_call == 1:
                return batches
            return iter(lambda: [b for _, b in zip(range(per_call), batches, strict=False)], [])

        def __len__(self):
            steps = -(-N // BATCH)
            return -(-steps // per_call)

    class Bare(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = model
            self.automatic_optimization = variant == "auto"

        def training_step(self, batch, batch_idx):
            if variant == "auto":
                x, y = batch
                return F.cross_entropy(self.model(x), y)
            raw = variant == "chunk_raw"
            optimizer = self.optimizers(use_pl_optimizer=not raw)
            for x, y in batch if per_call > 1 else [batch]:
                optimizer.zero_grad(set_to_none=True)
                loss = F.cross_entropy(self.model(x), y)
                loss.backward() if raw else self.manual_backward(loss)
                optimizer.step()

        def on_train_epoch_start(self):
            marks.append(time.process_time())

        def on_train_end(self):
            marks.append(time.process_time())

        def configure_optimizers(self):
            return make_optimizer(self.parameters())

    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(Bare(), train_dataloaders=Epochs())
    return [b - a for a, b in zip(marks, marks[1:], strict=False)]


def render(record: dict) -> str:
    plain = record["results"]["plain"]
    lines = ["| variant | s/epoch (CPU) | × plain | µs a step above plain | epochs measured |",
             "| --- | --- | --- | --- | --- |"]
    steps = -(-N // BATCH)
    for variant, row in record["results"].items():
        name = variant + (f" ({record['chunk']} batches a step)" if variant.startswith("chunk")
                          else "")
        lines.append(f"| {name} | {row['cpu']:.3f} | {row['cpu'] / plain['cpu']:.3f} | "
                     f"{(row['cpu'] - plain['cpu']) / steps * 1e6:.0f} | {row['epochs']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--chunk", type=int, default=8)
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "benchmarks")
    parser.add_argument("--render", type=Path, help="print the table of a record and stop")
    args = parser.parse_args()
    if args.render:
        return print(render(json.loads(args.render.read_text())), end="")
    if args.worker:
        import torch

        torch.set_num_threads(1)
        return print(json.dumps(run_variant(args.worker, args.epochs, args.chunk)))

    from quantsurvey.atomic_io import write_json_atomic
    from quantsurvey.provenance import git_state, hardware

    git = git_state()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    epochs: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for _ in range(args.runs):
        for variant in VARIANTS:
            out = subprocess.run([sys.executable, __file__, "--worker", variant, "--epochs",
                                  str(args.epochs), "--chunk", str(args.chunk)],
                                 capture_output=True, text=True, env=env, cwd=REPO)
            if out.returncode != 0:
                sys.exit(f"{variant} failed:\n{out.stderr[-3000:]}")
            epochs[variant] += json.loads(out.stdout.strip().splitlines()[-1])[1:]
    record = {"command": " ".join(["python", "scripts/bench_lightning_floor.py", *sys.argv[1:]]),
              "git": git, "hardware": hardware(), "threads": 1, "runs": args.runs,
              "epochs_per_run": args.epochs, "chunk": args.chunk,
              "results": {v: {"cpu": statistics.median(t), "epochs": len(t)}
                          for v, t in epochs.items()}}
    write_json_atomic(args.out / "lightning_floor.json", record)
    print(render(record), end="")


if __name__ == "__main__":
    main()

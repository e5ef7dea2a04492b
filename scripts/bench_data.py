"""How much of a training step waits for data: the framework's own training runs, timed
between batches (issue 9, item 4: data time ≤ 5% of step time after the first run).

    python scripts/bench_data.py                                  # every case
    python scripts/bench_data.py --cases imagewoof_resnet18 --batches 20 --threads 1

Each case is the float stage of an experiment, run through `quantsurvey.train.train` for two
epochs of `--batches` training batches (one validation and one test batch): a callback takes the
time from the end of one training batch to the start of the next (fetching the batch from the
loader, moving it to the device, the batch-wise augmentation and normalisation: the data time)
and from the start of a batch to its end (forward, backward, optimizer step, logging: the step
time). Epoch 0 holds the warm-up (and, for Imagewoof, the loader workers starting); epoch 1 is
the steady state the figure is about. CIFAR-10's PNGs are decoded once into a cached tensor
before training starts (not timed here: the first run's cost); Imagewoof's JPEGs are decoded by
the loader every epoch.
Writes results/benchmarks/data_time.json (with the machine and commit) and prints the table that
results/benchmarks/README.md quotes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import pytorch_lightning as pl  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from quantsurvey.atomic_io import write_json_atomic  # noqa: E402
from quantsurvey.cli import CONF_DIR  # noqa: E402
from quantsurvey.pipeline import stage_configs  # noqa: E402
from quantsurvey.provenance import git_state, hardware  # noqa: E402

CASES = {  # name → (experiment, its float stage's overrides)
    "cifar10_resnet20": ("zhu2017_ttq/resnet20_cifar10", []),
    "imagewoof_resnet18": ("rastegari2016_xnor/resnet18_xnor_imagewoof", []),
    "imagewoof_resnet18_workers0": ("rastegari2016_xnor/resnet18_xnor_imagewoof",
                                    ["data.num_workers=0"]),
}


class DataTimer(pl.Callback):
    """Per epoch: the seconds between batches (data) and within them (step)."""

    def __init__(self):
        self.epochs: list[dict[str, list[float]]] = []
        self._end = self._start = 0.0

    def on_train_epoch_start(self, trainer, module):
        self.epochs.append({"data": [], "step": []})
        self._end = time.perf_counter()

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self._start = time.perf_counter()
        self.epochs[-1]["data"].append(self._start - self._end)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self._end = time.perf_counter()
        self.epochs[-1]["step"].append(self._end - self._start)


def run_case(name: str, batches: int, threads: int, data_root: str) -> dict:
    from quantsurvey.train import train

    experiment, extra = CASES[name]
    with tempfile.TemporaryDirectory(prefix="bench-data-") as out, \
            initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={experiment}", f"paths.output_dir={out}",
                                           f"data.root={data_root}"])
        (_, merged, _), *_ = stage_configs(cfg)  # the float stage
        merged = OmegaConf.merge(merged, OmegaConf.from_dotlist([
            "trainer.max_epochs=2", f"trainer.limit_train_batches={batches}",
            "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
            f"trainer.threads={threads}", "trainer.progress_bar=none", "logger.name=csv",
            *extra]))
        timer = DataTimer()
        start = time.time()
        train(merged, Path(out) / "run", extra_callbacks=[timer])
        wall = time.time() - start
    per_epoch = []
    for e in timer.epochs:
        data, step = sum(e["data"]), sum(e["step"])
        per_epoch.append({"batches": len(e["step"]), "data_s": round(data, 3),
                          "step_s": round(step, 3),
                          "median_data_ms": round(1000 * statistics.median(e["data"]), 2),
                          "median_step_ms": round(1000 * statistics.median(e["step"]), 2),
                          "data_pct_of_step": round(100 * data / step, 2)})
    return {"case": name, "experiment": experiment, "overrides": extra,
            "batch_size": int(merged.data.batch_size), "model": str(merged.model.name),
            "num_workers": int(merged.data.num_workers), "epochs": per_epoch,
            "wall_s": round(wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-root", default=os.environ.get(
        "QUANTSURVEY_DATA", str(REPO.parent / "shared" / "data")))
    parser.add_argument("--out", type=Path, default=REPO / "results" / "benchmarks")
    parser.add_argument("--note", default="", help="what else ran on the machine meanwhile")
    args = parser.parse_args()
    git = git_state()
    rows = []
    for name in args.cases:
        rows.append(run_case(name, args.batches, args.threads, args.data_root))
        print(json.dumps(rows[-1]), flush=True)
    record = {"command": " ".join(["python", "scripts/bench_data.py", *sys.argv[1:]]),
              "git": git, "hardware": hardware(), "threads": args.threads, "note": args.note,
              "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "data_time.json", record)
    lines = ["# Data time against step time (training, after the first epoch)", "",
             f"`{record['command']}` at {git['commit'][:10]} (dirty={git['dirty']}), "
             f"{record['hardware']['device']}, {args.threads} torch thread(s). {args.note}", "",
             "| case | model | batch | loader workers | epoch 1: data s | step s | data % of "
             "step | median data ms | median step ms | epoch 0 data % |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        e0, e1 = r["epochs"][0], r["epochs"][-1]
        lines.append(f"| {r['case']} | {r['model']} | {r['batch_size']} | {r['num_workers']} | "
                     f"{e1['data_s']} | {e1['step_s']} | {e1['data_pct_of_step']} | "
                     f"{e1['median_data_ms']} | {e1['median_step_ms']} | "
                     f"{e0['data_pct_of_step']} |")
    print("\n".join(lines))
    print(f"wrote {args.out / 'data_time.json'}")


if __name__ == "__main__":
    main()

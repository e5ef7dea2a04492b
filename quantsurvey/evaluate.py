"""`evaluate(cfg, run_dir) -> metrics`: test a finished model without training.

Loads `init_from` (a finished run's directory, a stage's `model.pt` or an encoded `.qsdc` file),
applies the config's compression methods as post-training steps (e.g. `compress.share` without
fine-tuning: post-training quantization; per-layer settings for sensitivity sweeps), runs their
export, tests once, and writes `summary.json` like any run (`mode: evaluate`, 0 epochs).

    quantsurvey mode=evaluate "init_from='outputs/.../prune2/seed=0'" +compress.share.bits.fc=4
    quantsurvey-eval "init_from='results/runs/.../seed=0.qsdc'" model=lenet5 name=eval-file
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import ExitStack
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from quantsurvey import assemble
from quantsurvey.atomic_io import write_json_atomic
from quantsurvey.config import RunConfig, validate_config
from quantsurvey.lit.classifier import ClassifierModule
from quantsurvey.provenance import git_state
from quantsurvey.rundir import FINISHED, SUMMARY, check_run_dir, output_errors, run_lock
from quantsurvey.threads import set_threads

log = logging.getLogger("quantsurvey")


def evaluate(cfg: DictConfig | dict, run_dir: str | Path) -> dict[str, float]:
    start = time.time()
    git = git_state()
    rc = validate_config(OmegaConf.merge(cfg, {"mode": "evaluate"}))
    resolved = OmegaConf.to_container(OmegaConf.structured(rc), resolve=True)
    run_dir = Path(run_dir)
    with ExitStack() as held, output_errors(run_dir):
        return _evaluate(rc, resolved, run_dir, git, start, held)


def _evaluate(rc: RunConfig, resolved: dict, run_dir: Path, git: dict, start: float,
              held: ExitStack) -> dict[str, float]:
    if check_run_dir(run_dir, rc.resume, resolved) == FINISHED:
        log.info("%s already finished; reusing its summary", run_dir)
        return json.loads((run_dir / SUMMARY).read_text())["metrics"]
    set_threads(rc.trainer.threads)
    dm, ctx, model, methods, info = assemble.prepare_run(rc, run_dir)
    held.enter_context(run_lock(run_dir))  # nothing is written before here
    OmegaConf.save(OmegaConf.create(resolved), run_dir / "config.yaml")
    module = ClassifierModule(model, rc.model.name, dm.num_classes, rc.optim, rc.sched, 1,
                              rc.loss, methods)
    t = rc.trainer
    bar = assemble.progress_bar(t.progress_bar)
    trainer = pl.Trainer(
        default_root_dir=str(run_dir), accelerator=t.accelerator, devices=t.devices,
        precision=t.precision, limit_val_batches=t.limit_val_batches,
        limit_test_batches=t.limit_test_batches, deterministic=t.deterministic,
        enable_progress_bar=bool(bar), logger=assemble.build_loggers(rc, run_dir, resolved),
        callbacks=bar,
        use_distributed_sampler=False, enable_model_summary=False)
    try:
        # validation and test both see the model the methods hand back (e.g. the decoded file)
        module.model, compress_metrics = assemble.after_training(model, methods, ctx, rc, info)
        val_metrics = trainer.validate(module, datamodule=dm, verbose=False)[0]
        test_metrics = trainer.test(module, datamodule=dm, verbose=False)[0]
    finally:
        assemble.finish_loggers(rc)
    metrics = {k: float(v) for k, v in {**val_metrics, **test_metrics}.items()}
    metrics.update(compress_metrics)
    summary = assemble.build_summary(rc, resolved, dm, model, metrics, info, git,
                                     time.time() - start, 0.0, False, 0)
    write_json_atomic(run_dir / SUMMARY, summary)
    return metrics

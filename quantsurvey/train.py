"""`train(cfg, run_dir) -> metrics`: one training run, callable from tests.

A run validates its config, loads its data, builds the model (from `init_from`, with the stage's
compression methods applied), trains with a checkpoint at every epoch end, runs the methods'
export, tests the final model once, and writes `summary.json` atomically. `resume=true`
continues from `checkpoints/last.ckpt` in the same run directory (and the same W&B run). The
command line is `quantsurvey.cli`; the run-directory policy is `quantsurvey.rundir`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from quantsurvey import assemble, distributed, stages
from quantsurvey.atomic_io import write_json_atomic
from quantsurvey.config import RunConfig, validate_config
from quantsurvey.errors import CheckpointError, RunDirError, RunFailedError
from quantsurvey.lit import csv_resume
from quantsurvey.lit.checkpoint_io import AtomicCheckpointIO, verify_checkpoint
from quantsurvey.lit.classifier import ClassifierModule
from quantsurvey.lit.method_hooks import ClipLatentWeights, MethodHooks, needs_method_hooks
from quantsurvey.lit.run_state import WallClock
from quantsurvey.provenance import git_state
from quantsurvey.rundir import FINISHED, SUMMARY, check_run_dir, output_errors, run_lock
from quantsurvey.threads import set_threads

log = logging.getLogger("quantsurvey")


def _check_checkpoint(ckpt: Path, module: ClassifierModule) -> int:
    """Fail with one message if `ckpt` is corrupt, unreadable or was written for another
    model; return its global step."""
    if not verify_checkpoint(ckpt):
        log.warning("%s has no checksum (written before checksums existed): not verified", ckpt)
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"could not read checkpoint {ckpt} ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}). It is truncated or corrupt: "
            f"delete it to start over.") from None
    module.on_load_checkpoint(state)
    return int(state.get("global_step", 0))


def train(cfg: DictConfig | dict, run_dir: str | Path,
          extra_callbacks: Sequence[pl.Callback] = ()) -> dict[str, float]:
    """Run one training job described by `cfg` in `run_dir`; return its final metrics."""
    start = time.time()
    git = git_state()  # at the start: the code that runs, even if the checkout changes meanwhile
    rc = validate_config(cfg)
    resolved = OmegaConf.to_container(OmegaConf.structured(rc), resolve=True)
    run_dir = Path(run_dir)
    with ExitStack() as held, output_errors(run_dir):
        return _train(rc, resolved, run_dir, git, start, extra_callbacks, held)


def _train(rc: RunConfig, resolved: dict, run_dir: Path, git: dict, start: float,
           extra_callbacks: Sequence[pl.Callback], held: ExitStack) -> dict[str, float]:
    ckpt = check_run_dir(run_dir, rc.resume, resolved)
    if ckpt == FINISHED:  # resume=true on a finished run (a re-launched sweep): nothing to do
        log.info("%s already finished; reusing its summary", run_dir)
        done = json.loads((run_dir / SUMMARY).read_text())
        if rc.logger.name == "wandb" and distributed.is_rank_zero():
            assemble.log_reused_stage(rc, run_dir, done)  # into this experiment's W&B group
        return done["metrics"]

    if rc.trainer.strategy == "ddp":  # before anything is read or written
        t = rc.trainer
        processes = distributed.world_size()
        if processes == 1 and isinstance(t.devices, int):  # Lightning will start them
            processes = t.devices * t.num_nodes
        distributed.check_global_batch(rc.data.batch_size, processes)
        distributed.check_node_count(t.num_nodes)
    set_threads(rc.trainer.threads)
    dm, ctx, model, methods, stage_info = assemble.prepare_run(rc, run_dir)
    clock = WallClock(start)
    module = ClassifierModule(model, rc.model.name, dm.num_classes, rc.optim, rc.sched,
                              rc.trainer.max_epochs, rc.loss, methods, seed=rc.seed, clock=clock,
                              log_lr=rc.callbacks.lr_monitor)

    resume_step = _check_checkpoint(ckpt, module) if ckpt is not None else 0
    # data parallel: only rank 0 writes the run's files; the others train their share and wait
    writer = distributed.is_rank_zero()
    if not writer:  # what the methods export goes to a scratch folder, deleted at the end
        ctx = dataclasses.replace(ctx, run_dir=Path(held.enter_context(
            tempfile.TemporaryDirectory(prefix="quantsurvey-rank"))))
    # nothing is written before here; from here on, one process at a time, and the directory
    # must still be as checked (another process may have written it meanwhile)
    if writer:
        held.enter_context(run_lock(run_dir))
        if check_run_dir(run_dir, rc.resume, resolved) != ckpt:
            raise RunDirError(f"{run_dir} changed while this run was starting (another process "
                              f"wrote it); run the command again.")
        if ckpt is not None:
            csv_resume.set_aside(run_dir / "csv")
        OmegaConf.save(OmegaConf.create(resolved), run_dir / "config.yaml")
    # few callbacks: each is called at every hook of every step (the seed, the clock and the
    # learning rate live in the module's own hooks)
    bar = assemble.progress_bar(rc.trainer.progress_bar)
    callbacks: list[pl.Callback] = [*bar]
    if needs_method_hooks(methods):
        callbacks.append(MethodHooks(methods, rc.callbacks.method_state_every_n_steps))
    if rc.callbacks.clip_weights is not None:
        callbacks.append(ClipLatentWeights(rc.callbacks.clip_weights))
    if rc.callbacks.checkpoint:
        from pytorch_lightning.callbacks import ModelCheckpoint

        # keeps the newest epoch's file; last.ckpt links to it
        callbacks.append(ModelCheckpoint(dirpath=run_dir / "checkpoints", save_last="link",
                                         save_top_k=1, every_n_epochs=1,
                                         filename="epoch{epoch}", auto_insert_metric_name=False))
    loggers = assemble.build_loggers(rc, run_dir, resolved) if writer else []
    callbacks.extend(extra_callbacks)

    t = rc.trainer
    trainer = pl.Trainer(
        default_root_dir=str(run_dir), max_epochs=t.max_epochs, accelerator=t.accelerator,
        **assemble.parallel_args(t), precision=t.precision,
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches, limit_test_batches=t.limit_test_batches,
        log_every_n_steps=t.log_every_n_steps, gradient_clip_val=t.gradient_clip_val,
        deterministic=t.deterministic, enable_progress_bar=bool(bar),
        callbacks=callbacks, logger=loggers, num_sanity_val_steps=0,
        # else Lightning adds its own epoch-end checkpoint when callbacks.checkpoint is false
        enable_checkpointing=bool(rc.callbacks.checkpoint),
        use_distributed_sampler=False, enable_model_summary=bool(bar),
        plugins=[AtomicCheckpointIO()])

    def summary(metrics: dict[str, float], **status) -> dict:
        return assemble.build_summary(rc, resolved, dm, model, metrics, stage_info, git,
                                      clock.elapsed(), clock.before_resume, ckpt is not None,
                                      trainer.current_epoch, **status)

    metrics: dict[str, float] = {}  # the final ones, once tested
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt, weights_only=True)
        fit_metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        if writer:
            stages.save_stage(model, run_dir)
        # the reported test metrics are those of the model the methods' export hands back (the
        # one decoded from the written file, where a method writes one)
        module.model, compress_metrics = assemble.after_training(model, methods, ctx, rc,
                                                                 stage_info)
        test_metrics = trainer.test(module, datamodule=dm, verbose=False)[0]
        metrics = {k: v for k, v in fit_metrics.items() if k.startswith(("val/", "train/"))}
        metrics.update({k: float(v) for k, v in test_metrics.items()})
        metrics.update(compress_metrics)
        bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
        if bad:
            raise RunFailedError(f"non-finite final metrics {bad}: the run is marked failed in "
                                 f"{run_dir / SUMMARY} and is not reportable.")
        final = summary(metrics)
        assemble.log_summary(loggers, final)  # W&B's run summary = summary.json
    except RunFailedError as err:
        so_far = {k: float(v) for k, v in trainer.callback_metrics.items()}
        if writer:
            write_json_atomic(run_dir / SUMMARY, summary({**so_far, **metrics}, status="failed",
                                                         error=str(err)))
        raise
    finally:
        if writer:
            if ckpt is not None:
                csv_resume.merge_back(run_dir / "csv", resume_step)
            assemble.finish_loggers(rc)
    if writer:
        write_json_atomic(run_dir / SUMMARY, final)
    distributed.barrier()  # the next stage starts from this one's files: all wait for rank 0
    return metrics

"""Assemble a run from its validated config: data module, model (started from `init_from`, with
the stage's methods applied), loggers, progress bar, and the summary every run writes."""

from __future__ import annotations

import itertools
import secrets
import sys
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from quantsurvey import distributed, stages
from quantsurvey.config import RunConfig, TrainerConfig
from quantsurvey.data import create_datamodule
from quantsurvey.errors import ConfigError
from quantsurvey.methods import Method, StageContext, build_methods
from quantsurvey.models import create_model
from quantsurvey.nn.quant import architecture_params
from quantsurvey.provenance import command_line, hardware, package_versions


def build_datamodule(rc: RunConfig, setup: bool = True) -> pl.LightningDataModule:
    """The run's data, set up (missing or corrupt data fails here, before anything is written);
    `setup=False`: only what the data set declares (classes, input shape), nothing read."""
    dm = create_datamodule(
        rc.data.name, root=rc.data.root, cache_dir=rc.paths.cache_dir,
        batch_size=rc.data.batch_size, eval_batch_size=rc.data.eval_batch_size,
        val_size=rc.data.val_size, split_seed=rc.data.split_seed, augment=rc.data.augment,
        pad=rc.data.pad, download=rc.data.download, num_workers=rc.data.num_workers,
        shuffle_seed=rc.seed, **rc.data.params)
    if setup:
        dm.setup("fit")
    return dm


def check_stage(rc: RunConfig) -> None:
    """What can be checked without data or training: the model builds, and every method's
    config applies to it (a pipeline runs this for all its stages before the first trains)."""
    dm = build_datamodule(rc, setup=False)
    model = create_model(rc.model.name, num_classes=dm.num_classes, input_shape=dm.input_shape,
                         **rc.model.params)
    for method in build_methods(rc.compress):
        method.check(model)


def model_info(rc: RunConfig, dm: pl.LightningDataModule) -> dict[str, Any]:
    """What rebuilds the architecture (stored in exported files)."""
    return {"name": rc.model.name, "num_classes": dm.num_classes,
            "input_shape": list(dm.input_shape), "params": dict(rc.model.params)}


def stage_context(rc: RunConfig, dm: pl.LightningDataModule, run_dir: Path) -> StageContext:
    def probe() -> torch.Tensor:
        x, _ = dm.on_after_batch_transfer(next(iter(dm.test_dataloader())), 0)
        return x[:64].cpu()

    def train_batches(n: int) -> list[torch.Tensor]:
        out = []
        for batch in dm.train_dataloader():
            if len(out) == n:
                break
            out.append(dm.on_after_batch_transfer(batch, 0)[0].cpu())
        return out

    return StageContext(seed=rc.seed, run_dir=Path(run_dir), model_info=model_info(rc, dm),
                        probe=probe, train_batches=train_batches)


def prepare_run(rc: RunConfig, run_dir: Path
                ) -> tuple[pl.LightningDataModule, StageContext, nn.Module, list[Method],
                           dict[str, Any]]:
    """Seed, data, and the model with the stage's methods applied: what a training run and an
    evaluation both start from; nothing is written."""
    pl.seed_everything(rc.seed, workers=True, verbose=False)
    dm = build_datamodule(rc)
    if rc.trainer.overfit_batches:
        overfit(dm, rc.trainer.overfit_batches)
    ctx = stage_context(rc, dm, run_dir)
    model, methods, info = build_model(rc, dm, ctx)
    return dm, ctx, model, methods, info


def overfit(dm: pl.LightningDataModule, batches: int) -> None:
    """debug=overfit: the first `batches` training batches of epoch 0, drawn once, become the
    training and the validation data of every epoch (a loop that cannot drive their loss to
    ~0 has a bug); testing is unchanged."""
    fixed = _FixedBatches(list(itertools.islice(iter(dm.train_dataloader()), batches)))
    if len(fixed) < batches:
        raise ConfigError(f"trainer.overfit_batches={batches}: the training split has only "
                          f"{len(fixed)} batches of data.batch_size.")
    dm.train_dataloader = lambda: fixed
    dm.val_dataloader = lambda: fixed


class _FixedBatches:
    """The same batches on every pass (not a list: Lightning takes a list for several loaders)."""

    def __init__(self, batches: list):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def build_model(rc: RunConfig, dm: pl.LightningDataModule, ctx: StageContext
                ) -> tuple[nn.Module, list[Method], dict[str, Any]]:
    """The architecture, loaded from `init_from`, with the stage's methods applied before
    training; returns (model, methods, what the methods recorded)."""
    model = create_model(rc.model.name, num_classes=dm.num_classes, input_shape=dm.input_shape,
                         **rc.model.params)
    methods = build_methods(rc.compress)
    if rc.init_from and Path(rc.init_from).suffix == ".qsdc" and not methods:
        model = stages.load_encoded(Path(rc.init_from), model)  # tested as the file computes
    elif rc.init_from:
        stages.load_stage(model, Path(rc.init_from))
    info: dict[str, Any] = {}
    for method in methods:
        info.update(method.before_training(model, ctx))
    return model, methods, info


def after_training(model: nn.Module, methods: list[Method], ctx: StageContext, rc: RunConfig,
                   info: dict[str, Any]) -> tuple[nn.Module, dict[str, float]]:
    """Sparsity statistics (for any stage that starts from or applies compression), then each
    method's export; returns the model to test and the compression metrics."""
    from quantsurvey.nn.quant import sparsity_stats

    metrics = sparsity_stats(model) if (rc.init_from or methods) else {}
    for method in methods:
        model, method_info, method_metrics = method.after_training(model, ctx)
        info.update(method_info)
        metrics.update(method_metrics)
    return model, metrics


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'optim': {'lr': 0.1}} -> {'optim.lr': 0.1}: W&B's run table compares flat keys."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def build_loggers(rc: RunConfig, run_dir: Path, resolved: dict[str, Any]) -> list:
    from quantsurvey.lit.csv_log import AtomicCSVLogger

    loggers: list = [AtomicCSVLogger(save_dir=str(run_dir), name="csv", version="")]
    if rc.logger.name == "wandb":
        import wandb  # noqa: F401  (fail early if missing)
        from pytorch_lightning.loggers import WandbLogger

        id_file = run_dir / "wandb_id.txt"
        if id_file.is_file():
            run_id = id_file.read_text().strip()
        else:
            run_id = secrets.token_hex(4)  # W&B ids: lowercase letters and digits
            id_file.write_text(run_id + "\n")
        loggers.append(WandbLogger(
            project=rc.logger.project, entity=rc.logger.entity, group=rc.logger.group or rc.paper,
            job_type=rc.stage, tags=wandb_tags(rc), id=run_id, resume="allow",
            name=f"{rc.paper}/{rc.setting}/{rc.name}/seed={rc.seed}", save_dir=str(run_dir),
            offline=rc.logger.offline, config=flatten(resolved),
            # said to wandb.init itself: Lightning's WANDB_MODE variable is not read again once
            # an earlier wandb.init of this process (a reused stage's run) set W&B up
            mode="offline" if rc.logger.offline else "online"))
    return loggers


def parallel_args(t: TrainerConfig) -> dict[str, Any]:
    """The Trainer's devices and strategy. Under torchrun or SLURM, `devices: auto` with
    `strategy: ddp` means the processes the launcher started on this node."""
    devices = t.devices
    if t.strategy == "ddp" and devices == "auto" and distributed.local_world_size():
        devices = distributed.local_world_size()
    return {"devices": devices, "strategy": t.strategy, "num_nodes": t.num_nodes,
            "sync_batchnorm": t.sync_batchnorm}


def log_reused_stage(rc: RunConfig, run_dir: Path, done: dict[str, Any]) -> None:
    """A finished stage that another experiment's pipeline reuses (Deep Compression starts from
    Han 2015's pruned model) appears in that experiment's W&B group too: a run of its own, tagged
    `reused`, whose summary is the stage's summary.json. Its id follows from (group, stage
    folder), so reusing the stage again updates that run instead of adding one; nothing is
    logged when the stage's own W&B run is already in this group."""
    import hashlib

    import wandb

    group = rc.logger.group or rc.paper
    theirs = (done.get("config") or {}).get("logger") or {}
    if theirs.get("name") == "wandb" and (theirs.get("group") or done.get("paper")) == group:
        return
    run_id = hashlib.sha1(f"{group}|{Path(run_dir).resolve()}".encode()).hexdigest()[:8]
    run = wandb.init(
        project=rc.logger.project, entity=rc.logger.entity, group=group, job_type=rc.stage,
        tags=[*wandb_tags(rc), "reused"], id=run_id, resume="allow", dir=str(run_dir),
        name=f"{rc.paper}/{rc.setting}/{rc.name}/seed={rc.seed}",
        mode="offline" if rc.logger.offline else "online",
        config={**flatten(done.get("config") or {}), "reused_from": str(run_dir)})
    try:
        log_summary_to(run, done)
    finally:
        run.finish()


def wandb_tags(rc: RunConfig) -> list[str]:
    """The user's tags, then what a W&B run table filters by (W&B allows 64 characters)."""
    facets = {"method": rc.method, "model": rc.model.name, "data": rc.data.name,
              "budget": rc.budget}
    return [*rc.tags, *(f"{k}:{v}"[:64] for k, v in facets.items())]


WANDB_SUMMARY_KEY = "quantsurvey/summary"  # the whole summary.json in W&B's run summary


def log_summary(loggers: list, summary: dict[str, Any]) -> None:
    """The final metrics (test, compression) into W&B's run summary, as summary.json has them
    (without this, `compress/*` never reached W&B and its charts could not plot error against
    compression); the whole summary.json under `quantsurvey/summary`, from which
    `quantsurvey-report --from-wandb` rebuilds the tables; and each per-layer compression record
    as a W&B Table (`compression/<record>`)."""
    from pytorch_lightning.loggers import WandbLogger

    for logger in loggers:
        if isinstance(logger, WandbLogger):
            log_summary_to(logger.experiment, summary)


def log_summary_to(run: Any, summary: dict[str, Any]) -> None:
    """What log_summary writes, into a W&B run object."""
    import wandb

    from quantsurvey.report.layer_tables import layer_tables

    run.summary.update({**summary["metrics"], WANDB_SUMMARY_KEY: summary})
    tables = layer_tables(summary.get("compression") or {})
    if tables:
        run.log({f"compression/{path}": wandb.Table(columns=columns, data=rows)
                 for path, (columns, rows) in tables.items()})


def finish_loggers(rc: RunConfig) -> None:
    if rc.logger.name == "wandb":
        import wandb

        wandb.finish()


def progress_bar(kind: str) -> list[pl.Callback]:
    """A bar redrawn every 10 batches (each redraw gathers the logged metrics); `auto`: rich
    on a terminal, none when the output goes to a file (a background run's log)."""
    if kind == "auto":
        kind = "rich" if sys.stdout.isatty() else "none"
    if kind == "rich":
        from pytorch_lightning.callbacks import RichProgressBar

        return [RichProgressBar(refresh_rate=10)]
    if kind == "tqdm":
        from pytorch_lightning.callbacks import TQDMProgressBar

        return [TQDMProgressBar(refresh_rate=10)]
    return []


def build_summary(rc: RunConfig, resolved: dict[str, Any], dm: pl.LightningDataModule,
                  model: nn.Module, metrics: dict[str, float], info: dict[str, Any],
                  git: dict[str, Any], wall_time_s: float, before_resume_s: float,
                  resumed: bool, epochs: int, status: str = "finished",
                  error: str | None = None) -> dict[str, Any]:
    """What every run writes; `report` is false for a failed run, for data that no paper used
    (the synthetic smoke set) or a subset of it, and for epochs cut by `trainer.limit_*_batches`,
    with the reason."""
    reasons = [rc.report_reason] if rc.report_reason else []
    if status != "finished":
        reasons.append(f"the run {status}: {error}")
    if rc.data.name == "synthetic":
        reasons.append("synthetic smoke data, not a paper's data set")
    if rc.data.params.get("allow_subset"):
        reasons.append("a subset of the data set (data.params.allow_subset=true)")
    if rc.trainer.overfit_batches:
        reasons.append(f"trained and validated on {rc.trainer.overfit_batches} fixed batch(es) "
                       f"(trainer.overfit_batches={rc.trainer.overfit_batches})")
    for split in ("train", "val", "test"):
        limit = getattr(rc.trainer, f"limit_{split}_batches")
        if limit != 1.0:
            reasons.append(f"part of each {split} pass (trainer.limit_{split}_batches={limit})")
    return {
        "status": status, **({"error": error} if error else {}),
        "paper": rc.paper, "setting": rc.setting, "method": rc.method, "stage": rc.stage,
        "name": rc.name, "mode": rc.mode, "model": rc.model.name, "dataset": rc.data.name,
        "seed": rc.seed, "budget": rc.budget, "epochs": epochs, "metrics": metrics,
        "data": {"root": str(Path(rc.data.root).resolve()), **dm.split_sizes()},
        "params": architecture_params(model),
        "config": resolved, **command_line(),
        "git": git, "versions": package_versions(),
        "hardware": {**hardware(), "processes": distributed.world_size()},
        "wall_time_s": round(wall_time_s, 2),
        "wall_time_before_resume_s": round(before_resume_s, 2), "resumed": resumed,
        "report": rc.report and not reasons,
        **({"report_reason": "; ".join(reasons)} if rc.report and reasons else {}),
        "init_from": rc.init_from,
        **({"init_from_identity": stages.start_identity(rc.init_from)} if rc.init_from else {}),
        "compression": info,
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
    }

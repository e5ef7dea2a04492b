"""`train(cfg, run_dir) -> metrics`, callable from tests, and the `quantsurvey` command.

A run validates its config, loads its data, then trains with a checkpoint at every epoch end,
tests the final model once, and writes `summary.json` atomically. `resume=true` continues from
`checkpoints/last.ckpt` in the same run directory (and the same W&B run).
"""

from __future__ import annotations

import json
import logging
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from quantsurvey import stages
from quantsurvey.config import RunConfig, validate_config
from quantsurvey.data import create_datamodule
from quantsurvey.errors import CheckpointError, QuantsurveyError, RunDirError
from quantsurvey.lit import csv_resume
from quantsurvey.lit.callbacks import BatchSeed, WallClock
from quantsurvey.lit.classifier import ClassifierModule
from quantsurvey.models import create_model
from quantsurvey.nn.masking import sparsity_stats
from quantsurvey.provenance import git_state, hardware, package_versions, write_json_atomic

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
SUMMARY = "summary.json"
LAST_CKPT = Path("checkpoints") / "last.ckpt"
FINISHED = Path("<finished>")  # _check_run_dir's answer for a run that already completed
log = logging.getLogger("quantsurvey")


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'optim': {'lr': 0.1}} -> {'optim.lr': 0.1}: W&B's run table compares flat keys."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


RECIPE_KEYS = ("method", "seed", "loss", "model", "optim", "sched", "trainer.max_epochs",
               "data.name", "data.batch_size", "data.val_size", "data.split_seed",
               "data.augment", "data.pad", "data.params", "compress", "init_from")


def _recipe(config: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key in RECIPE_KEYS:
        node: Any = config
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if key == "compress" and node == {"prune": None, "share": None, "encode": None}:
            node = None  # written before compression existed
        if key == "init_from" and node:
            node = "/".join(Path(node).parts[-4:])  # paper/setting/stage/seed, not the root
        out[key] = node
    return out


def _check_same_recipe(run_dir: Path, resolved: dict[str, Any]) -> None:
    """A finished run is reused only if it was made with the same recipe."""
    theirs = _recipe(json.loads((run_dir / SUMMARY).read_text()).get("config", {}))
    mine = _recipe(resolved)
    diff = [k for k in RECIPE_KEYS if theirs[k] != mine[k]]
    if diff:
        raise RunDirError(
            f"{run_dir} holds a finished run made with another recipe ({diff[0]}: "
            f"{theirs[diff[0]]!r} there, {mine[diff[0]]!r} now). Delete it, or give this run "
            f"another name=... / paths.output_dir.")


def _check_run_dir(run_dir: Path, resume: bool, resolved: dict[str, Any]) -> Path | None:
    """The checkpoint to resume from, or None; refuse to overwrite a finished or started run."""
    last = run_dir / LAST_CKPT
    if resume:
        if (run_dir / SUMMARY).is_file():
            _check_same_recipe(run_dir, resolved)
            return FINISHED
        if last.is_file():
            return last
        log.info("resume=true but %s has no checkpoint: starting from scratch", run_dir)
        return None
    if (run_dir / SUMMARY).exists() or last.exists():
        raise RunDirError(
            f"{run_dir} already holds a run ({SUMMARY} or a checkpoint). Pass resume=true to "
            f"continue it, choose another name=..., or delete the directory.")
    return None


def _compressed(rc: RunConfig) -> bool:
    return bool(rc.init_from or rc.compress.prune or rc.compress.share)


def _check_checkpoint(ckpt: Path, module: ClassifierModule) -> int:
    """Fail with one message if `ckpt` is unreadable or was written for another model;
    return its global step."""
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"could not read checkpoint {ckpt} ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}). It is truncated or corrupt: "
            f"delete it to start over.") from None
    module.on_load_checkpoint(state)
    return int(state.get("global_step", 0))


def _build_loggers(rc: RunConfig, run_dir: Path, resolved: dict[str, Any]) -> list:
    from pytorch_lightning.loggers import CSVLogger

    loggers: list = [CSVLogger(save_dir=str(run_dir), name="csv", version="")]
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
            job_type=rc.stage, tags=list(rc.tags) or None, id=run_id, resume="allow",
            name=f"{rc.setting}/{rc.name}/seed={rc.seed}", save_dir=str(run_dir),
            offline=rc.logger.offline, config=flatten(resolved)))
    return loggers


def _progress_bar(kind: str) -> list[pl.Callback]:
    if kind == "rich":
        from pytorch_lightning.callbacks import RichProgressBar

        return [RichProgressBar()]
    if kind == "tqdm":
        from pytorch_lightning.callbacks import TQDMProgressBar

        return [TQDMProgressBar()]
    return []


def train(cfg: DictConfig | dict, run_dir: str | Path,
          extra_callbacks: Sequence[pl.Callback] = ()) -> dict[str, float]:
    """Run one training job described by `cfg` in `run_dir`; return its final metrics."""
    start = time.time()
    git = git_state()  # at the start: the code that runs, even if the checkout changes meanwhile
    rc = validate_config(cfg)
    resolved = OmegaConf.to_container(OmegaConf.structured(rc), resolve=True)
    run_dir = Path(run_dir)
    ckpt = _check_run_dir(run_dir, rc.resume, resolved)
    if ckpt == FINISHED:  # resume=true on a finished run (a re-launched sweep): nothing to do
        log.info("%s already finished; reusing its summary", run_dir)
        return json.loads((run_dir / SUMMARY).read_text())["metrics"]

    pl.seed_everything(rc.seed, workers=True, verbose=False)
    dm = create_datamodule(
        rc.data.name, root=rc.data.root, cache_dir=rc.paths.cache_dir,
        batch_size=rc.data.batch_size, eval_batch_size=rc.data.eval_batch_size,
        val_size=rc.data.val_size, split_seed=rc.data.split_seed, augment=rc.data.augment,
        pad=rc.data.pad, download=rc.data.download, num_workers=rc.data.num_workers,
        shuffle_seed=rc.seed, **rc.data.params)
    dm.setup("fit")  # missing or corrupt data fails here, before anything is written
    model = create_model(rc.model.name, num_classes=dm.num_classes, input_shape=dm.input_shape,
                         **rc.model.params)
    if rc.init_from:
        stages.load_stage(model, Path(rc.init_from))
    stage_info = stages.compress_before_training(model, rc)
    module = ClassifierModule(model, rc.model.name, dm.num_classes, rc.optim, rc.sched,
                              rc.trainer.max_epochs, rc.loss)

    resume_step = _check_checkpoint(ckpt, module) if ckpt is not None else 0
    if ckpt is not None:
        csv_resume.set_aside(run_dir / "csv")
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create(resolved), run_dir / "config.yaml")
    clock = WallClock(start)
    callbacks: list[pl.Callback] = [BatchSeed(rc.seed), clock,
                                    *_progress_bar(rc.trainer.progress_bar)]
    if rc.callbacks.checkpoint:
        from pytorch_lightning.callbacks import ModelCheckpoint

        # keeps the newest epoch's file; last.ckpt links to it
        callbacks.append(ModelCheckpoint(dirpath=run_dir / "checkpoints", save_last="link",
                                         save_top_k=1, every_n_epochs=1,
                                         filename="epoch{epoch}", auto_insert_metric_name=False))
    loggers = _build_loggers(rc, run_dir, resolved)
    if rc.callbacks.lr_monitor:
        from pytorch_lightning.callbacks import LearningRateMonitor

        callbacks.append(LearningRateMonitor(logging_interval="epoch"))
    callbacks.extend(extra_callbacks)

    t = rc.trainer
    trainer = pl.Trainer(
        default_root_dir=str(run_dir), max_epochs=t.max_epochs, accelerator=t.accelerator,
        devices=t.devices, precision=t.precision, limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches, limit_test_batches=t.limit_test_batches,
        log_every_n_steps=t.log_every_n_steps, gradient_clip_val=t.gradient_clip_val,
        deterministic=t.deterministic, enable_progress_bar=t.progress_bar != "none",
        callbacks=callbacks, logger=loggers, num_sanity_val_steps=0,
        use_distributed_sampler=False, enable_model_summary=t.progress_bar != "none")
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt, weights_only=True)
        fit_metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        compress_metrics = sparsity_stats(model) if _compressed(rc) else {}
        stages.save_stage(model, run_dir)
        if rc.compress.encode is not None:
            # the reported test metrics are those of the model decoded from the file
            probe, _ = dm.on_after_batch_transfer(next(iter(dm.test_dataloader())), 0)
            info = {"name": rc.model.name, "num_classes": dm.num_classes,
                    "input_shape": list(dm.input_shape), "params": dict(rc.model.params)}
            module.model, encoded = stages.encode_after_training(model, rc, run_dir, info,
                                                                 probe[:64].cpu())
            stage_info["encoded"] = encoded
            compress_metrics["compress/size_bytes"] = float(encoded["size_bytes"])
            compress_metrics["compress/ratio"] = encoded["original_bytes"] / encoded["size_bytes"]
        test_metrics = trainer.test(module, datamodule=dm, verbose=False)[0]
    finally:
        if ckpt is not None:
            csv_resume.merge_back(run_dir / "csv", resume_step)
        if rc.logger.name == "wandb":
            import wandb

            wandb.finish()
    metrics = {k: v for k, v in fit_metrics.items() if k.startswith(("val/", "train/"))}
    metrics.update({k: float(v) for k, v in test_metrics.items()})
    metrics.update(compress_metrics)
    summary = {
        "paper": rc.paper, "setting": rc.setting, "method": rc.method, "stage": rc.stage,
        "name": rc.name, "model": rc.model.name, "dataset": rc.data.name, "seed": rc.seed,
        "budget": rc.budget, "epochs": trainer.current_epoch, "metrics": metrics,
        "data": {"root": str(Path(rc.data.root).resolve()), **dm.split_sizes()},
        "params": sum(p.numel() for p in model.parameters()),
        "config": resolved, "git": git, "versions": package_versions(),
        "hardware": hardware(), "wall_time_s": round(clock.elapsed(), 2),
        "wall_time_before_resume_s": round(clock.before_resume, 2), "resumed": ckpt is not None,
        "report": rc.report, "init_from": rc.init_from,
        "compression": stage_info,
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
    }
    write_json_atomic(run_dir / SUMMARY, summary)
    return metrics


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig

    try:
        if cfg.get("pipeline"):
            from quantsurvey.pipeline import run_pipeline

            metrics = list(run_pipeline(cfg).values())[-1]
        else:
            metrics = train(cfg, HydraConfig.get().runtime.output_dir)
    except QuantsurveyError as err:
        print(f"quantsurvey: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    return metrics.get("val/err", float("nan"))  # what a Hydra sweeper would minimise


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()

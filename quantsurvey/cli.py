"""The command lines: `quantsurvey` (a run, a pipeline, or `mode=evaluate`) and
`quantsurvey-eval` (the same with mode=evaluate). Errors a user can cause print one line and
exit with status 2 (3: a run that failed on its numbers).

Before Hydra composes anything, every override's key is checked against the schema, so a typo
gets the documented message (allowed keys, a close match) rather than Hydra's "use +key"; after
composing, overrides that change a recipe key make the run unreportable unless they name a
budget, overrides that a pipeline's stages set themselves are refused, and a multirun resumes
its jobs (finished ones with the same recipe are reused).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from quantsurvey.errors import ConfigError, QuantsurveyError
from quantsurvey.sweep import FAILED_JOBS, failed_objective, objective, record_failure

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
GROUPS = ("data", "model", "optim", "sched", "trainer", "logger", "callbacks", "paths",
          "experiment", "hparams_search", "debug")
# overrides that change where or how a run is watched, not what it computes
NOT_RECIPE = ("seed", "resume", "name", "tags", "report", "budget", "paths", "logger", "data.root",
              "data.num_workers", "data.download", "trainer.progress_bar", "trainer.threads",
              "trainer.accelerator", "trainer.devices", "trainer.strategy", "trainer.num_nodes",
              "callbacks.checkpoint",
              "callbacks.lr_monitor", "callbacks.method_state_every_n_steps", "hydra",
              "experiment", "paper", "setting", "stage", "method", "mode", "objective",
              "hparams_search")
# trainer configs that choose only where a run computes (conf/trainer/{gpu,ddp}.yaml)
PLACEMENT_TRAINERS = ("default", "gpu", "ddp")


def _parse(args: list[str]) -> list[Any]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    wanted = [a for a in args if ("=" in a or a.startswith("~")) and not a.startswith("-")]
    try:
        return OverridesParser.create().parse_overrides(wanted)
    except Exception:  # Hydra reports its own grammar errors
        return []


def preflight(args: list[str]) -> list[str]:
    """Check the keys of the command line's overrides; returns the arguments to give Hydra
    (`pipeline={}` becomes `~pipeline`: both mean 'no pipeline, one run')."""
    from quantsurvey.config import check_key

    out = []
    for arg in args:
        if arg.replace(" ", "") in ("pipeline={}", "pipeline=null"):
            out.append("~pipeline")
            continue
        out.append(arg)
    for o in _parse(out):
        key = o.key_or_group
        if o.is_delete() or o.is_add() or key.startswith("hydra") or key in GROUPS:
            continue  # additions are checked when the config is validated
        check_key(key)
    return out


def _matches(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def _flat_keys(d: Any, prefix: str = "", skip_null: bool = False) -> list[str]:
    if skip_null and d is None:
        return []
    if not isinstance(d, dict) or not d:
        return [prefix.rstrip(".")] if prefix else []
    return [k for key, value in d.items()
            for k in _flat_keys(value, f"{prefix}{key}.", skip_null)]


def _stage_key(key: str) -> str:
    """pipeline.<stage>.optim.lr → optim.lr"""
    return key.split(".", 2)[2] if key.startswith("pipeline.") and key.count(".") >= 2 else key


def apply_overrides_policy(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """What the command line's overrides mean for the recipe (see the module docstring).

    A top-level recipe change is excused only by a top-level `budget=…` (which then labels
    every stage); a change to `pipeline.<stage>.…` only by that stage's budget or the top-level
    one, and it makes that stage (unless it names its own budget) and the stages after it
    unreportable. Choosing another
    data / model / optim / sched / trainer / callbacks group changes the recipe; dropping a
    whole stage (`~pipeline.<stage>`) does not."""
    parsed = _parse(overrides)
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))  # not in struct mode
    keys = [o.key_or_group for o in parsed if not o.key_or_group.startswith("hydra")]
    stages = cfg.get("pipeline") or OmegaConf.create({})
    order = list(stages)
    clashes = []
    capped = bool((cfg.get("trainer") or {}).get("cap_stage_epochs"))
    for key in keys:
        if key.startswith("pipeline") or key in GROUPS or key == "budget":
            continue
        if key == "trainer.max_epochs" and capped:
            continue  # trainer=smoke / debug=…: it caps the stages' own epochs, so it reaches them
        # a stage that turns a method off (`compress.<method>: null`) does not set its keys
        setters = [s for s, over in OmegaConf.to_container(stages).items()
                   if any(_matches(k, (key,)) or _matches(key, (k,))
                          for k in _flat_keys(over, skip_null=True))]
        if setters:
            clashes.append((key, setters))
    if clashes:
        key, setters = clashes[0]
        raise ConfigError(
            f"{key} is set by pipeline stage(s) {', '.join(setters)} themselves, so a top-level "
            f"{key}=… would not reach them; override it per stage: "
            + " ".join(f"pipeline.{s}.{key}=…" for s in setters) + ".")

    def changes_recipe(o: Any) -> bool:
        key = o.key_or_group
        if key.startswith("hydra") or key == "pipeline":
            return False
        if o.is_delete() and key.startswith("pipeline.") and key.count(".") == 1:
            return False  # a whole stage dropped: the others keep their recipes
        if key == "trainer" and o.value() in PLACEMENT_TRAINERS:
            return False
        if key in GROUPS:
            return key in ("data", "model", "optim", "sched", "trainer", "callbacks")
        if key in (cfg.get("grid") or []):
            return False  # one of the experiment's declared grid axes: a setting
        return not _matches(_stage_key(key), NOT_RECIPE)

    changed = [o.key_or_group for o in parsed if changes_recipe(o)]
    top_budget = "budget" in keys
    if top_budget and stages:
        cfg.pipeline = OmegaConf.merge(stages, {s: {"budget": cfg.budget} for s in stages})
    top = [k for k in changed if not k.startswith("pipeline.")]
    bad_from = 0 if top and not top_budget else len(order)
    for key in changed:
        if key.startswith("pipeline.") and key.count(".") >= 2:
            stage = key.split(".")[1]
            if top_budget or stage not in order:
                continue
            # its own budget labels that stage; the stages after it start from a changed model
            own = f"pipeline.{stage}.budget" in keys
            bad_from = min(bad_from, order.index(stage) + own)
    if top and not top_budget:
        reason = (f"the command line changed the experiment's recipe ({', '.join(changed)}) "
                  f"without naming a budget=…")
        cfg = OmegaConf.merge(cfg, {"report_reason": reason, "budget": "custom"})
    if bad_from < len(order):
        reason = (f"the command line changed the recipe of this stage or an earlier one "
                  f"({', '.join(changed)}) without naming its budget")
        cfg.pipeline = OmegaConf.merge(cfg.pipeline, {s: {"report_reason": reason,
                                                          "budget": "custom"}
                                                      for s in order[bad_from:]})
    return cfg


def _validate(cfg: DictConfig) -> None:
    from quantsurvey.config import validate_config
    from quantsurvey.pipeline import stage_configs

    stage_configs(cfg) if cfg.get("pipeline") else validate_config(cfg)


def run(cfg: DictConfig, run_dir: str) -> dict[str, float]:
    """One job: a pipeline's stages, an evaluation, or a training run."""
    if cfg.get("pipeline"):
        from quantsurvey.pipeline import run_pipeline

        return list(run_pipeline(cfg).values())[-1]
    if cfg.get("mode") == "evaluate":
        from quantsurvey.evaluate import evaluate

        return evaluate(cfg, run_dir)
    from quantsurvey.train import train

    return train(cfg, run_dir)


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    try:
        overrides = list(hc.overrides.task)
        _validate(cfg)  # an impossible value is named before any policy question
        cfg = apply_overrides_policy(cfg, overrides)
        jobs = (hc.launcher or {}).get("n_jobs") if hc.mode == RunMode.MULTIRUN else None
        if cfg.trainer.get("threads") is None and isinstance(jobs, int) and jobs > 1:
            from quantsurvey.threads import default_threads

            # a parallel launcher: the cores are shared by its jobs
            cfg = OmegaConf.merge(cfg, {"trainer": {"threads": default_threads(jobs)}})
        if hc.mode == RunMode.MULTIRUN and not any(o.startswith("resume=") for o in overrides):
            # a relaunched sweep: finished jobs with the same recipe are reused, interrupted
            # ones resumed, the rest run
            cfg = OmegaConf.merge(cfg, {"resume": True})
        metrics = run(cfg, hc.runtime.output_dir)
        if hc.mode != RunMode.MULTIRUN:  # a single run returns nothing anyone reads
            return float(metrics.get("val/err", float("nan")))
        return objective(metrics, list(cfg.objective))  # what a Hydra sweeper optimises
    except QuantsurveyError as err:
        if hc.mode != RunMode.MULTIRUN:
            print(f"quantsurvey: error: {err.user_message()}", file=sys.stderr)
            sys.exit(err.exit_code)
        # one job's error does not stop the sweep: the others run, the exit status tells
        job = f"job {hc.job.num} ({hc.job.override_dirname or 'no overrides'})"
        print(f"quantsurvey: error in {job}: {err.user_message()} (the sweep goes on)",
              file=sys.stderr)
        record_failure(hc.sweep.dir, hc.job.num, job, err.exit_code)
        return failed_objective(list(cfg.get("objective") or ["val/err"]))


def quiet_lightning() -> None:
    """Keep a run's output to what it says: Lightning's start-up notices and tips (GPU
    available, "limit_train_batches=1.0 was configured", litlogger), the worker-count hint (the
    data sets are in memory: workers would only copy them) and a torch deprecation inside
    Lightning go; warnings about the run itself stay."""
    import logging
    import warnings

    for name in ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero",
                 "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    warnings.filterwarnings("ignore", message=r"The '\w+_dataloader' does not have many workers")


def main() -> None:
    quiet_lightning()
    try:
        sys.argv[1:] = preflight(sys.argv[1:])
    except QuantsurveyError as err:
        print(f"quantsurvey: error: {err.user_message()}", file=sys.stderr)
        sys.exit(err.exit_code)
    _hydra_main()
    if FAILED_JOBS:  # filled by the FailedJobs callback once every job of a multirun has run
        print(f"quantsurvey: error: {len(FAILED_JOBS)} job(s) of the sweep failed: "
              + "; ".join(job for job, _ in FAILED_JOBS)
              + ". Fix the cause and relaunch the same command: finished jobs are reused.",
              file=sys.stderr)
        sys.exit(max(code for _, code in FAILED_JOBS))


def eval_main() -> None:
    """`quantsurvey-eval …` = `quantsurvey mode=evaluate pipeline={} …`: one model tested, never
    the stages of the default (or a named) experiment's pipeline, unless the command names one."""
    named = any(a.lstrip("~+").startswith("pipeline") for a in sys.argv[1:])
    sys.argv[1:1] = ["mode=evaluate"] if named else ["mode=evaluate", "pipeline={}"]
    main()


if __name__ == "__main__":
    main()

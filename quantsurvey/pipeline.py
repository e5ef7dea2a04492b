"""Multi-stage experiments (train → prune/retrain → share/fine-tune → encode).

An experiment's `pipeline` maps stage names to config overrides. Each stage is an ordinary run of
`train()` in its own directory `<output_dir>/<paper>/<setting>/<stage>/seed=<seed>`, started from
the stage named in its `init_from`. Stages run with resume semantics: a finished stage is reused
(if its config matches), an interrupted one continues from its last checkpoint, so re-running the
command after a crash picks up where it stopped, and one paper's pipeline can reuse another's
stages (Deep Compression starts from Han 2015's pruned model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from quantsurvey.assemble import check_stage
from quantsurvey.config import RunConfig, validate_config
from quantsurvey.errors import ConfigError
from quantsurvey.evaluate import evaluate
from quantsurvey.train import train


def stage_dir(rc: RunConfig) -> Path:
    return Path(rc.paths.output_dir) / rc.paper / rc.setting / rc.name / f"seed={rc.seed}"


def stage_configs(cfg: DictConfig) -> list[tuple[str, DictConfig, RunConfig]]:
    """Every stage's full config, validated before any stage runs."""
    base = OmegaConf.to_container(cfg, resolve=False)
    stages: dict[str, Any] = base.pop("pipeline") or {}
    # one W&B group per experiment, also for the stages it borrows from another paper
    group = (base.get("logger") or {}).get("group") or base.get("paper")
    out = []
    for name, overrides in stages.items():
        # a stage's directory is its key, or the stage's own `name` (which may interpolate its
        # settings, e.g. direct_w${compress.fixed_point.weight_bits}: grid points never collide)
        dir_name = (overrides or {}).get("name", name)
        merged = OmegaConf.merge(base, overrides or {}, {"name": dir_name, "stage": name,
                                                         "resume": True, "pipeline": {},
                                                         "logger": {"group": group}})
        try:
            rc = validate_config(merged)
        except ConfigError as err:
            raise ConfigError(f"pipeline stage {name!r}: {err}") from None
        if rc.init_from and rc.init_from not in stages and not Path(rc.init_from).is_dir():
            raise ConfigError(f"pipeline stage {name!r}: init_from={rc.init_from!r} is neither "
                              f"an earlier stage ({', '.join(stages)}) nor a run directory.")
        out.append((name, merged, rc))
    names = [n for n, _, _ in out]
    for i, (name, _, rc) in enumerate(out):
        if rc.init_from in stages and rc.init_from not in names[:i]:
            raise ConfigError(f"pipeline stage {name!r}: init_from={rc.init_from!r} must name a "
                              f"stage that runs before it.")
    return out


def run_pipeline(cfg: DictConfig, train_fn=None) -> dict[str, dict[str, float]]:
    """Run every stage in order; returns {stage: final metrics}."""
    stages = stage_configs(cfg)
    for name, _, rc in stages:  # a typo in the last stage fails before the first trains
        try:
            check_stage(rc)
        except ConfigError as err:
            raise ConfigError(f"pipeline stage {name!r}: {err}") from None
    dirs: dict[str, Path] = {}
    results = {}
    for name, merged, rc in stages:
        if rc.init_from in dirs:
            merged = OmegaConf.merge(merged, {"init_from": str(dirs[rc.init_from])})
        dirs[name] = stage_dir(rc)
        run_stage = train_fn or (evaluate if rc.mode == "evaluate" else train)
        results[name] = run_stage(merged, dirs[name])
    return results

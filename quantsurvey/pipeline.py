"""Multi-stage experiments (train → prune/retrain → share/fine-tune → encode).

An experiment's `pipeline` maps stage names to config overrides. Each stage is an ordinary run of
`train()` in its own directory `<output_dir>/<paper>/<setting>/<stage>/seed=<seed>`, started from
the stage named in its `init_from`. Stages run with resume semantics: a finished stage is reused
(if its config matches), an interrupted one continues from its last checkpoint, so re-running the
command after a crash picks up where it stopped, and one paper's pipeline can reuse another's
stages (Deep Compression starts from Han 2015's pruned model).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from quantsurvey.assemble import check_stage
from quantsurvey.config import RunConfig, validate_config
from quantsurvey.distributed import is_rank_zero
from quantsurvey.errors import ConfigError
from quantsurvey.evaluate import evaluate
from quantsurvey.rundir import SUMMARY
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
        trainer = base.get("trainer") or {}
        if trainer.get("cap_stage_epochs") and "max_epochs" in trainer:  # smoke / debug runs
            merged.trainer.max_epochs = min(merged.trainer.max_epochs, trainer["max_epochs"])
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
    progress = Progress([0 if rc.mode == "evaluate" else rc.trainer.max_epochs
                         for _, _, rc in stages])
    for i, (name, merged, rc) in enumerate(stages):
        if rc.init_from in dirs:
            merged = OmegaConf.merge(merged, {"init_from": str(dirs[rc.init_from])})
        dirs[name] = stage_dir(rc)
        run_stage = train_fn or (evaluate if rc.mode == "evaluate" else train)
        progress.announce(i, name, rc.method, dirs[name])
        results[name] = run_stage(merged, dirs[name])
        progress.done(i)
    if progress.speaks:
        print(final_table(stages, results, progress.elapsed()), flush=True)
    return results


class Progress:
    """`stage i/n` lines with the time left, estimated from the seconds per epoch of the stages
    that trained so far (a reused stage takes no time and teaches nothing)."""

    def __init__(self, epochs: list[int]):
        self.epochs, self.start = epochs, time.monotonic()
        self.trained_epochs, self.trained_s, self._t0, self._reused = 0, 0.0, 0.0, False
        self.speaks = is_rank_zero()  # one voice for the processes of a data-parallel run

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def announce(self, i: int, name: str, method: str, run_dir: Path) -> None:
        left = ""
        if self.trained_epochs:
            per_epoch = self.trained_s / self.trained_epochs
            left = f"; about {_duration(per_epoch * sum(self.epochs[i:]))} left"
        what = f"{self.epochs[i]} epochs" if self.epochs[i] else "evaluate only"
        self._reused = (run_dir / SUMMARY).is_file()  # finished before: reused
        self._t0 = time.monotonic()
        if not self.speaks:
            return
        print(f"quantsurvey: stage {i + 1}/{len(self.epochs)} {name} ({method}, "
              f"{'finished before: reused' if self._reused else what}; "
              f"{_duration(self.elapsed())} so far{left}) -> {run_dir}", flush=True)

    def done(self, i: int) -> None:
        if self.epochs[i] and not self._reused:
            self.trained_epochs += self.epochs[i]
            self.trained_s += time.monotonic() - self._t0


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def final_table(stages: list, results: dict[str, dict[str, float]], elapsed: float) -> str:
    """What the pipeline reproduced, stage by stage, beside the paper's own figures."""
    import yaml

    from quantsurvey.errors import QuantsurveyError
    from quantsurvey.provenance import REPO_ROOT
    from quantsurvey.report.build import load_reported

    try:
        reported = load_reported(REPO_ROOT / "experiments")
    except (QuantsurveyError, OSError, yaml.YAMLError):  # a broken reported.yaml is the
        reported = []  # report's to name; this table is a courtesy
    paper_says: dict[tuple, dict[str, float]] = {}
    for r in reported:
        paper_says.setdefault((r["paper"], r["setting"], r["method"]), {})[r["metric"]] = \
            r["reported"]
    lines = [f"quantsurvey: pipeline done in {_duration(elapsed)}",
             f"  {'stage':<22} {'method':<22} {'test err %':>10} {'ratio x':>8}   "
             "paper: err % / ratio"]
    for name, _, rc in stages:
        m = results.get(name, {})
        theirs = paper_says.get((rc.paper, rc.setting, rc.method), {})
        err = m.get("test/err")
        ratio = m.get("compress/ratio")
        paper_err = theirs.get("test_err", theirs.get("top1_err"))
        lines.append(f"  {name:<22} {rc.method:<22} "
                     f"{'' if err is None else f'{err:.2f}':>10} "
                     f"{'' if ratio is None else f'{ratio:.1f}':>8}   "
                     f"{'-' if paper_err is None else paper_err} / "
                     f"{theirs.get('ratio', '-')}")
    return "\n".join(lines)

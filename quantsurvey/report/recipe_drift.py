"""Is a committed run still what today's configs give? Its summary records its command-line
overrides (`overrides`, written since this check exists); composing today's configs with
them and taking the run's stage gives today's recipe for that row, and the first recipe key that
differs from the run's recorded config says that the row came from an older version of the config
it claims (the report marks it `+config-changed` and lists the difference)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from quantsurvey.errors import QuantsurveyError


class RecipeDrift:
    """`check(summary)`: 'key: then, now' or None (same recipe, or no overrides recorded);
    a config that no longer composes is a difference too. Composed configs are cached."""

    def __init__(self, conf_dir: str | Path):
        self.conf_dir = str(conf_dir)
        self._stages: dict[tuple[str, ...], dict[str, dict[str, Any]] | str] = {}

    def _compose(self, overrides: tuple[str, ...]) -> dict[str, dict[str, Any]] | str:
        from quantsurvey.cli import apply_overrides_policy
        from quantsurvey.pipeline import stage_configs, stage_dir

        try:
            with initialize_config_dir(config_dir=self.conf_dir, version_base="1.3"):
                cfg = apply_overrides_policy(compose("config", overrides=list(overrides)),
                                             list(overrides))
            if not cfg.get("pipeline"):
                return {"": OmegaConf.to_container(cfg, resolve=True)}
            stages, dirs = {}, {}
            for name, merged, rc in stage_configs(cfg):  # init_from a stage: its folder
                if rc.init_from in dirs:
                    merged = OmegaConf.merge(merged, {"init_from": str(dirs[rc.init_from])})
                dirs[name] = stage_dir(rc)
                stages[name] = OmegaConf.to_container(merged, resolve=True)
            return stages
        except QuantsurveyError as err:
            return f"today's configs refuse its overrides: {err.user_message()}"
        except Exception as err:  # Hydra's own errors: a removed config group or key
            return f"today's configs refuse its overrides: {type(err).__name__}: {err}"

    def check(self, summary: dict[str, Any]) -> str | None:
        from quantsurvey.rundir import first_difference

        overrides = summary.get("overrides")
        if overrides is None:
            return None
        key = tuple(overrides)
        if key not in self._stages:
            self._stages[key] = self._compose(key)
        stages = self._stages[key]
        if isinstance(stages, str):
            return stages
        today = stages.get(summary.get("stage") or "") or stages.get("")
        if today is None:
            return f"today's config has no stage {summary.get('stage')!r}"
        return first_difference(summary.get("config") or {}, today)

"""What a compression method is, and the registry that `compress:` names methods from.

A method is one module in this package that subclasses `Method` and registers it with
`@register_method`: a name (the key under `compress:`), a frozen config dataclass (validated in
its `__post_init__`, raising ValueError; the key is named here), and hooks that the run calls:

- `check(model)`: fail early if the config cannot apply to this model (layer names, shapes);
- `before_training(model, ctx)`: attach transforms / quantizers, prune, cluster …; returns the
  information recorded in the summary under `compression`;
- while training (only those it overrides run): `regularizer(model)` added to the loss,
  `after_optimizer_step(model)` (clipping, projections), `param_groups(model)` (per-group
  learning-rate scales), `state_to_log(model)` (logged every `callbacks.method_state_every_n_steps`
  steps), `state_dict()` / `load_state_dict()` (method state kept in checkpoints);
- `after_training(model, ctx)`: export and size accounting; may replace the model that is tested
  (the one decoded from the written file) and returns (model, info, metrics).

Nothing here imports Lightning, Hydra or W&B.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from quantsurvey.errors import ConfigError


@dataclass
class StageContext:
    """What a method may need from the run around it."""

    seed: int
    run_dir: Path
    model_info: dict[str, Any] = field(default_factory=dict)  # rebuilds the model (exporters)
    probe: Callable[[], torch.Tensor] | None = None  # a batch of test inputs, on demand
    # the first n training batches' inputs (the epoch-0 order, no augmentation), on demand
    train_batches: Callable[[int], list[torch.Tensor]] | None = None
    # statistics of the stage's starting model that methods may memoise (keyed by what they
    # depend on): an analysis that applies many settings to one float model computes them once
    memo: dict[Any, Any] = field(default_factory=dict)

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed)


class Method:
    """Base class: every hook does nothing."""

    name: ClassVar[str]
    Config: ClassVar[type]
    requires: ClassVar[tuple[str, ...]] = ()  # methods that must run earlier in the same stage

    def __init__(self, config: Any):
        self.config = config

    def check(self, model: nn.Module) -> None:
        """Fail (ConfigError) if this config cannot apply to `model` (e.g. a layer it does not
        have); cheap, run for every stage of a pipeline before the first one trains."""
        return None

    def before_training(self, model: nn.Module, ctx: StageContext) -> dict[str, Any]:
        return {}

    def regularizer(self, model: nn.Module) -> torch.Tensor | None:
        return None

    def after_optimizer_step(self, model: nn.Module) -> None:
        return None

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]] | None:
        return None

    def state_to_log(self, model: nn.Module) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None

    def after_training(self, model: nn.Module, ctx: StageContext
                       ) -> tuple[nn.Module, dict[str, Any], dict[str, float]]:
        return model, {}, {}

    def overrides(self, hook: str) -> bool:
        """Whether this method implements `hook` (the run attaches only the hooks in use)."""
        return getattr(type(self), hook) is not getattr(Method, hook)


METHODS: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    if cls.name in METHODS:
        raise ValueError(f"method {cls.name!r} registered twice")
    METHODS[cls.name] = cls
    return cls


def list_methods() -> list[str]:
    _load_all()
    return sorted(METHODS)


def _load_all() -> None:
    import quantsurvey.methods  # noqa: F401  (imports every method module, which registers it)


def build_config(name: str, section: Any) -> Any:
    """The method's validated config from its `compress.<name>` section."""
    _load_all()
    if name not in METHODS:
        close = difflib.get_close_matches(name, sorted(METHODS), n=1)
        hint = f" Did you mean 'compress.{close[0]}'?" if close else ""
        raise ConfigError(f"compress.{name}: {name!r} is not a registered compression method; "
                          f"registered: {', '.join(sorted(METHODS))}.{hint}")
    cls = METHODS[name].Config
    section = {} if section is True else section
    if not isinstance(section, dict):
        raise ConfigError(f"compress.{name} must be a mapping of its settings (or null), got "
                          f"{section!r}.")
    allowed = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in section if k not in allowed]
    if unknown:
        close = difflib.get_close_matches(unknown[0], allowed, n=1)
        hint = f" Did you mean 'compress.{name}.{close[0]}'?" if close else ""
        raise ConfigError(f"unknown config key 'compress.{name}.{unknown[0]}'; allowed keys "
                          f"under 'compress.{name}': {', '.join(allowed)}.{hint}")
    try:
        return cls(**section)
    except ValueError as err:
        raise ConfigError(f"compress.{name}: {err}") from None


def build_methods(compress: dict[str, Any] | None) -> list[Method]:
    """The stage's methods in config order; a null section means 'not this method'."""
    compress = {k: v for k, v in (compress or {}).items() if v is not None}
    configs = {name: build_config(name, section) for name, section in compress.items()}
    methods = [METHODS[name](config) for name, config in configs.items()]
    for i, m in enumerate(methods):
        missing = [r for r in m.requires if r not in compress or list(compress).index(r) > i]
        if missing:
            raise ConfigError(f"compress.{m.name} needs compress.{missing[0]} earlier in the "
                              f"same stage.")
    return methods


def canonical_compress(compress: dict[str, Any] | None) -> dict[str, Any] | None:
    """A recipe's meaningful content: null sections dropped, each section with its defaults
    filled in (a field or method added later does not make old recipes differ)."""
    out = {}
    for name, section in (compress or {}).items():
        if section is None:
            continue
        try:
            out[name] = dataclasses.asdict(build_config(name, section))
        except ConfigError:
            out[name] = section  # an old or foreign recipe: compare as written
    return out or None


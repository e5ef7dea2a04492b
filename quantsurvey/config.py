"""The run configuration's schema: every key a run accepts, its type, and the allowed values.

Hydra composes YAML; `validate_config` merges the result onto these dataclasses, so a typo in any
key, a value of the wrong type or an impossible value stops the run with one message that names
the key, before anything trains or is written.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from quantsurvey.errors import ConfigError

OPTIMIZERS = ("sgd", "adam", "adamax", "shift_adamax")
SCHEDULES = ("none", "step", "multistep", "exponential", "cosine", "linear")
MODES = ("train", "evaluate")
PRECISIONS = ("32-true", "32", "64-true", "64", "16-mixed", "16", "bf16-mixed", "bf16",
              "16-true", "bf16-true")
LOGGERS = ("csv", "wandb")
PROGRESS_BARS = ("auto", "rich", "tqdm", "none")


def _choice(key: str, value: Any, allowed: tuple[str, ...] | list[str]) -> None:
    if value not in allowed:
        close = difflib.get_close_matches(str(value), list(allowed), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{key}={value!r} is not allowed; choose one of: "
                          f"{', '.join(allowed)}.{hint}")


def _positive(key: str, value: float | int) -> None:
    if not value > 0:
        raise ConfigError(f"{key}={value!r} must be > 0.")


@dataclass
class DataConfig:
    name: str = "mnist"
    root: str = "./data"
    batch_size: int = 128
    eval_batch_size: int = 1000
    val_size: int = 5000
    split_seed: int = 0
    augment: str | None = None  # None: the data set's default
    pad: int = 2
    download: bool = True
    num_workers: int = 0
    params: dict[str, Any] = field(default_factory=dict)  # data-set specific

    def __post_init__(self) -> None:
        from quantsurvey.data import list_datasets

        _choice("data.name", self.name, list_datasets())
        _positive("data.batch_size", self.batch_size)
        _positive("data.eval_batch_size", self.eval_batch_size)
        _positive("data.val_size", self.val_size)
        if self.pad < 0 or self.num_workers < 0:
            raise ConfigError("data.pad and data.num_workers must be >= 0.")


@dataclass
class ModelConfig:
    name: str = "lenet300_100"
    setting_name: str = ""  # runs are filed as <setting_name>_<data.name>; default: name
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from quantsurvey.models import list_models

        _choice("model.name", self.name, list_models())
        self.setting_name = self.setting_name or self.name


@dataclass
class OptimConfig:
    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])

    def __post_init__(self) -> None:
        _choice("optim.name", self.name, OPTIMIZERS)
        _positive("optim.lr", self.lr)
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"optim.momentum={self.momentum} must be in [0, 1).")
        if self.weight_decay < 0:
            raise ConfigError(f"optim.weight_decay={self.weight_decay} must be >= 0.")
        if self.name == "shift_adamax" and self.weight_decay:
            raise ConfigError(f"optim.weight_decay={self.weight_decay}: shift_adamax (BinaryNet's "
                              f"Algorithm 4) has no weight decay; set it to 0.")


@dataclass
class SchedConfig:
    name: str = "none"
    step_size: int = 30  # step
    milestones: list[int] = field(default_factory=list)  # multistep
    gamma: float = 0.1  # step, multistep; exponential unless end_lr is set
    end_lr: float | None = None  # exponential, cosine, linear: the lr reached after max_epochs

    def __post_init__(self) -> None:
        _choice("sched.name", self.name, SCHEDULES)
        _positive("sched.gamma", self.gamma)
        _positive("sched.step_size", self.step_size)
        if self.end_lr is not None and self.end_lr < 0:
            raise ConfigError(f"sched.end_lr={self.end_lr} must be >= 0.")
        if self.name == "multistep" and not self.milestones:
            raise ConfigError("sched.milestones must list at least one epoch for multistep.")


@dataclass
class TrainerConfig:
    max_epochs: int = 10
    accelerator: str = "auto"
    devices: Any = "auto"
    # data parallel: "ddp" splits every batch over the processes of `devices` × `num_nodes`
    # (data.batch_size stays the global batch); "auto": one process
    strategy: str = "auto"
    num_nodes: int = 1
    sync_batchnorm: bool = False  # ddp: batch norm statistics over the global batch
    precision: str = "32-true"
    limit_train_batches: float = 1.0
    limit_val_batches: float = 1.0
    limit_test_batches: float = 1.0
    log_every_n_steps: int = 50
    gradient_clip_val: float | None = None
    # debug: > 0 trains and validates on the first N training batches of epoch 0, the same
    # batches every epoch (debug=overfit); never a reportable run
    overfit_batches: int = 0
    # debug: true caps every pipeline stage's own trainer.max_epochs at this (top-level) one, so
    # trainer=smoke / debug=fast / debug=limit stay short in stages that set their epochs
    cap_stage_epochs: bool = False
    progress_bar: str = "auto"  # auto: rich on a terminal, none when the output is a file
    # torch threads; null: $OMP_NUM_THREADS if set, else the cores this process may use ÷ the
    # jobs a parallel launcher runs at once (hydra.launcher.n_jobs; 1 for the sequential one)
    threads: int | None = None
    # true: deterministic algorithms only (a fixed seed gives the same metrics twice); "warn":
    # the same, except ops with no deterministic CUDA kernel (adaptive average pooling's
    # backward, in AlexNet, VGG-16 and SqueezeNet) run anyway with a warning; false: fastest
    deterministic: Any = True

    def __post_init__(self) -> None:
        _positive("trainer.max_epochs", self.max_epochs)
        if self.deterministic not in (True, False, "warn"):
            raise ConfigError(f"trainer.deterministic={self.deterministic!r} must be true, false "
                              f"or warn.")
        _choice("trainer.progress_bar", self.progress_bar, PROGRESS_BARS)
        _choice("trainer.accelerator", self.accelerator, ("auto", "cpu", "gpu", "cuda", "mps"))
        _choice("trainer.precision", str(self.precision), PRECISIONS)
        _choice("trainer.strategy", self.strategy, ("auto", "ddp"))
        _positive("trainer.num_nodes", self.num_nodes)
        if not isinstance(self.overfit_batches, int) or self.overfit_batches < 0:
            raise ConfigError(f"trainer.overfit_batches={self.overfit_batches!r} must be 0 (off) "
                              f"or a whole number of training batches >= 1.")
        if self.strategy == "auto" and self.num_nodes > 1:
            raise ConfigError(f"trainer.num_nodes={self.num_nodes} needs trainer.strategy=ddp "
                              f"(trainer=ddp).")
        for key in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
            value = getattr(self, key)
            if not (0 < value <= 1 or (value > 1 and float(value).is_integer())):
                raise ConfigError(f"trainer.{key}={value!r} must be a fraction in (0, 1] or a "
                                  f"whole number of batches >= 1.")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ConfigError(f"trainer.threads={self.threads!r} must be a whole number >= 1, or "
                              f"null for the cores available ÷ the jobs running at once.")
        if self.log_every_n_steps < 1:
            raise ConfigError(f"trainer.log_every_n_steps={self.log_every_n_steps} must be >= 1.")
        if self.gradient_clip_val is not None and self.gradient_clip_val < 0:
            raise ConfigError(f"trainer.gradient_clip_val={self.gradient_clip_val} must be >= 0.")
        import torch

        if self.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
            raise ConfigError(f"trainer.accelerator={self.accelerator} but no CUDA device is "
                              f"visible here; use trainer.accelerator=auto (or cpu).")
        if self.accelerator == "mps" and not torch.backends.mps.is_available():
            raise ConfigError("trainer.accelerator=mps but MPS is not available here; use "
                              "trainer.accelerator=auto (or cpu).")


@dataclass
class LoggerConfig:
    name: str = "csv"
    project: str = "quantsurvey"
    entity: str | None = None
    offline: bool = True  # W&B: offline unless the user turns it online
    group: str | None = None  # W&B group; None: the paper key (a pipeline: its experiment's)

    def __post_init__(self) -> None:
        _choice("logger.name", self.name, LOGGERS)


@dataclass
class CallbacksConfig:
    checkpoint: bool = True  # a checkpoint at every epoch end (last.ckpt), for resume
    lr_monitor: bool = True
    # clamp the latent weights of every transformed (quantized, masked, shared) layer to
    # [-clip_weights, clip_weights] after each optimiser step (BNN); null: no clipping
    clip_weights: float | None = None
    # log the methods' state (e.g. ADMM residuals) every n training steps; 0: never
    method_state_every_n_steps: int = 1

    def __post_init__(self) -> None:
        if self.clip_weights is not None:
            _positive("callbacks.clip_weights", self.clip_weights)
        if self.method_state_every_n_steps < 0:
            raise ConfigError(f"callbacks.method_state_every_n_steps="
                              f"{self.method_state_every_n_steps} must be >= 0.")


@dataclass
class PathsConfig:
    data_dir: str = "./data"
    output_dir: str = "./outputs"
    cache_dir: str = "./data/cache"
    results_dir: str = "./results"


@dataclass
class RunConfig:
    paper: str = "adhoc"  # paper key: W&B group, experiments/<paper>/
    setting: str = "adhoc"  # e.g. lenet5_mnist
    method: str = "float"  # float, pruned, deep_compression, ...
    stage: str = "float"  # W&B job_type
    name: str = "float"  # run-directory name under <output_dir>/<paper>/<setting>/
    budget: str = "custom"  # 'paper' when the paper's schedule is followed, else a short label
    seed: int = 0
    resume: bool = False
    loss: str = "cross_entropy"
    tags: list[str] = field(default_factory=list)
    report: bool = True  # whether this run's summary is a row of the results tables
    report_reason: str | None = None  # why not, when the command line changed the recipe
    mode: str = "train"  # train; evaluate: load init_from, apply the methods, test (no training)
    # a finished run's directory (its model.pt), a model.pt or .qsdc file, or a stage name
    init_from: str | None = None
    # registered method name → its settings (null: not used), applied in this order
    compress: dict[str, Any] = field(default_factory=dict)
    pipeline: dict[str, Any] = field(default_factory=dict)  # stage name → config overrides
    # the experiment's grid axes (dotted keys): sweeping them picks settings, not a new recipe
    grid: list[str] = field(default_factory=list)
    # the metrics a multirun's job returns to a Hydra sweeper (Optuna: one per direction)
    objective: list[str] = field(default_factory=lambda: ["val/err"])
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: SchedConfig = field(default_factory=SchedConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    callbacks: CallbacksConfig = field(default_factory=CallbacksConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)

    def __post_init__(self) -> None:
        from quantsurvey.losses import list_losses
        from quantsurvey.methods import build_methods

        _choice("loss", self.loss, list_losses())
        _choice("mode", self.mode, MODES)
        if not self.objective or not all(isinstance(n, str) and n for n in self.objective):
            raise ConfigError(f"objective={self.objective!r} must be a list of one or more metric "
                              f"names, e.g. [val/err] or [val/err, compress/ratio].")
        if self.mode == "evaluate" and not self.init_from:
            raise ConfigError("mode=evaluate needs init_from: a finished run's directory, a "
                              "stage's model.pt or an encoded .qsdc file.")
        for method in build_methods(self.compress):
            if getattr(method.config, "init_uniform", False) and self.init_from:
                raise ConfigError(f"compress.{method.name}.init_uniform draws new weights, which "
                                  f"would replace those loaded from init_from={self.init_from!r}:"
                                  f" set one of them, not both.")
        if self.seed < 0:
            raise ConfigError(f"seed={self.seed} must be >= 0.")


def validate_config(cfg: DictConfig | dict) -> RunConfig:
    """Check `cfg` against the schema; raise ConfigError naming the first bad key."""
    schema = OmegaConf.structured(RunConfig)
    try:
        merged = OmegaConf.merge(schema, cfg)
        return OmegaConf.to_object(merged)
    except ConfigKeyError as err:
        raise ConfigError(_unknown_key_message(err)) from None
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        first = str(err).splitlines()[0]
        raise ConfigError(f"config key {key!r}: {first}") from None
    except ConfigError:
        raise


def _unknown_key_message(err: ConfigKeyError) -> str:
    full_key = err.full_key or str(err.key)
    parent = full_key.rsplit(".", 1)[0] if "." in full_key else ""
    node: Any = OmegaConf.structured(RunConfig)
    for part in parent.split(".") if parent else []:
        node = node[part]
    allowed = sorted(node.keys())
    close = difflib.get_close_matches(str(err.key), allowed, n=1)
    hint = f" Did you mean {(parent + '.' if parent else '') + close[0]!r}?" if close else ""
    where = f"under {parent!r}" if parent else "at the top level"
    return (f"unknown config key {full_key!r}; allowed keys {where}: {', '.join(allowed)}."
            f"{hint}")


# config fields whose value is a free mapping: anything below them is checked elsewhere (the
# methods' configs, the pipeline's stages) or by the factory that receives it (params)
_FREE = ("compress", "pipeline", "data.params", "model.params")


def check_key(full_key: str) -> None:
    """Raise the documented unknown-key message if dotted `full_key` is not in the schema.

    Below `compress.<method>` the method's config fields are checked; below
    `pipeline.<stage>` the rest is checked like a top-level key."""
    parts = full_key.split(".")
    if parts[0] == "pipeline" and len(parts) > 2:
        try:
            return check_key(".".join(parts[2:]))
        except ConfigError as err:
            raise ConfigError(f"pipeline stage {parts[1]!r}: {err}") from None
    if parts[0] == "compress" and len(parts) > 2:
        return _check_method_key(parts)
    node: Any = OmegaConf.structured(RunConfig)
    for i, part in enumerate(parts):
        prefix = ".".join(parts[:i])
        if prefix in _FREE:
            return None
        if not isinstance(node, DictConfig) or part not in node:
            allowed = sorted(node.keys()) if isinstance(node, DictConfig) else []
            close = difflib.get_close_matches(part, allowed, n=1)
            hint = f" Did you mean {(prefix + '.' if prefix else '') + close[0]!r}?" if close \
                else ""
            where = f"under {prefix!r}" if prefix else "at the top level"
            raise ConfigError(f"unknown config key {full_key!r}; allowed keys {where}: "
                              f"{', '.join(allowed)}.{hint}")
        node = node[part]
    return None


def _check_method_key(parts: list[str]) -> None:
    import dataclasses

    from quantsurvey.methods import METHODS, build_config, list_methods

    if parts[1] not in list_methods():
        build_config(parts[1], {})  # raises the unknown-method message
    fields = [f.name for f in dataclasses.fields(METHODS[parts[1]].Config)]
    if parts[2] not in fields:
        close = difflib.get_close_matches(parts[2], fields, n=1)
        hint = f" Did you mean 'compress.{parts[1]}.{close[0]}'?" if close else ""
        raise ConfigError(f"unknown config key 'compress.{parts[1]}.{parts[2]}'; allowed keys "
                          f"under 'compress.{parts[1]}': {', '.join(fields)}.{hint}")

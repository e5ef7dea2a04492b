"""Fixed point on the seam: `fixed_point` (Lin, Talathi, Annapureddy 2016; Anwar, Hwang, Sung
2015) and `fixed_point_allocated` (Lin et al.'s cross-layer bit allocation, Eq. 18).

    compress.fixed_point: {weight_bits: {conv: 4, fc: 8}, input_bits: 8, output_bits: float,
                           weight_step: sqnr, act_step: sqnr, distribution: gaussian,
                           power_of_two: true, zero_level: true, rounding: nearest,
                           act_signed: true, calibration_batches: 10}

Bit-widths: one integer for every Conv2d / Linear layer, `float` (unquantized), or a mapping
{layer name | conv | fc: bits | float} (a name wins over its type; unnamed layers stay float).
`input_bits` / `output_bits` quantize each layer's input / output.

Steps (fixed once, before training, from the float model):
- `sqnr` (Lin et al. §3.2): s = σ·S(β), σ the tensor's std (weights: the layer's weight;
  activations: a calibration pass over `calibration_batches` training batches), S(β) the
  MSE-optimal step of the unit-variance `distribution` (`compress.optimal_quantizer`);
- `l2` (weights only; Anwar et al.): the step minimising ‖w − Q(w)‖² for this layer;
- `max`: the range covers max |x| (s = max|x| / 2^(b−1)).
`act_signed`: `true` (signed activation codes), `false` (unsigned codes 0 … 2^b − 1: every level
for a non-negative input such as a ReLU's output, where the signed range leaves half unused) or
`auto` (unsigned for each quantized input / output whose calibrated minimum is ≥ 0). An unsigned
b-bit quantizer is the non-negative half of a signed (b+1)-bit one with the same step, so its
step is that one's: `sqnr` takes S(b+1) and σ = sqrt(2·E[x²]) (the std of the symmetric variable
whose rectification x is), `max` takes max|x| / 2^b.
`power_of_two: true` rounds the step to 2^−n (n fractional bits; for `l2` the better of the two
neighbouring powers). Training fine-tunes float shadow weights through the quantizers
(straight-through gradients). After training the model is written as `model.qsdc` (b bits per
weight, the steps, the activation quantizers), read back, checked to compute the same outputs,
and tested from that file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from quantsurvey.atomic_io import write_json_atomic
from quantsurvey.compress.fixed_point import (
    ROUNDINGS,
    check_bits,
    l2_optimal_step,
    power_of_two_step,
    quantization_mse,
)
from quantsurvey.compress.optimal_quantizer import DISTRIBUTIONS, optimal_step
from quantsurvey.compress.sqnr import allocate_bits
from quantsurvey.errors import ConfigError
from quantsurvey.export import export_fixed_point, load_checked
from quantsurvey.methods.base import Method, StageContext, register_method
from quantsurvey.nn.calibration import collect_statistics
from quantsurvey.nn.fixed_point import FixedPointQuantizer, FixedPointWeight
from quantsurvey.nn.layers import resolve_per_layer, weight_layers
from quantsurvey.nn.quant import (
    add_weight_transform,
    find_transform,
    latent_weight,
    set_input_quantizer,
    set_output_quantizer,
    strip_transforms,
)

ENCODED = "model.qsdc"
CALIBRATION = "calibration.json"
WEIGHT_STEPS = ("sqnr", "l2", "max")
ACT_STEPS = ("sqnr", "max")


def _check_bits_setting(value: Any, key: str) -> None:
    items = value.items() if isinstance(value, dict) else [(None, value)]
    for name, bits in items:
        where = f"{key}.{name}" if name is not None else key
        if bits == "float":
            continue
        check_bits(bits, where)


@dataclass(frozen=True)
class _Common:
    """Settings shared by `fixed_point` and `fixed_point_allocated` (see the module doc)."""

    input_bits: Any = "float"
    output_bits: Any = "float"
    weight_step: str = "sqnr"
    act_step: str = "sqnr"
    distribution: str = "gaussian"
    power_of_two: bool = True
    zero_level: bool = True
    rounding: str = "nearest"
    act_signed: Any = True
    calibration_batches: int = 10

    def __post_init__(self) -> None:
        _check_bits_setting(self.input_bits, "input_bits")
        _check_bits_setting(self.output_bits, "output_bits")
        for key, value, allowed in (("weight_step", self.weight_step, WEIGHT_STEPS),
                                    ("act_step", self.act_step, ACT_STEPS),
                                    ("distribution", self.distribution, DISTRIBUTIONS),
                                    ("rounding", self.rounding, ROUNDINGS)):
            if value not in allowed:
                raise ValueError(f"{key}={value!r} is not allowed; choose one of: "
                                 f"{', '.join(allowed)}.")
        for key in ("power_of_two", "zero_level"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"{key}={getattr(self, key)!r}: choose true or false.")
        if not isinstance(self.act_signed, bool) and self.act_signed != "auto":
            raise ValueError(f"act_signed={self.act_signed!r}: choose true, false or auto.")
        if isinstance(self.calibration_batches, bool) or not isinstance(
                self.calibration_batches, int) or self.calibration_batches < 1:
            raise ValueError(f"calibration_batches={self.calibration_batches!r} must be an "
                             f"integer ≥ 1 (training batches the activation statistics come "
                             f"from).")


@dataclass(frozen=True)
class FixedPointConfig(_Common):
    weight_bits: Any = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_bits_setting(self.weight_bits, "weight_bits")


@dataclass(frozen=True)
class AllocatedFixedPointConfig(_Common):
    """Weight bits by Lin et al. Eq. 18 over every Conv2d / Linear layer: the layer with the
    most parameters gets `anchor_bits`, layer i gets anchor + (10/κ)·log10(ρ_max/ρ_i),
    rounded and clipped to [min_bits, max_bits]."""

    anchor_bits: int = 4
    kappa: float = 6.02
    min_bits: int = 1
    max_bits: int = 16
    layers: list = field(default_factory=lambda: ["conv", "fc"])

    def __post_init__(self) -> None:
        super().__post_init__()
        check_bits(self.anchor_bits, "anchor_bits")
        check_bits(self.min_bits, "min_bits")
        check_bits(self.max_bits, "max_bits")
        if self.min_bits > self.max_bits:
            raise ValueError(f"min_bits={self.min_bits} is above max_bits={self.max_bits}.")
        if isinstance(self.kappa, bool) or not isinstance(self.kappa, int | float) or \
                not (math.isfinite(self.kappa) and self.kappa > 0):
            raise ValueError(f"kappa={self.kappa!r} must be a positive number of dB per bit "
                             f"(Lin et al.: ≈ 6 for uniform, ≈ 5 for Gaussian inputs).")


def _per_layer(model: nn.Module, value: Any, key: str) -> dict[str, int]:
    """{layer: bits} for the layers quantized by `value` (float ones left out)."""
    resolved = resolve_per_layer(model, value if isinstance(value, dict)
                                 else {"conv": value, "fc": value}, key)
    return {n: b for n, b in resolved.items() if b != "float"}


def _step(std: float, max_abs: float, bits: int, rule: str, cfg: _Common,
          tensor: torch.Tensor | None = None, signed: bool = True, mean: float = 0.0) -> float:
    if rule == "l2":
        free = l2_optimal_step(tensor, bits, cfg.zero_level)
        if not cfg.power_of_two:
            return free
        low = 2.0 ** math.floor(math.log2(free))
        return min((low, 2 * low), key=lambda s: quantization_mse(tensor, s, bits,
                                                                    cfg.zero_level))
    if not signed:  # the non-negative half of a signed (b+1)-bit quantizer (module doc)
        std, bits = math.sqrt(2 * (std * std + mean * mean)), bits + 1
    if rule == "sqnr":
        step = std * optimal_step(bits, cfg.distribution, cfg.zero_level)
    else:
        step = max_abs / (1 << (bits - 1))
    if not step > 0:
        step = 1.0  # an all-zero tensor: any step represents it exactly
    return power_of_two_step(step)[0] if cfg.power_of_two else step


class _FixedPoint(Method):
    def weight_bits(self, model: nn.Module) -> dict[str, int]:
        raise NotImplementedError

    def _plan(self, model: nn.Module) -> dict[str, dict[str, int]]:
        key = f"compress.{self.name}"
        return {"weight": self.weight_bits(model),
                "input": _per_layer(model, self.config.input_bits, f"{key}.input_bits"),
                "output": _per_layer(model, self.config.output_bits, f"{key}.output_bits")}

    def check(self, model: nn.Module) -> None:
        self._plan(model)

    def before_training(self, model: nn.Module, ctx: StageContext) -> dict[str, Any]:
        cfg, plan = self.config, self._plan(model)
        layers = weight_layers(model)
        stats = None
        if plan["input"] or plan["output"]:
            key = ("calibration", cfg.calibration_batches)
            if key not in ctx.memo:
                ctx.memo[key] = collect_statistics(model,
                                                   ctx.train_batches(cfg.calibration_batches))
            stats = ctx.memo[key]
            # written with the export: nothing may be written before the run holds its directory
            self.calibration = {n: {k: v.as_dict() for k, v in s.items()}
                                for n, s in stats.items()}
        record: dict[str, dict[str, Any]] = {}
        for index, (name, layer) in enumerate(layers.items()):
            entry: dict[str, Any] = {}
            if name in plan["weight"]:
                strip_transforms(layer)  # fold an earlier stage's transforms in
                w = layer.weight.detach()
                bits = plan["weight"][name]
                step = _step(float(w.double().std(unbiased=False)), float(w.abs().max()), bits,
                             cfg.weight_step, cfg, w)
                add_weight_transform(layer, FixedPointWeight(
                    bits, step, cfg.zero_level, cfg.rounding, seed=ctx.seed * 1009 + index)
                    .to(w.device))
                entry["weight"] = {"bits": bits, "step": step}
            for kind, setter in (("input", set_input_quantizer), ("output", set_output_quantizer)):
                if name in plan[kind]:
                    s, bits = stats[name][kind], plan[kind][name]
                    signed = (cfg.act_signed if isinstance(cfg.act_signed, bool)
                              else s.minimum < 0)
                    step = _step(s.std, s.max_abs, bits, cfg.act_step, cfg, signed=signed,
                                 mean=s.mean)
                    setter(layer, FixedPointQuantizer(
                        bits, step, cfg.zero_level, cfg.rounding,
                        seed=ctx.seed * 1009 + index + (500 if kind == "output" else 250),
                        signed=signed))
                    entry[kind] = {"bits": bits, "step": step, "signed": signed,
                                   "std": s.std, "max_abs": s.max_abs}
            if entry:
                record[name] = entry
        return {f"{self.name}_layers": record}

    def after_training(self, model: nn.Module, ctx: StageContext
                       ) -> tuple[nn.Module, dict[str, Any], dict[str, float]]:
        if getattr(self, "calibration", None):
            write_json_atomic(ctx.run_dir / CALIBRATION, self.calibration)
        path = ctx.run_dir / ENCODED
        report = export_fixed_point(model, path, ctx.model_info)
        decoded, checked, metrics = load_checked(model, path, ctx.probe())
        total = bits = 0
        for layer in weight_layers(model).values():
            n = latent_weight(layer).numel()
            transform = find_transform(layer, FixedPointWeight)
            total, bits = total + n, bits + n * (transform.bits if transform else 32)
        metrics["compress/bits_per_weight"] = bits / max(total, 1)
        metrics["compress/weight_bytes"] = float(report["weight_bytes"])
        return decoded, {"encoded": {**report, **checked}}, metrics


@register_method
class FixedPoint(_FixedPoint):
    name = "fixed_point"
    Config = FixedPointConfig

    def weight_bits(self, model: nn.Module) -> dict[str, int]:
        return _per_layer(model, self.config.weight_bits, f"compress.{self.name}.weight_bits")


@register_method
class AllocatedFixedPoint(_FixedPoint):
    name = "fixed_point_allocated"
    Config = AllocatedFixedPointConfig

    def weight_bits(self, model: nn.Module) -> dict[str, int]:
        cfg = self.config
        layers = weight_layers(model)
        chosen = resolve_per_layer(model, {k: True for k in cfg.layers},
                                   f"compress.{self.name}.layers")
        if not chosen:
            raise ConfigError(f"compress.{self.name}.layers selects no layer of this model.")
        params = {n: layers[n].weight.numel() for n in chosen}
        return allocate_bits(params, cfg.anchor_bits, cfg.kappa, cfg.min_bits, cfg.max_bits)


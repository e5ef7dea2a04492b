"""Binary networks on the seam: `bnn` (Courbariaux, Hubara et al. 2016), `bwn` and `xnor`
(Rastegari et al. 2016).

    compress.bnn:  {weights: all, inputs: all_but_first, stochastic: false, clip: 1.0,
                    lr_scale: true}
    compress.bwn:  {weights: inner}
    compress.xnor: {weights: inner, input_scale: true}

`weights` / `inputs`: which Conv2d / Linear layers get binary weights / binary inputs: `all`,
`inner` (all but the model's first and last), `all_but_first`, or a list of names (`conv` /
`fc` for a type). BNN binarizes every weight and every input but the first layer's (real pixels);
a binary input to the first layer, or binary weights in the first / last layer of BWN / XNOR
(which keep them in float), needs `binarize_first_last: true`.

- bnn: w ↦ sign(w), inputs ↦ sign(x) (stochastic optional), straight-through gradients cancelled
  where |x| > 1; latent weights clipped to [−clip, clip] after every optimiser step; with
  `lr_scale` each binary layer's learning rate is scaled by 1/sqrt(1.5/(fan_in + fan_out));
  `init_uniform` draws the binary layers' latent weights from U(−clip, clip) before training,
  as BinaryNet's code does (W ~ Uniform(−H, H), H = 1), for a stage trained from scratch.
- bwn: w ↦ α·sign(w), α = mean |w| per output filter; inputs real.
- xnor: w ↦ α·sign(w) and inputs ↦ sign(x) for the same layers, the output multiplied by K (the
  paper's input scale; `input_scale: false` gives the authors' code, which omits it).
After training the model is written as `model.qsdc` (1 bit per binary weight, α per filter
where scaled, the rest float32), read back, checked to compute the same outputs, and tested from
that file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from quantsurvey.compress.binary import bnn_lr_scale
from quantsurvey.errors import ConfigError
from quantsurvey.export import export_binary, load_checked
from quantsurvey.methods.base import Method, StageContext, register_method
from quantsurvey.nn.binary import BinaryActivation, BinaryWeight, attach_input_scale
from quantsurvey.nn.layers import LAYER_TYPES, weight_layers
from quantsurvey.nn.quant import (
    add_weight_transform,
    find_transform,
    latent_weight,
    set_input_quantizer,
    strip_transforms,
)

ENCODED = "model.qsdc"
CHOICES = ("all", "inner", "all_but_first")


def _check_layers(value: Any, key: str) -> None:
    if value in CHOICES or value == "none":
        return
    if isinstance(value, list | tuple) and value and all(isinstance(n, str) for n in value):
        return
    raise ValueError(f"{key}={value!r}: choose one of {', '.join(CHOICES)}, none, or a list of "
                     f"layer names ('conv' / 'fc' for a type).")


@dataclass(frozen=True)
class BinaryConfig:
    weights: Any = "all"
    inputs: Any = "all_but_first"
    stochastic: bool = False
    clip: float | None = 1.0
    lr_scale: bool = True
    input_scale: bool = True
    binarize_first_last: bool = False
    init_uniform: bool = False

    def __post_init__(self) -> None:
        _check_layers(self.weights, "weights")
        _check_layers(self.inputs, "inputs")
        for key in ("stochastic", "lr_scale", "input_scale", "binarize_first_last",
                    "init_uniform"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"{key}={getattr(self, key)!r}: choose true or false.")
        if self.clip is not None and not (isinstance(self.clip, int | float)
                                          and not isinstance(self.clip, bool)
                                          and math.isfinite(self.clip) and self.clip > 0):
            raise ValueError(f"clip={self.clip!r} must be a positive number (or null).")
        if self.init_uniform and self.clip is None:
            raise ValueError("init_uniform draws the latent weights from U(-clip, clip): give "
                             "clip a positive number (BinaryNet: 1.0).")


@dataclass(frozen=True)
class BWNConfig(BinaryConfig):
    weights: Any = "inner"
    inputs: Any = "none"
    clip: float | None = None
    lr_scale: bool = False


@dataclass(frozen=True)
class XNORConfig(BinaryConfig):
    weights: Any = "inner"
    inputs: Any = "inner"
    clip: float | None = None
    lr_scale: bool = False


def select_layers(model: nn.Module, value: Any, key: str) -> list[str]:
    layers = weight_layers(model)
    names = list(layers)
    if value == "none":
        return []
    if value == "all":
        return names
    if value == "inner":
        return names[1:-1]
    if value == "all_but_first":
        return names[1:]
    unknown = [n for n in value if n not in layers and n not in LAYER_TYPES]
    if unknown:
        raise ConfigError(f"{key}: {unknown[0]!r} is not a layer of this model; layers: "
                          f"{', '.join(names)} (or 'conv' / 'fc', or {', '.join(CHOICES)}).")
    return [n for n in names if n in value
            or any(k in value and isinstance(layers[n], t) for k, t in LAYER_TYPES.items())]


class _Binary(Method):
    scaled_weights: bool
    explicit_edges: tuple[str, ...]  # which of weights / inputs may not touch first / last

    def _plan(self, model: nn.Module) -> tuple[list[str], list[str]]:
        key = f"compress.{self.name}"
        weights = select_layers(model, self.config.weights, f"{key}.weights")
        inputs = select_layers(model, self.config.inputs, f"{key}.inputs")
        names = list(weight_layers(model))
        if not self.config.binarize_first_last:
            if names[0] in inputs:
                raise ConfigError(f"{key}.inputs binarizes the first layer's input "
                                  f"({names[0]!r}: the real pixels, which every binary network "
                                  f"here keeps real). Set {key}.binarize_first_last=true to do "
                                  f"it knowingly.")
            if "weights" in self.explicit_edges:
                edges = [n for n in (names[0], names[-1]) if n in weights]
                if edges:
                    raise ConfigError(f"{key}.weights includes {edges[0]!r}, the model's first "
                                      f"or last layer, which {self.name} keeps in float. Set "
                                      f"{key}.binarize_first_last=true to do it knowingly.")
        return weights, inputs

    def check(self, model: nn.Module) -> None:
        self._plan(model)

    def before_training(self, model: nn.Module, ctx: StageContext) -> dict[str, Any]:
        weights, inputs = self._plan(model)
        layers = weight_layers(model)
        draws = ctx.generator()
        for index, name in enumerate(layers):
            layer = layers[name]
            if name in weights:
                strip_transforms(layer)
                if self.config.init_uniform:  # BinaryNet's code: W ~ U(-H, H), H = 1
                    with torch.no_grad():
                        layer.weight.copy_(torch.empty_like(layer.weight, device="cpu").uniform_(
                            -self.config.clip, self.config.clip, generator=draws))
                add_weight_transform(layer, BinaryWeight(
                    self.scaled_weights, self.config.stochastic, seed=ctx.seed * 1009 + index))
            if name in inputs:
                if self.name == "xnor" and self.config.input_scale:
                    attach_input_scale(layer)
                set_input_quantizer(layer, BinaryActivation(
                    self.config.stochastic, seed=ctx.seed * 1009 + 500 + index))
        return {f"{self.name}_weights": weights, f"{self.name}_inputs": inputs}

    def _binary_layers(self, model: nn.Module) -> dict[str, nn.Module]:
        return {n: layer for n, layer in weight_layers(model).items()
                if find_transform(layer, BinaryWeight) is not None}

    def after_optimizer_step(self, model: nn.Module) -> None:
        if self.config.clip is None:
            return
        with torch.no_grad():
            for layer in self._binary_layers(model).values():
                latent_weight(layer).clamp_(-self.config.clip, self.config.clip)

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]] | None:
        """BinaryNet's per-layer learning-rate scale (its code's W_LR_scale)."""
        if not self.config.lr_scale:
            return None
        groups = []
        for layer in self._binary_layers(model).values():
            w = latent_weight(layer)
            receptive = math.prod(w.shape[2:]) if w.dim() > 2 else 1
            scale = bnn_lr_scale(w.shape[1] * receptive, w.shape[0] * receptive)
            groups.append({"params": [w], "lr_scale": scale})
        return groups

    def after_training(self, model: nn.Module, ctx: StageContext
                       ) -> tuple[nn.Module, dict[str, Any], dict[str, float]]:
        path = ctx.run_dir / ENCODED
        report = export_binary(model, path, ctx.model_info)
        decoded, checked, metrics = load_checked(model, path, ctx.probe())
        metrics["compress/weight_bytes"] = float(report["weight_bytes"])
        return decoded, {"encoded": {**report, **checked}}, metrics


@register_method
class BinarizedNetwork(_Binary):
    name = "bnn"
    Config = BinaryConfig
    scaled_weights = False
    explicit_edges = ()


@register_method
class BinaryWeightNetwork(_Binary):
    name = "bwn"
    Config = BWNConfig
    scaled_weights = True
    explicit_edges = ("weights",)


@register_method
class XNORNetwork(_Binary):
    name = "xnor"
    Config = XNORConfig
    scaled_weights = True
    explicit_edges = ("weights",)

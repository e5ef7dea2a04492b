"""Ternary weights on the seam: `ttq` (Zhu, Han, Mao, Dally 2017, trained ternary quantization)
and `ternary_fixed_scale` (the ablation: same threshold, one untrained scale α = mean kept |w|).

    compress.ttq: {t: 0.05, layers: inner, quantize_first_last: false, scale_init: one}

`layers`: `inner` (every conv / fc layer but the model's first and last, which the paper keeps
in float) or a list of layer names / `conv` / `fc`. Naming the first or last layer needs
`quantize_first_last: true`. After training the model is written as `model.qsdc` (2 bits per
ternary weight plus the two float32 scales per layer, every other tensor as float32), read back,
checked to compute the same outputs, and tested from that file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from quantsurvey.errors import ConfigError
from quantsurvey.export import export_ternary, load_checked
from quantsurvey.methods.base import Method, StageContext, register_method
from quantsurvey.nn.layers import LAYER_TYPES, weight_layers
from quantsurvey.nn.quant import (
    add_weight_transform,
    find_transform,
    latent_weight,
    strip_transforms,
)
from quantsurvey.nn.ternary import (
    SCALE_INITS,
    FixedScaleTernary,
    TrainedTernary,
    initial_scales,
    ternary_codes,
)

ENCODED = "model.qsdc"


@dataclass(frozen=True)
class TernaryConfig:
    """t: threshold Δ = t·max|w| (Zhu et al. Eq. 6, 0.05 in the paper); layers: `inner` or
    names; quantize_first_last: allow the first / last layer; scale_init: `one` (the authors'
    code) or `mean` (mean |w| of each side's kept weights); used by `ttq` only."""

    t: float = 0.05
    layers: Any = "inner"
    quantize_first_last: bool = False
    scale_init: str = "one"

    def __post_init__(self) -> None:
        if isinstance(self.t, bool) or not isinstance(self.t, int | float) or not 0 < self.t < 1:
            raise ValueError(f"t={self.t!r} must be a number strictly between 0 and 1 (the "
                             f"threshold is t·max|w|; the paper uses 0.05).")
        if self.layers != "inner" and not (isinstance(self.layers, list | tuple) and self.layers
                                           and all(isinstance(n, str) for n in self.layers)):
            raise ValueError(f"layers={self.layers!r}: choose 'inner' (all but the first and "
                             f"last layer) or a list of layer names ('conv' / 'fc' for a type).")
        if not isinstance(self.quantize_first_last, bool):
            raise ValueError(f"quantize_first_last={self.quantize_first_last!r}: choose true "
                             f"or false.")
        if self.scale_init not in SCALE_INITS:
            raise ValueError(f"scale_init={self.scale_init!r} is not allowed; choose one of: "
                             f"{', '.join(SCALE_INITS)}.")


def ternary_layer_names(model: nn.Module, cfg: TernaryConfig, key: str) -> list[str]:
    """The layers to ternarize, in definition order; ConfigError for an unknown name, or for
    the first / last layer unless `quantize_first_last` is set."""
    layers = weight_layers(model)
    names = list(layers)
    if cfg.layers == "inner":
        if len(names) < 3:
            raise ConfigError(f"{key}.layers=inner: this model has {len(names)} weight layers, "
                              f"so none lies between the first and the last; name the layers "
                              f"(and set {key}.quantize_first_last=true for those two).")
        return names[1:-1]
    unknown = [n for n in cfg.layers if n not in layers and n not in LAYER_TYPES]
    if unknown:
        raise ConfigError(f"{key}.layers: {unknown[0]!r} is not a layer of this model; layers: "
                          f"{', '.join(names)} (or 'conv' / 'fc' for all of a type, or 'inner').")
    chosen = [n for n in names if n in cfg.layers
              or any(k in cfg.layers and isinstance(layers[n], t) for k, t in LAYER_TYPES.items())]
    edges = [n for n in (names[0], names[-1]) if n in chosen]
    if edges and not cfg.quantize_first_last:
        which = "first" if edges[0] == names[0] else "last"
        raise ConfigError(f"{key}.layers includes the model's {which} layer {edges[0]!r}, which "
                          f"Zhu et al. keep in float. Set {key}.quantize_first_last=true to "
                          f"ternarize it knowingly, or use layers: inner.")
    return chosen


class _Ternary(Method):
    """Shared by both methods: attach the transform, log sparsity and scales, export."""

    Config = TernaryConfig

    def _names(self, model: nn.Module) -> list[str]:
        return ternary_layer_names(model, self.config, f"compress.{self.name}")

    def make_transform(self, weight: torch.Tensor) -> nn.Module:
        raise NotImplementedError

    def check(self, model: nn.Module) -> None:
        self._names(model)

    def before_training(self, model: nn.Module, ctx: StageContext) -> dict[str, Any]:
        layers = weight_layers(model)
        names = self._names(model)
        for name in names:
            strip_transforms(layers[name])  # fold an earlier stage's transforms in
            add_weight_transform(layers[name], self.make_transform(layers[name].weight.detach()))
        return {f"{self.name}_layers": names, f"{self.name}_t": self.config.t}

    def _state(self, model: nn.Module) -> dict[str, tuple[torch.Tensor, float, float]]:
        """{layer: (codes, W_p, W_n)} as the forward pass uses them."""
        out = {}
        for name, layer in weight_layers(model).items():
            transform = find_transform(layer, (TrainedTernary, FixedScaleTernary))
            if transform is not None:
                latent = latent_weight(layer).detach()
                out[name] = (ternary_codes(latent, transform.threshold),
                             *transform.scales(latent))
        return out

    def state_to_log(self, model: nn.Module) -> dict[str, float]:
        logged = {}
        for name, (codes, w_p, w_n) in self._state(model).items():
            logged[f"{name}/zero_pct"] = 100.0 * (codes == 0).float().mean().item()
            logged[f"{name}/w_p"], logged[f"{name}/w_n"] = w_p, w_n
        return logged

    def after_training(self, model: nn.Module, ctx: StageContext
                       ) -> tuple[nn.Module, dict[str, Any], dict[str, float]]:
        state = self._state(model)
        path = ctx.run_dir / ENCODED
        report = export_ternary(model, path, ctx.model_info, state)
        decoded, checked, metrics = load_checked(model, path, ctx.probe())
        zeros = sum(int((c == 0).sum()) for c, _, _ in state.values())
        total = sum(c.numel() for c, _, _ in state.values())
        metrics["compress/ternary_zero_pct"] = 100.0 * zeros / max(total, 1)
        return decoded, {"encoded": {**report, **checked}}, metrics


@register_method
class TrainedTernaryQuantization(_Ternary):
    name = "ttq"

    def make_transform(self, weight: torch.Tensor) -> nn.Module:
        w_p, w_n = initial_scales(weight, self.config.t, self.config.scale_init)
        return TrainedTernary(self.config.t, w_p, w_n).to(weight.device, weight.dtype)

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        """W_p and W_n without weight decay (two scalars per layer; decaying them would pull
        every weight of the layer towards zero)."""
        scales = [p for layer in weight_layers(model).values()
                  if (t := find_transform(layer, TrainedTernary)) is not None
                  for p in (t.w_p, t.w_n)]
        return [{"params": scales, "weight_decay": 0.0}] if scales else []


@register_method
class FixedScaleTernaryQuantization(_Ternary):
    name = "ternary_fixed_scale"

    def make_transform(self, weight: torch.Tensor) -> nn.Module:
        return FixedScaleTernary(self.config.t)


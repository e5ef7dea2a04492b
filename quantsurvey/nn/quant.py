"""The one way a compression method enters a layer.

Every Conv2d / Linear can carry, each with its own state:
- weight transforms (`WeightTransform`), registered through `torch.nn.utils.parametrize` on the
  layer's `weight`: the layer keeps its latent float weight
  (`<layer>.parametrizations.weight.original`, never overwritten by a transform) and `layer.weight`
  is that weight passed through the transforms in order (a mask, a shared codebook, fixed point,
  sign, ternary, …);
- an input quantizer (any nn.Module mapping a tensor to a tensor), applied to the layer's input by
  a forward pre-hook and stored as the submodule `<layer>.input_quantizer`, and likewise an
  output quantizer (a forward hook, `<layer>.output_quantizer`).

Code that needs the effective weight, the kept positions or the stored form asks through the
functions here (`effective_weight`, `kept_mask`, `find_transform`, `plain_state_dict`), never by
probing a layer's attributes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from quantsurvey.nn.layers import weight_layers


class WeightTransform(nn.Module):
    """Base of every weight transform: `forward(weight) -> effective weight`.

    `replaces_weight`: the effective weight no longer reads the latent one (a shared codebook);
    the latent weight is then frozen so that no optimiser or regulariser touches it.
    """

    replaces_weight = False

    def kept(self) -> torch.Tensor | None:
        """Boolean map of the positions this transform keeps (None: it prunes nothing)."""
        return None


def add_weight_transform(layer: nn.Module, transform: WeightTransform) -> None:
    """Append `transform` to the layer's weight transforms."""
    parametrize.register_parametrization(layer, "weight", transform, unsafe=True)
    if transform.replaces_weight:
        latent_weight(layer).requires_grad_(False)


def weight_transforms(layer: nn.Module) -> list[WeightTransform]:
    if not parametrize.is_parametrized(layer, "weight"):
        return []
    return list(layer.parametrizations.weight)


def find_transform(layer: nn.Module, kind: type[WeightTransform]) -> WeightTransform | None:
    """The layer's last transform of type `kind`, or None."""
    found = [t for t in weight_transforms(layer) if isinstance(t, kind)]
    return found[-1] if found else None


def latent_weight(layer: nn.Module) -> torch.Tensor:
    """The float weight the optimiser trains (the transforms' input)."""
    if parametrize.is_parametrized(layer, "weight"):
        return layer.parametrizations.weight.original
    return layer.weight


def effective_weight(layer: nn.Module) -> torch.Tensor:
    """The weight a forward pass uses: the latent weight through every transform."""
    return layer.weight


def kept_mask(layer: nn.Module) -> torch.Tensor | None:
    """Positions kept by the layer's transforms (their intersection); None if none prunes."""
    masks = [m for t in weight_transforms(layer) if (m := t.kept()) is not None]
    if not masks:
        return None
    out = masks[0]
    for m in masks[1:]:
        out = out & m
    return out


def strip_transforms(layer: nn.Module) -> None:
    """Fold the transforms into a plain weight (the effective one) and drop them."""
    if parametrize.is_parametrized(layer, "weight"):
        parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
        layer.weight.requires_grad_(True)


def _quantize_input(layer: nn.Module, inputs: tuple) -> tuple:
    quantizer = layer._modules.get("input_quantizer")
    if quantizer is None:
        return inputs
    return (quantizer(inputs[0]), *inputs[1:])


def _set_quantizer(layer: nn.Module, slot: str, quantizer: nn.Module | None) -> None:
    """Put `quantizer` in the layer's `slot` (None empties it); the slot's hook is registered
    once per layer and reads the slot at every call."""
    if quantizer is None:
        layer._modules.pop(slot, None)
        return
    hooked = layer.__dict__.setdefault("_quantizer_hooks", set())
    if slot not in hooked:
        if slot == "input_quantizer":
            layer.register_forward_pre_hook(_quantize_input)
        else:
            layer.register_forward_hook(_quantize_output)
        hooked.add(slot)
    setattr(layer, slot, quantizer)


def set_input_quantizer(layer: nn.Module, quantizer: nn.Module | None) -> None:
    """Quantize the layer's input with `quantizer` (None removes it)."""
    _set_quantizer(layer, "input_quantizer", quantizer)


def input_quantizer(layer: nn.Module) -> nn.Module | None:
    return layer._modules.get("input_quantizer")


def _quantize_output(layer: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
    quantizer = layer._modules.get("output_quantizer")
    return output if quantizer is None else quantizer(output)


def set_output_quantizer(layer: nn.Module, quantizer: nn.Module | None) -> None:
    """Quantize the layer's output with `quantizer` (None removes it)."""
    _set_quantizer(layer, "output_quantizer", quantizer)


def output_quantizer(layer: nn.Module) -> nn.Module | None:
    return layer._modules.get("output_quantizer")


def is_quantized(layer: nn.Module) -> bool:
    return bool(weight_transforms(layer)) or input_quantizer(layer) is not None \
        or output_quantizer(layer) is not None


def _transform_params(model: nn.Module) -> set[int]:
    """ids of the weight layers' latent weights and their transforms' parameters."""
    ids = set()
    for layer in weight_layers(model).values():
        if parametrize.is_parametrized(layer, "weight"):
            ids |= {id(p) for p in layer.parametrizations.weight.parameters()}
        else:
            ids.add(id(layer.weight))
    return ids


def sparsity_stats(model: nn.Module) -> dict[str, float]:
    """compress/kept_pct over the weight layers' effective weights; compress/ratio = all
    parameters / non-zero parameters, biases and other parameters counting as kept (Han 2015's
    accounting); compress/weight_ratio = weights / non-zero weights, biases left out (Zhang
    2018's 430.5K → 6.05K = 71.2× for LeNet-5)."""
    layer_total = layer_kept = 0
    for layer in weight_layers(model).values():
        w = effective_weight(layer).detach()
        layer_total, layer_kept = layer_total + w.numel(), layer_kept + int((w != 0).sum())
    latent = _transform_params(model)
    other = sum(p.numel() for p in model.parameters() if id(p) not in latent)
    return {"compress/kept_pct": 100.0 * layer_kept / max(layer_total, 1),
            "compress/ratio": (layer_total + other) / max(layer_kept + other, 1),
            "compress/weight_ratio": layer_total / max(layer_kept, 1)}


def architecture_params(model: nn.Module) -> int:
    """Parameters of the plain architecture (each weight layer's weight counted once)."""
    latent = _transform_params(model)
    weights = sum(layer.weight.numel() for layer in weight_layers(model).values())
    return weights + sum(p.numel() for p in model.parameters() if id(p) not in latent)


def plain_state_dict(model: nn.Module, skip: set[str] = frozenset()) -> dict[str, Any]:
    """The state dict of the plain architecture: every weight layer's effective weight under
    `<layer>.weight`, transform and input-quantizer state left out, layers in `skip` without
    their weight (an exporter stores those itself). Order follows `model.state_dict()`."""
    layers = weight_layers(model)
    out: dict[str, Any] = {}
    for key, value in model.state_dict().items():
        owner, sep, rest = key.partition(".parametrizations.weight.")
        if sep and owner in layers:
            if rest == "original" and owner not in skip:
                out[f"{owner}.weight"] = effective_weight(layers[owner]).detach()
            continue
        if any(key.startswith((f"{name}.input_quantizer.", f"{name}.output_quantizer."))
               for name in layers):
            continue
        if key.endswith(".weight") and key.removesuffix(".weight") in skip:
            continue
        out[key] = value
    return out

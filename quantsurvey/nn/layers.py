"""Which layers a compression method touches, and per-layer settings resolved by name or type."""

from __future__ import annotations

from typing import Any

from torch import nn

from quantsurvey.errors import ConfigError

LAYER_TYPES = {"conv": nn.Conv2d, "fc": nn.Linear}


def weight_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Conv2d and Linear layers by qualified name, in definition order."""
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)}


def resolve_per_layer(model: nn.Module, values: dict[str, Any], key: str) -> dict[str, Any]:
    """Map `values` (keys: layer names, or 'conv' / 'fc' for every layer of that type; a name
    wins over its type) to {layer name: value}. An unknown name fails, listing the layers."""
    layers = weight_layers(model)
    unknown = [k for k in values if k not in layers and k not in LAYER_TYPES]
    if unknown:
        raise ConfigError(f"{key}: {', '.join(map(repr, unknown))} is not a layer of this "
                          f"model; layers: {', '.join(layers)} (or 'conv' / 'fc' for all of "
                          f"a type).")
    out = {}
    for name, module in layers.items():
        if name in values:
            out[name] = values[name]
        else:
            for kind, cls in LAYER_TYPES.items():
                if kind in values and isinstance(module, cls):
                    out[name] = values[kind]
    return out

"""Pruning masks as a weight transform: the effective weight is `latent · mask`, so pruned
weights are exactly zero whatever the optimiser does to the latent weight (momentum, weight
decay), and masks only ever shrink (Han 2015 §3.4: prune → retrain cycles compound)."""

from __future__ import annotations

import torch
from torch import nn

from quantsurvey.compress.pruning import magnitude_mask, retrain_dropout, top_fraction_mask
from quantsurvey.nn.layers import resolve_per_layer, weight_layers
from quantsurvey.nn.quant import (
    WeightTransform,
    add_weight_transform,
    effective_weight,
    find_transform,
    kept_mask,
)


class Mask(WeightTransform):
    """w ↦ w · mask (the mask stored in the weight's dtype, as torch.nn.utils.prune does)."""

    def __init__(self, mask: torch.Tensor, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.register_buffer("mask", mask.to(dtype))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask

    def kept(self) -> torch.Tensor:
        return self.mask.bool()


def current_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """{layer: kept positions} for every layer whose transforms prune."""
    return {n: m for n, layer in weight_layers(model).items()
            if (m := kept_mask(layer)) is not None}


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Attach masks, or tighten a layer's existing mask (the intersection)."""
    layers = weight_layers(model)
    for name, mask in masks.items():
        layer = layers[name]
        mask = mask.to(layer.weight.device).bool()
        existing = find_transform(layer, Mask)
        if existing is None:
            add_weight_transform(layer, Mask(mask, layer.weight.dtype))
        else:
            existing.mask.copy_(existing.mask * mask.to(existing.mask.dtype))


def prune_by_magnitude(model: nn.Module, quality: dict[str, float] | None = None,
                       kept: dict[str, float] | None = None) -> dict[str, torch.Tensor]:
    """One prune step of Han 2015 on the layers named in `quality` (threshold q·std) or `kept`
    (keep that fraction of the largest weights); returns the new masks."""
    layers = weight_layers(model)
    old = current_masks(model)
    masks = {}
    if quality:
        for name, q in resolve_per_layer(model, quality, "compress.prune.quality").items():
            dense = effective_weight(layers[name]).detach()
            masks[name] = magnitude_mask(dense, q, old.get(name))
    for name, f in resolve_per_layer(model, kept or {}, "compress.prune.kept").items():
        dense = effective_weight(layers[name]).detach()
        masks[name] = top_fraction_mask(dense, f, old.get(name))
    apply_masks(model, masks)
    return masks


def adjust_dropout(model: nn.Module) -> dict[str, float]:
    """Han 2015 Eq. 2: each Dropout gets p · sqrt(kept fraction) of the first Linear layer
    defined after it (models define a Dropout right before the layer it feeds)."""
    modules = list(model.named_modules())
    changed = {}
    for i, (name, module) in enumerate(modules):
        if not isinstance(module, nn.Dropout) or module.p == 0:
            continue
        nxt = next((m for _, m in modules[i + 1:] if isinstance(m, nn.Linear)), None)
        kept = kept_mask(nxt) if nxt is not None else None
        if kept is not None:
            module.p = retrain_dropout(module.p, kept.float().mean().item())
            changed[name] = module.p
    return changed

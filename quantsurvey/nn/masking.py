"""Pruning masks on a model through torch.nn.utils.prune: the effective weight is
`weight_orig * weight_mask`, so pruned weights are exactly zero whatever the optimiser does to
the latent `weight_orig` (momentum, weight decay)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune

from quantsurvey.compress.pruning import magnitude_mask, retrain_dropout, top_fraction_mask
from quantsurvey.nn.layers import resolve_per_layer, weight_layers


def current_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: m.weight_mask.bool() for n, m in weight_layers(model).items()
            if prune.is_pruned(m) and hasattr(m, "weight_mask")}


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Attach (or tighten) masks; an existing mask is combined with the new one."""
    layers = weight_layers(model)
    for name, mask in masks.items():
        prune.custom_from_mask(layers[name], "weight", mask.to(layers[name].weight.device))


def prune_by_magnitude(model: nn.Module, quality: dict[str, float] | None = None,
                       kept: dict[str, float] | None = None) -> dict[str, torch.Tensor]:
    """One prune step of Han 2015 on the layers named in `quality` (threshold q·std) or `kept`
    (keep that fraction of the largest weights); returns the new masks."""
    layers = weight_layers(model)
    old = current_masks(model)
    masks = {}
    if quality:
        for name, q in resolve_per_layer(model, quality, "compress.prune.quality").items():
            masks[name] = magnitude_mask(_dense(layers[name]), q, old.get(name))
    for name, f in resolve_per_layer(model, kept or {}, "compress.prune.kept").items():
        masks[name] = top_fraction_mask(_dense(layers[name]), f, old.get(name))
    apply_masks(model, masks)
    return masks


def _dense(module: nn.Module) -> torch.Tensor:
    if hasattr(module, "weight_mask"):
        return (module.weight_orig * module.weight_mask).detach()
    return module.weight.detach()


def make_masks_permanent(model: nn.Module) -> None:
    """Fold masks into plain weights (zeros stay zeros) and drop the reparametrisation."""
    for module in weight_layers(model).values():
        if prune.is_pruned(module):
            prune.remove(module, "weight")


def adjust_dropout(model: nn.Module) -> dict[str, float]:
    """Han 2015 Eq. 2: each Dropout gets p · sqrt(kept fraction) of the first Linear layer
    defined after it (models define a Dropout right before the layer it feeds)."""
    modules = list(model.named_modules())
    changed = {}
    for i, (name, module) in enumerate(modules):
        if not isinstance(module, nn.Dropout) or module.p == 0:
            continue
        nxt = next((m for _, m in modules[i + 1:] if isinstance(m, nn.Linear)), None)
        if nxt is not None and hasattr(nxt, "weight_mask"):
            kept = nxt.weight_mask.float().mean().item()
            module.p = retrain_dropout(module.p, kept)
            changed[name] = module.p
    return changed


def sparsity_stats(model: nn.Module) -> dict[str, float]:
    """compress/kept_pct over the weight layers, and compress/ratio = all parameters / non-zero
    parameters, biases and other parameters counting as kept (Han 2015's accounting)."""
    from quantsurvey.nn.weight_sharing import effective_weight

    layers = weight_layers(model)
    layer_total = layer_kept = 0
    for module in layers.values():
        w = effective_weight(module).detach()
        layer_total, layer_kept = layer_total + w.numel(), layer_kept + int((w != 0).sum())
    latent = {"weight", "weight_orig", "weight_centroids"}
    other = sum(p.numel() for m in model.modules() for n, p in m.named_parameters(recurse=False)
                if not (m in layers.values() and n in latent))
    return {"compress/kept_pct": 100.0 * layer_kept / max(layer_total, 1),
            "compress/ratio": (layer_total + other) / max(layer_kept + other, 1)}

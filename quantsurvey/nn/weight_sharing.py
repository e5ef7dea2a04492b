"""Weight sharing as a weight transform (Deep Compression §3): the effective weight is
`codebook[assignment]`, where codebook = [0, c_1, …, c_{2^b−1}] holds the exact zero for pruned
weights and 2^b − 1 trained centroids. Autograd through the gather gives each centroid the sum of
its members' gradients (Eq. 3); assignments and the zero pattern never change."""

from __future__ import annotations

import torch
from torch import nn

from quantsurvey.compress.kmeans import SharingConfig, kmeans_1d
from quantsurvey.nn.layers import resolve_per_layer, weight_layers
from quantsurvey.nn.quant import (
    WeightTransform,
    add_weight_transform,
    effective_weight,
    strip_transforms,
)


class SharedCodebook(WeightTransform):
    """w ↦ [0, centroids][assignment]; the latent weight is no longer read (frozen)."""

    replaces_weight = True

    def __init__(self, centroids: torch.Tensor, assignment: torch.Tensor, bits: int):
        super().__init__()
        self.bits = bits
        self.centroids = nn.Parameter(centroids)
        self.register_buffer("assignment", assignment)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        codebook = torch.cat([self.centroids.new_zeros(1), self.centroids])
        return codebook[self.assignment].view(self.assignment.shape)

    def kept(self) -> torch.Tensor:
        return self.assignment != 0

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


def share_layer(layer: nn.Module, bits: int, init: str, iterations: int,
                generator: torch.Generator | None = None) -> SharedCodebook:
    """Cluster the layer's non-zero effective weights into 2**bits − 1 centroids and share them
    (earlier transforms, e.g. a pruning mask, are folded in first)."""
    strip_transforms(layer)
    weight = effective_weight(layer).detach()
    nonzero = weight != 0
    k = (1 << bits) - 1
    if nonzero.any():
        centroids, assign = kmeans_1d(weight[nonzero], k, init, iterations, generator)
    else:  # everything pruned: nothing to share
        centroids, assign = torch.zeros(k, dtype=torch.float64), torch.zeros(0, dtype=torch.long)
    if len(centroids) < k:  # fewer distinct weights than centroids: pad, never used
        centroids = torch.cat([centroids, centroids[-1:].repeat(k - len(centroids))])
    full = torch.zeros(weight.shape, dtype=torch.long, device=weight.device)
    full[nonzero] = assign.to(weight.device) + 1
    transform = SharedCodebook(centroids.to(weight.dtype).to(weight.device), full, bits)
    add_weight_transform(layer, transform)
    return transform


def share_weights(model: nn.Module, cfg: SharingConfig, generator: torch.Generator | None = None,
                  key: str = "compress.share.bits") -> dict[str, int]:
    """Share the weights of the layers in `cfg.bits`; returns {layer: bits}."""
    bits = resolve_per_layer(model, cfg.bits, key)
    layers = weight_layers(model)
    for name in layers:  # masks of unshared layers are folded too, as before sharing existed
        if name not in bits:
            strip_transforms(layers[name])
    for name, b in bits.items():
        share_layer(layers[name], b, cfg.init, cfg.iterations, generator)
    return bits

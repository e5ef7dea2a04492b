"""Weight sharing on a model (Deep Compression §3): a layer's weight becomes
`codebook[assignment]`, where codebook = [0, c_1, …, c_{2^b−1}] holds the exact zero for pruned
weights and 2^b − 1 trained centroids. Autograd through the gather gives each centroid the sum of
its members' gradients (Eq. 3); assignments and the zero pattern never change."""

from __future__ import annotations

import torch
from torch import nn

from quantsurvey.compress.kmeans import SharingConfig, kmeans_1d
from quantsurvey.nn.layers import resolve_per_layer, weight_layers
from quantsurvey.nn.masking import make_masks_permanent


class _SharedWeight:
    """Forward pre-hook that rebuilds `weight` from the centroids before every call."""

    def __call__(self, module: nn.Module, inputs) -> None:
        module.weight = shared_weight(module)


def shared_weight(module: nn.Module) -> torch.Tensor:
    zero = module.weight_centroids.new_zeros(1)
    codebook = torch.cat([zero, module.weight_centroids])
    return codebook[module.weight_assignment].view(module.weight_assignment.shape)


def is_shared(module: nn.Module) -> bool:
    return hasattr(module, "weight_centroids")


def share_layer(module: nn.Module, bits: int, init: str, iterations: int,
                generator: torch.Generator | None = None) -> None:
    """Cluster the layer's non-zero weights into 2**bits − 1 centroids and share them."""
    weight = module.weight.detach()
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
    del module._parameters["weight"]
    module.register_parameter("weight_centroids",
                              nn.Parameter(centroids.to(weight.dtype).to(weight.device)))
    module.register_buffer("weight_assignment", full)
    module.weight_bits = bits
    module.weight = shared_weight(module)
    module.register_forward_pre_hook(_SharedWeight())


def share_weights(model: nn.Module, cfg: SharingConfig, generator: torch.Generator | None = None
                  ) -> dict[str, int]:
    """Replace the weights of the layers in `cfg.bits` by shared ones; returns {layer: bits}."""
    bits = resolve_per_layer(model, cfg.bits, "compress.share.bits")
    make_masks_permanent(model)
    layers = weight_layers(model)
    for name, b in bits.items():
        share_layer(layers[name], b, cfg.init, cfg.iterations, generator)
    return bits


def effective_weight(module: nn.Module) -> torch.Tensor:
    """The weight a forward pass uses: shared, masked or plain."""
    if is_shared(module):
        return shared_weight(module)
    if hasattr(module, "weight_mask"):
        return module.weight_orig * module.weight_mask
    return module.weight

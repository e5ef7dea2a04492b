"""Deep Compression §3 (Han, Mao, Dally 2016): k-means weight sharing before centroid
fine-tuning. `compress.share: {bits: {<layer>|conv|fc: b}, init: linear, iterations: 100}`."""

from __future__ import annotations

from typing import Any

from torch import nn

from quantsurvey.compress.kmeans import SharingConfig
from quantsurvey.methods.base import Method, StageContext, register_method
from quantsurvey.nn.layers import resolve_per_layer
from quantsurvey.nn.weight_sharing import share_weights


@register_method
class WeightSharing(Method):
    name = "share"
    Config = SharingConfig

    def check(self, model: nn.Module) -> None:
        resolve_per_layer(model, self.config.bits, "compress.share.bits")

    def before_training(self, model: nn.Module, ctx: StageContext) -> dict[str, Any]:
        return {"share_bits": share_weights(model, self.config, ctx.generator())}

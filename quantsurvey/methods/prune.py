"""Han, Pool, Tran, Dally 2015 §3: one magnitude-prune step before (re)training, with the
retraining dropout rule (Eq. 2). `compress.prune: {quality: {<layer>|conv|fc: q}}` or
`{kept: {<layer>: fraction}}`."""

from __future__ import annotations

from typing import Any

from torch import nn

from quantsurvey.compress.pruning import PruningConfig
from quantsurvey.methods.base import Method, StageContext, register_method
from quantsurvey.nn.layers import resolve_per_layer
from quantsurvey.nn.masking import adjust_dropout, prune_by_magnitude


@register_method
class MagnitudePruning(Method):
    name = "prune"
    Config = PruningConfig

    def check(self, model: nn.Module) -> None:
        resolve_per_layer(model, self.config.quality, "compress.prune.quality")
        resolve_per_layer(model, self.config.kept, "compress.prune.kept")

    def before_training(self, model: nn.Module, ctx: StageContext) -> dict[str, Any]:
        masks = prune_by_magnitude(model, self.config.quality, self.config.kept)
        return {"prune_kept_pct": {n: 100.0 * m.float().mean().item() for n, m in masks.items()},
                "dropout": adjust_dropout(model)}

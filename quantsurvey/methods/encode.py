"""Deep Compression §2 and §4: after centroid fine-tuning, write the encoded file (relative
indices, Huffman-coded streams, used codebook entries), load it back, and check that it computes
what the trained model does. The stage is then tested on the decoded model, and its size and
ratio are that file's. `compress.encode: {index_bits: {<layer>|conv|fc: b}}`."""

from __future__ import annotations

from typing import Any

from torch import nn

from quantsurvey.compress.sparse_index import EncodeConfig
from quantsurvey.errors import CheckpointError
from quantsurvey.export import export_model, load_checked, shared_layers
from quantsurvey.methods.base import Method, StageContext, register_method
from quantsurvey.nn.layers import resolve_per_layer

ENCODED = "model.qsdc"


@register_method
class DeepCompressionEncoding(Method):
    name = "encode"
    Config = EncodeConfig
    requires = ("share",)

    def check(self, model: nn.Module) -> None:
        resolve_per_layer(model, self.config.index_bits, "compress.encode.index_bits")

    def after_training(self, model: nn.Module, ctx: StageContext
                       ) -> tuple[nn.Module, dict[str, Any], dict[str, float]]:
        index_bits = resolve_per_layer(model, self.config.index_bits, "compress.encode.index_bits")
        missing = [n for n in shared_layers(model) if n not in index_bits]
        if missing:
            raise CheckpointError(f"compress.encode.index_bits has no value for {missing}.")
        path = ctx.run_dir / ENCODED
        report = export_model(model, path, ctx.model_info, index_bits)
        decoded, checked, metrics = load_checked(model, path, ctx.probe())
        return decoded, {"encoded": {**report, **checked}}, metrics

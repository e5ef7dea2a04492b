"""Real binary inference for a BinaryNet MLP (`bnn_mlp` with the `bnn` method): the binary
layers run on packed words with XNOR and popcount (`compress.xnor_popcount`), the first layer
(real pixels × ±1 weights) and the batch norms in float exactly as the simulated network, so the
logits are bit-identical to the simulated network's: a binary layer's float32 matmul of ±1
values is an exact integer (|sum| ≤ fan-in < 2^24), which is what popcount computes.

    packed = PackedBNNMLP.from_model(load_model("model.qsdc"))
    logits = packed(x)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from quantsurvey.compress.binary import sign_binarize
from quantsurvey.compress.xnor_popcount import binary_matmul, pack_signs
from quantsurvey.errors import CheckpointError
from quantsurvey.nn.binary import BinaryActivation
from quantsurvey.nn.quant import input_quantizer


class PackedBNNMLP:
    def __init__(self, first: torch.Tensor, packed: list[tuple[np.ndarray, int]],
                 norms: list[nn.BatchNorm1d]):
        self.first, self.packed, self.norms = first, packed, norms
        self.workspaces: list[dict] = [{} for _ in packed]  # one per layer: shapes differ

    @classmethod
    def from_model(cls, model: nn.Module) -> PackedBNNMLP:
        """From a plain `bnn_mlp` whose weights are ±1 and whose layers after the first have
        binary inputs (a decoded `bnn` file); anything else is refused."""
        fcs, bns = getattr(model, "fcs", None), getattr(model, "bns", None)
        if fcs is None or bns is None:
            raise CheckpointError(f"packed inference needs a bnn_mlp, got {type(model).__name__}")
        for i, fc in enumerate(fcs):
            w = fc.weight.detach()
            if not bool(((w == 1) | (w == -1)).all()):
                raise CheckpointError(f"layer fcs.{i} does not hold ±1 weights: not a binary "
                                      f"network (export it with compress.bnn)")
            if i and not isinstance(input_quantizer(fc), BinaryActivation):
                raise CheckpointError(f"layer fcs.{i} has no binary input: not a BNN")
        model.eval()
        packed = [(pack_signs(fc.weight.detach()), fc.in_features) for fc in fcs[1:]]
        return cls(fcs[0].weight.detach().clone(), packed, list(bns))

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norms[0](F.linear(x.flatten(1), self.first))
        for (words, fan_in), norm, ws in zip(self.packed, self.norms[1:], self.workspaces,
                                             strict=True):
            dots = binary_matmul(pack_signs(sign_binarize(h)), words, fan_in, workspace=ws)
            h = norm(torch.from_numpy(dots).to(torch.float32))
        return h

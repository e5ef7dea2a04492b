"""Real binary inference for BinaryNet's networks (`bnn_mlp`, `bnn_convnet` with the `bnn`
method): the binary layers run on packed words with XNOR and popcount (`compress.xnor_popcount`,
its compiled kernel where one was built); the first layer (real pixels × ±1 weights), pooling
and the batch norms run in float exactly as in the simulated network, so the logits are
bit-identical to the simulated network's: a binary layer's float32 sum of ±1 products is an
exact integer (|sum| ≤ fan-in < 2^24), which is what popcount computes. A binary convolution runs
on the packed channels of each position (compiled kernel), or as an im2col (`F.unfold`) of the
signs and a masked popcount product (numpy): the zero padding is neither +1 nor −1, so it is left
out.

    packed = PackedBNNMLP.from_model(load_model("model.qsdc"))   # or PackedBNNConvNet
    logits = packed(x)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from quantsurvey.compress.binary import sign_binarize
from quantsurvey.compress.xnor_popcount import (
    binary_conv2d_packed,
    binary_matmul,
    conv_output_size,
    masked_binary_matmul,
    pack_bits,
    pack_channel_signs,
    pack_conv_taps,
    pack_signs,
    uses_compiled,
)
from quantsurvey.errors import CheckpointError
from quantsurvey.nn.binary import BinaryActivation
from quantsurvey.nn.quant import input_quantizer


def _check_binary(layers: list[nn.Module], prefix: str, first_real: bool = True) -> None:
    for i, layer in enumerate(layers):
        w = layer.weight.detach()
        if not bool(((w == 1) | (w == -1)).all()):
            raise CheckpointError(f"layer {prefix}.{i} does not hold ±1 weights: not a binary "
                                  f"network (export it with compress.bnn)")
        if (i or not first_real) and not isinstance(input_quantizer(layer), BinaryActivation):
            raise CheckpointError(f"layer {prefix}.{i} has no binary input: not a BNN")


def conv_weight_words(conv: nn.Conv2d, kernel: str = "auto") -> np.ndarray:
    """The conv's ±1 weights packed for `binary_conv2d` with `kernel`: per filter tap,
    (KH, KW, ⌈C/64⌉, O), for the compiled direct convolution; per filter, (O, ⌈C·KH·KW/64⌉),
    for numpy's im2col."""
    w = conv.weight.detach()
    return pack_conv_taps(w) if uses_compiled(kernel) else pack_signs(w.flatten(1))


def binary_conv2d(signs: torch.Tensor, conv: nn.Conv2d, words: np.ndarray | None = None,
                  kernel: str = "auto") -> torch.Tensor:
    """conv(signs) for ±1 `signs` (N, C, H, W) and the conv's ±1 weights, packed as `words`
    (`conv_weight_words(conv, kernel)`; packed here when None); any kernel size, stride and zero
    padding (BinaryNet's are 3×3, 1, 1). No bias. The compiled kernel convolves the packed
    channels directly; numpy's runs an im2col (`F.unfold`) and a masked popcount product, the
    zero padding masked out."""
    words = conv_weight_words(conv, kernel) if words is None else words
    if uses_compiled(kernel):
        dots = binary_conv2d_packed(pack_channel_signs(signs), words, conv.in_channels,
                                    conv.stride, conv.padding)
        return torch.from_numpy(dots).to(torch.float32)
    n, _, h, w = signs.shape
    cols = F.unfold(signs, conv.kernel_size, padding=conv.padding, stride=conv.stride)
    rows = cols.transpose(1, 2).reshape(-1, cols.shape[1])  # (N·L, C·kh·kw), 0 = padding
    dots = masked_binary_matmul(pack_signs(rows), pack_bits(rows != 0), words, kernel=kernel)
    out_h = conv_output_size(h, conv.kernel_size[0], conv.stride[0], conv.padding[0])
    out_w = conv_output_size(w, conv.kernel_size[1], conv.stride[1], conv.padding[1])
    out = torch.from_numpy(dots).to(torch.float32).view(n, out_h * out_w, -1)
    return out.transpose(1, 2).reshape(n, -1, out_h, out_w)


class PackedBNNMLP:
    def __init__(self, first: torch.Tensor, packed: list[tuple[np.ndarray, int]],
                 norms: list[nn.BatchNorm1d], kernel: str = "auto"):
        self.first, self.packed, self.norms, self.kernel = first, packed, norms, kernel
        self.workspaces: list[dict] = [{} for _ in packed]  # one per layer: shapes differ

    @classmethod
    def from_model(cls, model: nn.Module, kernel: str = "auto") -> PackedBNNMLP:
        """From a plain `bnn_mlp` whose weights are ±1 and whose layers after the first have
        binary inputs (a decoded `bnn` file); anything else is refused."""
        fcs, bns = getattr(model, "fcs", None), getattr(model, "bns", None)
        if fcs is None or bns is None or hasattr(model, "convs"):
            raise CheckpointError(f"packed inference needs a bnn_mlp, got {type(model).__name__}")
        _check_binary(list(fcs), "fcs")
        model.eval()
        packed = [(pack_signs(fc.weight.detach()), fc.in_features) for fc in fcs[1:]]
        return cls(fcs[0].weight.detach().clone(), packed, list(bns), kernel)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norms[0](F.linear(x.flatten(1), self.first))
        for (words, fan_in), norm, ws in zip(self.packed, self.norms[1:], self.workspaces,
                                             strict=True):
            # bit 1 where h ≥ 0: the +1 of sign_binarize (sign(0) = +1), without forming it
            dots = binary_matmul(pack_signs(h), words, fan_in, workspace=ws,
                                 kernel=self.kernel)
            h = norm(torch.from_numpy(dots).to(torch.float32))
        return h


class PackedBNNConvNet:
    """BinaryNet's ConvNet: conv → (pool) → BN → sign per conv, then the fc layers as the MLP."""

    def __init__(self, model: nn.Module, kernel: str = "auto"):
        self.model, self.kernel = model, kernel
        self.conv_words = [conv_weight_words(c, kernel) for c in model.convs[1:]]
        self.fc_words = [(pack_signs(fc.weight.detach()), fc.in_features) for fc in model.fcs]
        self.workspaces: list[dict] = [{} for _ in model.fcs]

    @classmethod
    def from_model(cls, model: nn.Module, kernel: str = "auto") -> PackedBNNConvNet:
        if not (hasattr(model, "convs") and hasattr(model, "fcs")):
            raise CheckpointError(f"packed inference needs a bnn_convnet, got "
                                  f"{type(model).__name__}")
        _check_binary(list(model.convs), "convs")
        _check_binary(list(model.fcs), "fcs", first_real=False)
        return cls(model.eval(), kernel)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        for i, (conv, bn) in enumerate(zip(m.convs, m.conv_bns, strict=True)):
            if i == 0:
                x = F.conv2d(x, conv.weight, padding=conv.padding, stride=conv.stride)
            else:
                x = binary_conv2d(sign_binarize(x), conv, self.conv_words[i - 1], self.kernel)
            if i % 2 == 1:
                x = F.max_pool2d(x, 2)
            x = bn(x)
        x = x.flatten(1)
        for (words, fan_in), bn, ws in zip(self.fc_words, m.fc_bns, self.workspaces,
                                           strict=True):
            dots = binary_matmul(pack_signs(x), words, fan_in, workspace=ws,
                                 kernel=self.kernel)
            x = bn(torch.from_numpy(dots).to(torch.float32))
        return x

"""Export a weight-shared model (Deep Compression §2–4), a ternary one (Zhu et al. 2017), a
fixed-point one (Lin et al. 2016, Anwar et al. 2015) or a binary one (BNN, BWN, XNOR-Net) to the
encoded file, and load any back.

Each shared layer is stored as: its codebook (float32, the centroids that some weight uses,
at most 2^b − 1; symbol 0 is the exact zero; a layer written before `codebook_size` existed
stores all 2^b − 1), the non-zero positions as relative-index gap codes with filler zeros, and
both symbol streams Huffman-coded with their code lengths (4 bits per symbol when all are
≤ 15). Everything else in the state dict (biases, unshared layers, batch-norm statistics) is
stored as is. A ternary layer is stored as its 2-bit codes and its two float32 scales
(`compress.ternary_pack`). A fixed-point layer is stored as its b-bit codes
(`compress.bit_pack`) and its step; its activation quantizers (bits, step, level set) go in the
header and are re-attached on loading. The loader rebuilds a plain model whose weights equal the
shared, ternary or fixed-point ones bit for bit.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from quantsurvey.compress.binary import filter_scales
from quantsurvey.compress.bit_pack import pack_codes, unpack_codes
from quantsurvey.compress.container import read_container, write_container
from quantsurvey.compress.fixed_point import code_values
from quantsurvey.compress.huffman import huffman_code_lengths, huffman_decode, huffman_encode
from quantsurvey.compress.sparse_index import decode_relative_indices, encode_relative_indices
from quantsurvey.compress.ternary_pack import pack_ternary, ternary_weight, unpack_ternary
from quantsurvey.errors import CheckpointError
from quantsurvey.models import create_model
from quantsurvey.nn.binary import BinaryActivation, BinaryWeight, attach_input_scale
from quantsurvey.nn.fixed_point import FixedPointQuantizer, FixedPointWeight
from quantsurvey.nn.layers import weight_layers
from quantsurvey.nn.quant import (
    find_transform,
    input_quantizer,
    latent_weight,
    output_quantizer,
    plain_state_dict,
    set_input_quantizer,
    set_output_quantizer,
)
from quantsurvey.nn.weight_sharing import SharedCodebook


def shared_layers(model: nn.Module) -> dict[str, SharedCodebook]:
    """{layer name: its shared codebook} for the weight-shared layers, in definition order."""
    return {n: t for n, layer in weight_layers(model).items()
            if (t := find_transform(layer, SharedCodebook)) is not None}


def _huffman(symbols: np.ndarray, alphabet: int) -> tuple[np.ndarray, bytes, int]:
    lengths = huffman_code_lengths(np.bincount(symbols, minlength=alphabet))
    stream, n_bits = huffman_encode(symbols, lengths)
    return lengths, stream, n_bits


def pack_lengths(lengths: np.ndarray) -> bytes:
    """Code lengths, two per byte when all fit in 4 bits (≤ 15, the usual case), else one."""
    lengths = np.asarray(lengths, dtype=np.uint8)
    if lengths.max(initial=0) > 15:
        return b"\x08" + lengths.tobytes()
    padded = np.concatenate([lengths, np.zeros(len(lengths) % 2, dtype=np.uint8)])
    return b"\x04" + (padded[0::2] << 4 | padded[1::2]).astype(np.uint8).tobytes()


def unpack_lengths(blob: bytes, alphabet: int) -> np.ndarray:
    raw = np.frombuffer(blob[1:], dtype=np.uint8)
    if blob[:1] == b"\x08":
        return raw.astype(np.int64)[:alphabet]
    return np.stack([raw >> 4, raw & 15], axis=1).reshape(-1).astype(np.int64)[:alphabet]


def encode_layer(assignment: torch.Tensor, centroids: torch.Tensor, bits: int, index_bits: int
                 ) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Only the centroids that some weight uses are stored, renumbered 1 … n in their order;
    k-means can leave clusters empty, and a codebook entry nobody reads costs 4 bytes."""
    flat = assignment.flatten().cpu().numpy()
    positions = np.flatnonzero(flat)
    used = np.unique(flat[positions])
    renumber = np.zeros(1 << bits, dtype=np.int64)
    renumber[used] = np.arange(1, len(used) + 1)
    gaps, symbols = encode_relative_indices(positions, renumber[flat[positions]], index_bits)
    w_len, w_stream, w_bits = _huffman(symbols.astype(np.int64), len(used) + 1)
    i_len, i_stream, i_bits = _huffman(gaps.astype(np.int64), 1 << index_bits)
    meta = {"shape": list(assignment.shape), "bits": bits, "index_bits": index_bits,
            "codebook_size": len(used), "entries": len(symbols), "nonzero": len(positions),
            "weight_bits": w_bits, "index_bits_total": i_bits}
    codebook = centroids.detach().cpu().float().numpy()[used - 1]
    blobs = {"codebook": codebook.tobytes(),
             "w_lengths": pack_lengths(w_len), "w_stream": w_stream,
             "i_lengths": pack_lengths(i_len), "i_stream": i_stream}
    return meta, blobs


def decode_layer(meta: dict[str, Any], blobs: dict[str, bytes]) -> torch.Tensor:
    alphabet = meta.get("codebook_size", (1 << meta["bits"]) - 1) + 1
    w_len = unpack_lengths(blobs["w_lengths"], alphabet)
    i_len = unpack_lengths(blobs["i_lengths"], 1 << meta["index_bits"])
    symbols = huffman_decode(blobs["w_stream"], meta["weight_bits"], w_len, meta["entries"])
    gaps = huffman_decode(blobs["i_stream"], meta["index_bits_total"], i_len, meta["entries"])
    positions, symbols = decode_relative_indices(gaps, symbols)
    codebook = np.concatenate([[0.0], np.frombuffer(blobs["codebook"], dtype=np.float32)])
    flat = np.zeros(math.prod(meta["shape"]), dtype=np.float32)
    flat[positions] = codebook[symbols].astype(np.float32)
    return torch.from_numpy(flat).view(meta["shape"])


def add_dense(model: nn.Module, skip: set[str], header: dict[str, Any],
              blobs: dict[str, bytes]) -> None:
    """Every state-dict entry but the weights of the `skip` layers, stored as is (raw bytes,
    dtype and shape in the header)."""
    for key, tensor in plain_state_dict(model, skip=skip).items():
        t = tensor.detach().cpu()
        header["dense"][key] = {"dtype": str(t.dtype).removeprefix("torch."),
                                "shape": list(t.shape)}
        blobs[f"dense/{key}"] = t.contiguous().numpy().tobytes()


def export_model(model: nn.Module, path: Path, model_info: dict[str, Any],
                 index_bits: dict[str, int]) -> dict[str, Any]:
    """Write the encoded file; returns its size and the per-layer accounting (Han 2016 Table 2)."""
    header: dict[str, Any] = {"model": model_info, "layers": {}, "dense": {}}
    blobs: dict[str, bytes] = {}
    shared = shared_layers(model)
    for name, codebook in shared.items():
        meta, layer_blobs = encode_layer(codebook.assignment, codebook.centroids, codebook.bits,
                                         index_bits[name])
        header["layers"][name] = meta
        blobs.update({f"{name}/{k}": v for k, v in layer_blobs.items()})
    add_dense(model, set(shared), header, blobs)
    size = write_container(path, header, blobs)
    table = {}
    for name, meta in header["layers"].items():
        n = math.prod(meta["shape"])
        stored = sum(len(blobs[f"{name}/{k}"]) for k in
                     ("codebook", "w_lengths", "w_stream", "i_lengths", "i_stream"))
        table[name] = {
            "params": n, "kept_pct": 100.0 * meta["nonzero"] / n,
            "weight_bits_pq": meta["bits"], "weight_bits_huffman": meta["weight_bits"]
            / max(meta["entries"], 1), "index_bits_pq": meta["index_bits"],
            "index_bits_huffman": meta["index_bits_total"] / max(meta["entries"], 1),
            "codebook_used": meta["codebook_size"],
            "fillers": meta["entries"] - meta["nonzero"], "stored_bytes": stored,
            "ratio": 4 * n / max(stored, 1)}
    return {"size_bytes": size, "layers": table}


def export_ternary(model: nn.Module, path: Path, model_info: dict[str, Any],
                   ternary: dict[str, tuple[torch.Tensor, float, float]]) -> dict[str, Any]:
    """Write the encoded file of a ternary model: `ternary` maps each ternary layer to (codes,
    W_p, W_n); every other entry of the state dict is stored as is. Returns the file's size and
    the per-layer accounting (bytes, zeros)."""
    header: dict[str, Any] = {"model": model_info, "layers": {}, "dense": {}}
    blobs: dict[str, bytes] = {}
    table = {}
    for name, (codes, w_p, w_n) in ternary.items():
        packed = pack_ternary(codes)
        scales = np.array([w_p, w_n], dtype=np.float32).tobytes()
        header["layers"][name] = {"kind": "ternary", "shape": list(codes.shape)}
        blobs[f"{name}/codes"], blobs[f"{name}/scales"] = packed, scales
        n = codes.numel()
        table[name] = {"params": n, "zero_pct": 100.0 * int((codes == 0).sum()) / n,
                       "w_p": float(np.float32(w_p)), "w_n": float(np.float32(w_n)),
                       "stored_bytes": len(packed) + len(scales),
                       "ratio": 4 * n / (len(packed) + len(scales))}
    add_dense(model, set(ternary), header, blobs)
    size = write_container(path, header, blobs)
    return {"size_bytes": size, "layers": table}


def decode_ternary_layer(meta: dict[str, Any], blobs: dict[str, bytes]) -> torch.Tensor:
    codes = unpack_ternary(blobs["codes"], math.prod(meta["shape"]))
    w_p, w_n = np.frombuffer(blobs["scales"], dtype=np.float32).tolist()
    return ternary_weight(codes, w_p, w_n).view(meta["shape"])


def export_fixed_point(model: nn.Module, path: Path, model_info: dict[str, Any]
                       ) -> dict[str, Any]:
    """Write the encoded file of a fixed-point model: each fixed-point layer's round-to-nearest
    codes at its bit-width plus its step (float32); the activation quantizers in the header;
    every other entry of the state dict as is. Returns the file's size, the weight bytes (codes
    and steps of the fixed-point layers) and the per-layer accounting."""
    header: dict[str, Any] = {"model": model_info, "layers": {}, "dense": {}, "activations": {}}
    blobs: dict[str, bytes] = {}
    table, fixed = {}, set()
    for name, layer in weight_layers(model).items():
        quantizers = {k: q for k, q in (("input", input_quantizer(layer)),
                                         ("output", output_quantizer(layer)))
                      if isinstance(q, FixedPointQuantizer)}
        if quantizers:
            # "signed" only when false: a signed quantizer's header is what it always was
            header["activations"][name] = {
                k: {"bits": q.bits, "step": float(q.step), "zero_level": q.zero_level,
                    **({} if q.signed else {"signed": False})}
                for k, q in quantizers.items()}
        transform = find_transform(layer, FixedPointWeight)
        if transform is None:
            continue
        fixed.add(name)
        codes = transform.codes(latent_weight(layer))
        packed = pack_codes(codes, transform.bits)
        step = np.array([float(transform.step)], dtype=np.float32).tobytes()
        header["layers"][name] = {"kind": "fixed_point", "shape": list(codes.shape),
                                  "bits": transform.bits, "zero_level": transform.zero_level}
        blobs[f"{name}/codes"], blobs[f"{name}/step"] = packed, step
        n = codes.numel()
        table[name] = {"params": n, "bits": transform.bits, "step": float(transform.step),
                       "stored_bytes": len(packed) + len(step),
                       "ratio": 4 * n / (len(packed) + len(step))}
    add_dense(model, fixed, header, blobs)
    size = write_container(path, header, blobs)
    return {"size_bytes": size, "weight_bytes": sum(t["stored_bytes"] for t in table.values()),
            "layers": table}


def decode_fixed_point_layer(meta: dict[str, Any], blobs: dict[str, bytes]) -> torch.Tensor:
    codes = unpack_codes(blobs["codes"], meta["bits"], math.prod(meta["shape"]))
    (step,) = np.frombuffer(blobs["step"], dtype=np.float32).tolist()
    step = torch.tensor(step, dtype=torch.float32)
    return code_values(codes.to(torch.float32), step, meta["zero_level"]).view(meta["shape"])


def export_binary(model: nn.Module, path: Path, model_info: dict[str, Any]) -> dict[str, Any]:
    """Write the encoded file of a binary model: each binary layer's signs at 1 bit per weight
    (numpy's packbits, +1 ↦ 1, first weight in the highest bit) plus, where scaled (BWN, XNOR),
    α per output filter as float32; binary inputs (and XNOR's input scale) in the header; every
    other entry of the state dict as is. Returns the file's size, the weight bytes and the
    per-layer accounting."""
    header: dict[str, Any] = {"model": model_info, "layers": {}, "dense": {}, "activations": {}}
    blobs: dict[str, bytes] = {}
    table, binary = {}, set()
    for name, layer in weight_layers(model).items():
        if isinstance(input_quantizer(layer), BinaryActivation):
            header["activations"][name] = {"input": {
                "kind": "binary", "input_scale": bool(getattr(layer, "has_input_scale", False))}}
        transform = find_transform(layer, BinaryWeight)
        if transform is None:
            continue
        binary.add(name)
        w = latent_weight(layer).detach().cpu()
        signs = np.packbits((w >= 0).flatten().numpy()).tobytes()
        meta = {"kind": "binary", "shape": list(w.shape), "scaled": transform.scaled}
        blobs[f"{name}/signs"] = signs
        stored = len(signs)
        if transform.scaled:
            alpha = filter_scales(w).flatten().float().numpy().tobytes()
            blobs[f"{name}/alpha"] = alpha
            stored += len(alpha)
        header["layers"][name] = meta
        n = w.numel()
        table[name] = {"params": n, "bits": 1, "scaled": transform.scaled,
                       "stored_bytes": stored, "ratio": 4 * n / stored}
    add_dense(model, binary, header, blobs)
    size = write_container(path, header, blobs)
    return {"size_bytes": size, "weight_bytes": sum(t["stored_bytes"] for t in table.values()),
            "layers": table}


def decode_binary_layer(meta: dict[str, Any], blobs: dict[str, bytes]) -> torch.Tensor:
    n = math.prod(meta["shape"])
    packed = np.frombuffer(blobs["signs"], dtype=np.uint8)
    if len(packed) != -(-n // 8):
        raise ValueError(f"{len(packed)} bytes cannot hold exactly {n} signs")
    bits = np.unpackbits(packed)[:n].astype(np.float32)
    signs = torch.from_numpy(bits * 2 - 1).view(meta["shape"])
    if not meta["scaled"]:
        return signs
    alpha = torch.from_numpy(np.frombuffer(blobs["alpha"], dtype=np.float32).copy())
    return alpha.view(-1, *[1] * (len(meta["shape"]) - 1)) * signs


DECODERS = {"ternary": decode_ternary_layer, "fixed_point": decode_fixed_point_layer,
            "binary": decode_binary_layer}


def load_model(path: Path) -> nn.Module:
    """Rebuild the plain float model from an encoded file."""
    header, blobs = read_container(path)
    info = header["model"]
    model = create_model(info["name"], num_classes=info["num_classes"],
                         input_shape=tuple(info["input_shape"]), **info.get("params", {}))
    state = {}
    for key, meta in header["dense"].items():
        dtype = np.dtype(meta["dtype"]) if meta["dtype"] != "bool" else np.bool_
        state[key] = torch.from_numpy(np.frombuffer(blobs[f"dense/{key}"], dtype=dtype)
                                      .copy().reshape(meta["shape"]))
    for name, meta in header["layers"].items():
        layer_blobs = {k.split("/", 1)[1]: v for k, v in blobs.items()
                       if k.startswith(f"{name}/")}
        decode = DECODERS.get(meta.get("kind"), decode_layer)
        try:
            state[f"{name}.weight"] = decode(meta, layer_blobs)
        except (ValueError, KeyError) as err:
            raise CheckpointError(f"{path}: layer {name} cannot be decoded ({err}). "
                                  f"Re-export it from its run.") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{path} does not fit model {info['name']}: "
                              f"{str(err).splitlines()[0]}") from None
    layers = weight_layers(model)
    for name, quantizers in header.get("activations", {}).items():
        for kind, q in quantizers.items():
            setter = set_input_quantizer if kind == "input" else set_output_quantizer
            if q.get("kind") == "binary":
                if q["input_scale"]:
                    attach_input_scale(layers[name])
                setter(layers[name], BinaryActivation())
            else:
                setter(layers[name], FixedPointQuantizer(q["bits"], q["step"], q["zero_level"],
                                                         signed=q.get("signed", True)))
    return model


def load_checked(model: nn.Module, path: Path, probe: torch.Tensor
                 ) -> tuple[nn.Module, dict[str, Any], dict[str, float]]:
    """Read the file just written back and check that it computes exactly what the trained
    model does on `probe`; returns (the decoded model, what the summary records of the file,
    its size metrics: bytes, and float32 parameters' bytes ÷ file bytes)."""
    decoded = load_model(path)
    model.eval(), decoded.eval()
    with torch.no_grad():
        same = torch.equal(model.cpu()(probe), decoded(probe))
    if not same:
        raise CheckpointError(f"{path}: the decoded model's outputs differ from the trained "
                              f"model's; the file is not kept as the result.")
    size = Path(path).stat().st_size
    original = 4 * sum(p.numel() for p in decoded.parameters())
    info = {"original_bytes": original, "identical_outputs": same}
    return decoded, info, {"compress/size_bytes": float(size), "compress/ratio": original / size}

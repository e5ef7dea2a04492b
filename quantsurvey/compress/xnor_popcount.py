"""Binary dot products on packed words: XNOR and popcount (BinaryNet §5, XNOR-Net §3.2).

Vectors of ±1 are packed 64 to a word (bit 1 for +1, numpy's packbits, zero-padded to whole
words: padding bits are 0 in both operands, so they never differ). For two packed vectors of
length n, the dot product is

    a · b = n − 2 · popcount(a XOR b)

(matching signs add 1, differing ones subtract 1). The popcount is numpy's `bitwise_count`
(a vectorised hardware popcount where the CPU has one): no compiled extension to build, the same
on every platform numpy ≥ 2.0 supports; the integers are exact.
"""

from __future__ import annotations

import numpy as np
import torch


def pack_bits(bits: torch.Tensor | np.ndarray) -> np.ndarray:
    """Rows of a boolean array (N, K) → uint64 words (N, ceil(K/64)), zero-padded."""
    bits = bits.cpu().numpy() if isinstance(bits, torch.Tensor) else np.asarray(bits)
    if bits.dtype != np.bool_:
        raise ValueError(f"pack_bits needs booleans, got {bits.dtype}")
    n, k = bits.shape
    packed = np.packbits(bits, axis=1)  # (N, ceil(K/8)) uint8
    words = -(-k // 64)
    padded = np.zeros((n, words * 8), dtype=np.uint8)
    padded[:, : packed.shape[1]] = packed
    return padded.view(np.uint64)


def pack_signs(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Rows of x (N, K) → uint64 words (N, ceil(K/64)); bit 1 where x ≥ 0."""
    return pack_bits(x >= 0)


def binary_matmul(a_words: np.ndarray, b_words: np.ndarray, k: int, chunk: int = 16,
                  workspace: dict | None = None) -> np.ndarray:
    """(N, W) × (M, W) packed ±1 rows → (N, M) int32 dot products of length `k`:
    k − 2·popcount(a XOR b), computed `chunk` rows of a at a time (bounded memory). A
    `workspace` dict keeps the temporary arrays between calls (no fresh pages per call: for
    batch 1 the allocation cost as much as the arithmetic)."""
    n, (m, w) = a_words.shape[0], b_words.shape
    out = np.empty((n, m), dtype=np.int32)
    ws = {} if workspace is None else workspace
    rows = min(chunk, n)
    if ws.get("shape") != (rows, m, w):
        ws.update(shape=(rows, m, w), xor=np.empty((rows, m, w), dtype=np.uint64),
                  count=np.empty((rows, m, w), dtype=np.uint8))
    for start in range(0, n, chunk):
        a = a_words[start : start + chunk, None, :]
        r = a.shape[0]
        xor, count = ws["xor"][:r], ws["count"][:r]
        np.bitwise_xor(a, b_words[None, :, :], out=xor)
        np.bitwise_count(xor, out=count)
        differ = count.sum(axis=2, dtype=np.int32)
        out[start : start + chunk] = k - 2 * differ
    return out


def masked_binary_matmul(a_words: np.ndarray, valid_words: np.ndarray, b_words: np.ndarray
                         ) -> np.ndarray:
    """Like `binary_matmul` where some entries of each a-row are 0 (a convolution's zero
    padding; `valid_words` = `pack_bits(row != 0)`): only positions whose valid bit is set
    count, so row i's dot product with b_j is popcount(valid_i) − 2·popcount((a_i XOR b_j) AND
    valid_i)."""
    n, m = a_words.shape[0], b_words.shape[0]
    out = np.empty((n, m), dtype=np.int32)
    counts = np.bitwise_count(valid_words).sum(axis=1, dtype=np.int32)
    for start in range(0, n, 64):
        a = a_words[start : start + 64, None, :]
        v = valid_words[start : start + 64, None, :]
        differ = np.bitwise_count((a ^ b_words[None, :, :]) & v).sum(axis=2, dtype=np.int32)
        out[start : start + 64] = counts[start : start + 64, None] - 2 * differ
    return out

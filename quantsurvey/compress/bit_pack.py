"""b-bit storage of signed integer codes (fixed-point weights: b bits per weight, 1 ≤ b ≤ 32).

A code k ∈ [−2^(b−1), 2^(b−1) − 1] is stored as the unsigned b-bit number k + 2^(b−1), most
significant bit first, the codes back to back in a bit stream (numpy's `packbits`, big-endian
bit order); the last byte is zero-padded. n codes take ceil(n·b / 8) bytes.
"""

from __future__ import annotations

import numpy as np
import torch

from quantsurvey.compress.fixed_point import code_range


def packed_size(count: int, bits: int) -> int:
    return -(-count * bits // 8)


def pack_codes(codes: torch.Tensor, bits: int) -> bytes:
    """Signed codes (any shape) → ceil(n·b/8) bytes; ValueError for a code out of range."""
    low, high = code_range(bits)
    flat = codes.detach().cpu().flatten().to(torch.int64).numpy()
    if flat.size and (flat.min() < low or flat.max() > high):
        raise ValueError(f"codes must lie in [{low}, {high}] for {bits} bits")
    unsigned = (flat - low).astype(np.uint64)
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint64)
    bit_matrix = ((unsigned[:, None] >> shifts[None, :]) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bit_matrix.reshape(-1)).tobytes()


def unpack_codes(blob: bytes, bits: int, count: int) -> torch.Tensor:
    """The first `count` codes of `blob` as int64; ValueError if the length is not exactly
    ceil(count·b/8) bytes."""
    low, _ = code_range(bits)
    if len(blob) != packed_size(count, bits):
        raise ValueError(f"{len(blob)} bytes cannot hold exactly {count} {bits}-bit codes")
    stream = np.unpackbits(np.frombuffer(blob, dtype=np.uint8))[: count * bits]
    bit_matrix = stream.reshape(count, bits).astype(np.int64)
    weights = np.left_shift(np.int64(1), np.arange(bits - 1, -1, -1, dtype=np.int64))
    return torch.from_numpy(bit_matrix @ weights + low)

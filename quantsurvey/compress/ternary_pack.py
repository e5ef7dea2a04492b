"""2-bit storage of ternary codes (Zhu et al. 2017: about 16× smaller than float32).

Each code c ∈ {−1, 0, +1} is stored as 2 bits (0 → 0b00, +1 → 0b01, −1 → 0b10), four codes per
byte, the first code in the lowest bits; the last byte is zero-padded. The layer's two scales
(W_p, W_n) are stored beside the codes as float32.
"""

from __future__ import annotations

import numpy as np
import torch


def pack_ternary(codes: torch.Tensor) -> bytes:
    """Codes (any shape, values in {−1, 0, +1}) → ceil(n/4) bytes."""
    flat = codes.detach().cpu().flatten().to(torch.int8).numpy()
    if flat.size and not np.isin(flat, (-1, 0, 1)).all():
        raise ValueError("ternary codes must be -1, 0 or +1")
    two_bits = np.where(flat < 0, 2, flat).astype(np.uint8)
    padded = np.zeros(-(-len(two_bits) // 4) * 4, dtype=np.uint8)
    padded[: len(two_bits)] = two_bits
    quads = padded.reshape(-1, 4)
    packed = quads[:, 0] | quads[:, 1] << 2 | quads[:, 2] << 4 | quads[:, 3] << 6
    return packed.astype(np.uint8).tobytes()


def unpack_ternary(blob: bytes, count: int) -> torch.Tensor:
    """The first `count` codes of `blob` as int8 {−1, 0, +1}; a blob of the wrong length or
    holding the unused pattern 0b11 raises ValueError."""
    if len(blob) != -(-count // 4):
        raise ValueError(f"{len(blob)} bytes cannot hold exactly {count} 2-bit codes")
    packed = np.frombuffer(blob, dtype=np.uint8)
    two_bits = np.stack([(packed >> s) & 3 for s in (0, 2, 4, 6)], axis=1).reshape(-1)[:count]
    if (two_bits == 3).any():
        raise ValueError("the 2-bit pattern 0b11 is not a ternary code")
    codes = two_bits.astype(np.int8)
    codes[two_bits == 2] = -1
    return torch.from_numpy(codes)


def ternary_weight(codes: torch.Tensor, w_p: float, w_n: float) -> torch.Tensor:
    """float32 weight: +W_p, 0, −W_n for codes +1, 0, −1 (exactly the values a forward pass
    uses)."""
    table = torch.tensor([-w_n, 0.0, w_p], dtype=torch.float32)
    return table[codes.long() + 1]

"""Sparse storage with relative indices, Deep Compression (Han, Mao, Dally 2016), §2, Fig. 2.

Non-zeros are stored in order with the gap to the previous one in `bits` bits (code = gap − 1,
so gaps 1 … 2**bits fit). A longer gap is bridged by filler entries: each advances 2**bits
positions and holds the reserved symbol 0 (the exact zero), which the decoder drops.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def encode_relative_indices(positions: np.ndarray, symbols: np.ndarray, bits: int
                            ) -> tuple[np.ndarray, np.ndarray]:
    """(gap codes, symbols with fillers) for sorted flat `positions` of symbols ≥ 1."""
    if bits < 1:
        raise ValueError(f"index bits must be >= 1, got {bits}")
    positions = np.asarray(positions, dtype=np.int64)
    symbols = np.asarray(symbols)
    if len(positions) and (np.any(np.diff(positions) <= 0) or positions[0] < 0):
        raise ValueError("positions must be strictly increasing and >= 0")
    if np.any(symbols < 1):
        raise ValueError("symbols must be >= 1: symbol 0 is reserved for fillers")
    span = 1 << bits
    gaps = np.diff(positions, prepend=-1)
    fillers = (gaps - 1) // span
    counts = fillers + 1
    last = np.cumsum(counts) - 1
    out_gaps = np.full(int(counts.sum()), span, dtype=np.int64)
    out_gaps[last] = gaps - fillers * span
    out_symbols = np.zeros(len(out_gaps), dtype=symbols.dtype if len(symbols) else np.int64)
    out_symbols[last] = symbols
    return (out_gaps - 1).astype(np.uint32), out_symbols


def decode_relative_indices(gap_codes: np.ndarray, symbols: np.ndarray
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of `encode_relative_indices`: (flat positions, symbols) without the fillers."""
    positions = np.cumsum(np.asarray(gap_codes, dtype=np.int64) + 1) - 1
    real = np.asarray(symbols) != 0
    return positions[real], np.asarray(symbols)[real]


@dataclass(frozen=True)
class EncodeConfig:
    """Relative-index bits per layer (Deep Compression §2: 8 bits for conv, 5 for fc; Tables 3–5
    print 5 bits for LeNet-5 and VGG-16, 4 for AlexNet)."""

    index_bits: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, b in self.index_bits.items():
            if not (isinstance(b, int) and 1 <= b <= 16):
                raise ValueError(f"index_bits.{name}={b!r} must be an integer in [1, 16].")

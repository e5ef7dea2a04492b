"""Huffman coding of quantized weights and index gaps, Deep Compression (Han 2016), §4.

Code lengths come from the classic merge of the two rarest subtrees; codes are canonical, so the
lengths alone (one byte per symbol) rebuild the code table. Encoding and decoding are vectorised
with numpy: decoding finds each code's length from the canonical limits with a binary search at
every bit position, then walks the chain of code starts.
"""

from __future__ import annotations

import heapq

import numpy as np

MAX_CODE_LENGTH = 56  # windows are read as uint64; ~1e11 symbols would be needed to exceed it


def huffman_code_lengths(counts: np.ndarray) -> np.ndarray:
    """Optimal prefix-code length of each symbol (0 for symbols that never occur)."""
    counts = np.asarray(counts, dtype=np.int64)
    lengths = np.zeros(len(counts), dtype=np.int64)
    present = np.flatnonzero(counts > 0)
    if len(present) <= 1:  # one symbol still needs one bit; none (or no counts) need none
        lengths[present] = 1
        return lengths
    heap = [(int(counts[s]), i, [int(s)]) for i, s in enumerate(present)]
    heapq.heapify(heap)
    tie = len(heap)
    while len(heap) > 1:
        c1, _, s1 = heapq.heappop(heap)
        c2, _, s2 = heapq.heappop(heap)
        lengths[s1 + s2] += 1  # every symbol under the merged node gets one bit deeper
        heapq.heappush(heap, (c1 + c2, tie, s1 + s2))
        tie += 1
    if lengths.max() > MAX_CODE_LENGTH:
        raise ValueError(f"Huffman code longer than {MAX_CODE_LENGTH} bits")
    return lengths


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Canonical code values: symbols sorted by (length, symbol) get consecutive codes."""
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.zeros(len(lengths), dtype=np.uint64)
    code, prev_len = 0, 0
    for s in sorted(np.flatnonzero(lengths), key=lambda s: (lengths[s], s)):
        code <<= int(lengths[s]) - prev_len
        codes[s] = code
        code += 1
        prev_len = int(lengths[s])
    return codes


def entropy_bits(counts: np.ndarray) -> float:
    """Shannon entropy in bits per symbol: the lower bound on the mean code length."""
    p = np.asarray(counts, dtype=np.float64)
    p = p[p > 0] / p.sum()
    return float(-(p * np.log2(p)).sum())


def huffman_encode(symbols: np.ndarray, lengths: np.ndarray, chunk: int = 1 << 20
                   ) -> tuple[bytes, int]:
    """Bit-pack the codes of `symbols`; returns (bytes, number of bits)."""
    symbols = np.asarray(symbols, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(symbols) and lengths[symbols].min() == 0:
        raise ValueError("a symbol to encode has no code (count 0)")
    codes = canonical_codes(lengths)
    pieces = []
    for start in range(0, len(symbols), chunk):
        s = symbols[start : start + chunk]
        lens, vals = lengths[s], codes[s]
        total = int(lens.sum())
        owner = np.repeat(np.arange(len(s)), lens)
        offset = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens)
        shift = (lens[owner] - 1 - offset).astype(np.uint64)
        pieces.append(((vals[owner] >> shift) & np.uint64(1)).astype(np.uint8))
    bits = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.uint8)
    return np.packbits(bits).tobytes(), len(bits)


def huffman_decode(data: bytes, n_bits: int, lengths: np.ndarray, count: int,
                   chunk: int = 1 << 22) -> np.ndarray:
    """Decode `count` symbols from the first `n_bits` bits of `data`."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    width = int(lengths.max())
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    if len(bits) < n_bits:
        raise ValueError(f"bit stream holds {len(bits)} bits, expected {n_bits}")
    bits = np.concatenate([bits[:n_bits], np.zeros(width, dtype=np.uint8)])
    codes = canonical_codes(lengths)
    order = np.array(sorted(np.flatnonzero(lengths), key=lambda s: (lengths[s], s)))
    # left-aligned first code of each symbol in canonical order: increasing
    starts = codes[order] << (width - lengths[order]).astype(np.uint64)

    def windows(pos: np.ndarray) -> np.ndarray:
        w = np.zeros(len(pos), dtype=np.uint64)
        for j in range(width):
            w = (w << np.uint64(1)) | bits[pos + j].astype(np.uint64)
        return w

    def symbol_at(pos: np.ndarray) -> np.ndarray:
        return order[np.searchsorted(starts, windows(pos), side="right") - 1]

    step = np.zeros(n_bits + 1, dtype=np.uint8)
    for lo in range(0, n_bits, chunk):
        pos = np.arange(lo, min(lo + chunk, n_bits))
        step[pos] = lengths[symbol_at(pos)]
    step_list = step.tolist()
    starts_list = [0] * count
    p = 0
    for i in range(count):
        starts_list[i] = p
        if p >= n_bits:
            raise ValueError("bit stream ended before all symbols were decoded")
        p += step_list[p]
    if p != n_bits:
        raise ValueError(f"decoded {count} symbols in {p} bits, expected {n_bits}")
    return symbol_at(np.array(starts_list, dtype=np.int64))

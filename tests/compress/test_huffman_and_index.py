"""Relative-index storage with fillers and Huffman coding: round trips and optimality bounds."""

import numpy as np
import pytest

from quantsurvey.compress.huffman import (
    canonical_codes,
    entropy_bits,
    huffman_code_lengths,
    huffman_decode,
    huffman_encode,
)
from quantsurvey.compress.sparse_index import decode_relative_indices, encode_relative_indices


def test_paper_figure_2_example():
    # 3-bit gaps (1..8): non-zeros at 1, 4 and 15; the gap of 11 needs one filler at 12
    gaps, symbols = encode_relative_indices(np.array([1, 4, 15]), np.array([5, 6, 7]), 3)
    assert (gaps + 1).tolist() == [2, 3, 8, 3] and symbols.tolist() == [5, 6, 0, 7]


@pytest.mark.parametrize("bits", [1, 2, 3, 5, 8])
def test_relative_indices_round_trip_on_adversarial_gaps(bits):
    span = 1 << bits
    rng = np.random.default_rng(bits)
    gaps = np.concatenate([[1, span, span + 1, 2 * span, 2 * span + 1, 1, 1, 7 * span],
                           rng.integers(1, 5 * span, 500)])
    positions = np.cumsum(gaps) - 1  # the first non-zero may sit at 0
    symbols = rng.integers(1, 50, len(positions))
    enc_gaps, enc_syms = encode_relative_indices(positions, symbols, bits)
    assert enc_gaps.max() <= span - 1  # every code fits in `bits`
    assert (enc_syms == 0).sum() == ((gaps - 1) // span).sum()  # fillers only where needed
    pos, sym = decode_relative_indices(enc_gaps, enc_syms)
    assert np.array_equal(pos, positions) and np.array_equal(sym, symbols)


def test_relative_indices_reject_bad_input():
    with pytest.raises(ValueError):
        encode_relative_indices(np.array([3, 2]), np.array([1, 1]), 4)
    with pytest.raises(ValueError):
        encode_relative_indices(np.array([1]), np.array([0]), 4)
    with pytest.raises(ValueError):
        encode_relative_indices(np.array([1]), np.array([1]), 0)


def test_huffman_lengths_on_a_textbook_example():
    # frequencies 45, 13, 12, 16, 9, 5 (CLRS 16.3): lengths 1, 3, 3, 3, 4, 4
    lengths = huffman_code_lengths(np.array([45, 13, 12, 16, 9, 5]))
    assert lengths.tolist() == [1, 3, 3, 3, 4, 4]
    assert sum(2.0 ** -lengths) == 1.0  # a complete prefix code (Kraft equality)


def test_canonical_codes_are_prefix_free():
    lengths = huffman_code_lengths(np.array([10, 1, 1, 5, 0, 3, 7, 2]))
    codes = canonical_codes(lengths)
    words = [format(int(c), f"0{int(n)}b") for c, n in zip(codes, lengths, strict=True) if n]
    assert not any(a != b and b.startswith(a) for a in words for b in words)


@pytest.mark.parametrize("alphabet, n, skew", [(32, 20_000, 3.0), (256, 50_000, 20.0),
                                               (4, 1_000, 0.3), (64, 5_000, 1000.0)])
def test_huffman_round_trip_and_mean_length_within_one_bit_of_entropy(alphabet, n, skew):
    rng = np.random.default_rng(alphabet)
    p = np.exp(-np.arange(alphabet) / skew)
    symbols = rng.choice(alphabet, size=n, p=p / p.sum())
    counts = np.bincount(symbols, minlength=alphabet)
    lengths = huffman_code_lengths(counts)
    data, n_bits = huffman_encode(symbols, lengths, chunk=777)
    assert n_bits == int((counts * lengths).sum())
    assert len(data) == -(-n_bits // 8)
    assert np.array_equal(huffman_decode(data, n_bits, lengths, n, chunk=1000), symbols)
    h = entropy_bits(counts)
    assert h <= n_bits / n < h + 1


def test_huffman_single_symbol_and_empty():
    lengths = huffman_code_lengths(np.array([0, 9, 0]))
    assert lengths.tolist() == [0, 1, 0]
    data, n_bits = huffman_encode(np.ones(9, dtype=int), lengths)
    assert n_bits == 9 and huffman_decode(data, n_bits, lengths, 9).tolist() == [1] * 9
    assert huffman_decode(b"", 0, lengths, 0).tolist() == []


def test_huffman_detects_a_short_stream():
    symbols = np.arange(8).repeat(3)
    lengths = huffman_code_lengths(np.bincount(symbols))
    data, n_bits = huffman_encode(symbols, lengths)
    with pytest.raises(ValueError):
        huffman_decode(data[:2], n_bits, lengths, len(symbols))

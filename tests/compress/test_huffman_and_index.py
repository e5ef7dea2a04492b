"""Relative-index storage with fillers and Huffman coding: round trips and optimality bounds."""

import dataclasses

import numpy as np
import pytest

from quantsurvey.compress.huffman import (
    MAX_CODE_LENGTH,
    canonical_codes,
    entropy_bits,
    huffman_code_lengths,
    huffman_decode,
    huffman_encode,
)
from quantsurvey.compress.sparse_index import (
    EncodeConfig,
    decode_relative_indices,
    encode_relative_indices,
)


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


@pytest.mark.parametrize("positions, symbols, bits, why", [
    ([3, 2], [1, 1], 4, "strictly increasing"), ([2, 2], [1, 1], 4, "strictly increasing"),
    ([-1, 2], [1, 1], 4, ">= 0"), ([-2, 2], [1, 1], 4, ">= 0"),
    ([1], [0], 4, "reserved for fillers"), ([1, 2], [1, -1], 4, "must be >= 1"),
    ([1], [1], 0, "index bits must be >= 1")])
def test_relative_indices_reject_bad_input(positions, symbols, bits, why):
    with pytest.raises(ValueError, match=why):
        encode_relative_indices(np.array(positions), np.array(symbols), bits)


def test_relative_indices_keep_the_symbols_dtype():
    gaps, symbols = encode_relative_indices(np.array([0, 40]), np.array([3, 4], np.uint16), 3)
    assert symbols.dtype == np.uint16 and symbols.tolist() == [3, 0, 0, 0, 0, 4]
    assert gaps.dtype == np.uint32 and (gaps + 1).tolist() == [1, 8, 8, 8, 8, 8]  # 40 = 5 × 8
    empty = encode_relative_indices(np.zeros(0, np.int64), np.zeros(0), 3)[1]
    assert empty.dtype == np.int64 and len(empty) == 0


@pytest.mark.parametrize("bits", [1, 16])
def test_index_bits_from_1_to_16_are_taken_and_the_config_is_frozen(bits):
    config = EncodeConfig(index_bits={"conv1": bits, "fc1": 5})
    assert config.index_bits == {"conv1": bits, "fc1": 5}
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.index_bits = {}  # type: ignore[misc]


@pytest.mark.parametrize("bits", [0, 17, -3, 8.0, "8"])
def test_index_bits_outside_1_to_16_are_refused_naming_the_layer(bits):
    with pytest.raises(ValueError, match=rf"index_bits.fc1={bits!r} must be an integer in"):
        EncodeConfig(index_bits={"conv1": 8, "fc1": bits})


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


def _stream(n=200, seed=0):
    symbols = np.random.default_rng(seed).integers(0, 6, n)
    lengths = huffman_code_lengths(np.bincount(symbols, minlength=6))
    data, n_bits = huffman_encode(symbols, lengths)
    assert n_bits > 256  # past the small integers Python caches, so `is` would not compare
    return symbols, lengths, data, n_bits


def test_decoding_more_or_fewer_symbols_than_the_stream_holds_is_refused():
    symbols, lengths, data, n_bits = _stream()
    assert np.array_equal(huffman_decode(data, n_bits, lengths, len(symbols)), symbols)
    with pytest.raises(ValueError, match="ended before all symbols were decoded"):
        huffman_decode(data, n_bits, lengths, len(symbols) + 1)
    with pytest.raises(ValueError, match=f"decoded {len(symbols) - 1} symbols in .* bits, "
                                         f"expected {n_bits}"):
        huffman_decode(data, n_bits, lengths, len(symbols) - 1)


def test_a_symbol_without_a_code_is_refused_and_no_symbols_encode_to_nothing():
    lengths = np.array([1, 1, 0])
    with pytest.raises(ValueError, match="has no code"):
        huffman_encode(np.array([0, 1, 2, 0]), lengths)
    assert huffman_encode(np.zeros(0, dtype=np.int64), lengths) == (b"", 0)


def test_the_chunk_size_changes_nothing_in_the_stream():
    symbols, lengths, data, n_bits = _stream(1000, seed=1)
    for chunk in (1, 7, 999, 1000, 1 << 20):
        assert huffman_encode(symbols, lengths, chunk=chunk) == (data, n_bits)
        assert np.array_equal(huffman_decode(data, n_bits, lengths, 1000, chunk=chunk), symbols)


def test_codes_as_long_as_the_limit_round_trip_and_longer_ones_are_refused():
    """Fibonacci counts give the deepest Huffman tree: n symbols, lengths n − 1 (twice), …, 1.
    The limit is part of the file format (decoders read 56-bit windows into uint64 words), so it
    is stated here, not only read from the module."""
    assert MAX_CODE_LENGTH == 56
    fib = [1, 1]
    while len(fib) < MAX_CODE_LENGTH + 2:
        fib.append(fib[-1] + fib[-2])
    lengths = huffman_code_lengths(np.array(fib[:MAX_CODE_LENGTH + 1]))
    assert lengths.tolist() == [MAX_CODE_LENGTH] + list(range(MAX_CODE_LENGTH, 0, -1))
    symbols = np.array([0, 1, MAX_CODE_LENGTH, 0, 5, 1])  # 0 and 1: the two longest codes
    data, n_bits = huffman_encode(symbols, lengths)
    assert n_bits == int(lengths[symbols].sum())
    assert np.array_equal(huffman_decode(data, n_bits, lengths, len(symbols)), symbols)
    with pytest.raises(ValueError, match=f"longer than {MAX_CODE_LENGTH} bits"):
        huffman_code_lengths(np.array(fib[:MAX_CODE_LENGTH + 2]))


def test_ties_are_broken_by_age_so_the_lengths_and_the_file_never_change():
    """Equal counts leave Huffman a choice; the encoded files of committed runs depend on the
    one made here (earlier entries, then merged subtrees in merge order), so it is pinned."""
    assert huffman_code_lengths(np.array([1] * 5)).tolist() == [3, 3, 2, 2, 2]
    assert huffman_code_lengths(np.array([2] * 6)).tolist() == [3, 3, 3, 3, 2, 2]
    assert huffman_code_lengths(np.array([1, 1, 2, 2, 4, 4, 8])).tolist() == [4, 4, 3, 3, 3, 2, 2]
    # two merged subtrees of equal count: the older one goes first (breaking the tie by their
    # symbols instead gives [2, 4, 4, 2, 4, 4, 2], as short in total but another file)
    assert huffman_code_lengths(np.array([3, 1, 1, 2, 1, 1, 2])).tolist() == [2, 3, 3, 3, 3, 3, 3]


def test_no_symbols_need_no_code_and_decode_to_nothing():
    assert huffman_code_lengths(np.zeros(4, dtype=np.int64)).tolist() == [0, 0, 0, 0]
    assert huffman_code_lengths(np.zeros(0, dtype=np.int64)).tolist() == []
    # an all-pruned layer: no code at all, nothing to decode
    empty = huffman_decode(b"", 0, np.zeros(4, dtype=np.int64), 0)
    assert empty.dtype == np.int64 and empty.tolist() == []


def test_entropy_counts_symbols_seen_once():
    assert entropy_bits(np.array([1, 1])) == 1.0
    assert entropy_bits(np.array([1, 3, 0])) == pytest.approx(2 - 0.75 * np.log2(3))


def test_a_stream_cut_inside_its_last_code_is_refused():
    symbols, lengths, data, n_bits = _stream()
    assert lengths[symbols[-1]] >= 2  # the cut lands inside the last code, not after it
    for count in (len(symbols), len(symbols) + 1):
        with pytest.raises(ValueError, match="decoded .* bits|ended before"):
            huffman_decode(data, n_bits - 1, lengths, count)

"""The two XNOR-popcount kernels (compress/xnor_popcount.py): the compiled one is built where a
compiler exists, agrees with numpy's and with float ±1 products at every size (blocks of rows,
words that are not full, zero padding masks), and refuses what it cannot compute; the packed
word layout; the direct packed convolution's checks."""

from __future__ import annotations

import shutil
import sysconfig

import numpy as np
import pytest
import torch

from quantsurvey.compress import xnor_popcount
from quantsurvey.compress.binary import sign_binarize
from quantsurvey.compress.xnor_popcount import (
    binary_conv2d_packed,
    binary_matmul,
    masked_binary_matmul,
    pack_bits,
    pack_channel_signs,
    pack_conv_taps,
    pack_signs,
)
from tests.conftest import needs_compiled

compiled = xnor_popcount._popcount


def test_the_compiled_kernel_is_built_where_a_c_compiler_exists():
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler}): the numpy kernel is the only one")
    assert compiled is not None, "a C compiler exists but `pip install -e .` built no _popcount"
    assert xnor_popcount.KERNEL == f"compiled ({compiled.KERNEL})"
    assert compiled.KERNEL in ("avx512vpopcntdq", "popcnt", "portable")


@needs_compiled
@pytest.mark.parametrize(("n", "m", "k"), [(1, 4096, 4096), (70, 33, 4096), (3000, 3, 64),
                                           (5, 9, 1), (2, 3, 127), (0, 4, 64), (4, 0, 64)])
def test_compiled_and_numpy_kernels_give_the_float_integers(n, m, k):
    """(70, ·, 4096) and (3000, ·, 64) cross the compiled kernel's row blocks (2048 / words)."""
    gen = torch.Generator().manual_seed(n + m + k)
    a = torch.randn(n, k, generator=gen)
    b = sign_binarize(torch.randn(m, k, generator=gen))
    want = (sign_binarize(a) @ b.T).numpy().astype(np.int32) if n and m else np.zeros((n, m),
                                                                                     np.int32)
    for kernel in ("compiled", "numpy"):
        got = binary_matmul(pack_signs(a), pack_signs(b), k, kernel=kernel)
        assert got.dtype == np.int32 and np.array_equal(got, want), kernel
    a[a.abs() < 0.6] = 0  # about half of the entries: a convolution's padding
    want = (a.sign() @ b.T).numpy().astype(np.int32) if n and m else np.zeros((n, m), np.int32)
    for kernel in ("compiled", "numpy"):
        got = masked_binary_matmul(pack_signs(a), pack_bits(a != 0), pack_signs(b), kernel=kernel)
        assert np.array_equal(got, want), kernel


@needs_compiled
def test_the_compiled_kernel_checks_every_buffer_size():
    a, b = np.zeros((2, 3), np.uint64), np.zeros((4, 3), np.uint64)
    out = np.empty((2, 4), np.int32)
    compiled.matmul(a, None, b, out, 2, 4, 3, 192)
    assert (out == 192).all()  # equal rows: every dot product is the full length
    for args, name in [((a, None, b, out, 3, 4, 3, 1), "a holds"),
                       ((a, None, b, out, 2, 5, 3, 1), "b holds"),
                       ((a, None, b, np.empty((2, 3), np.int32), 2, 4, 3, 1), "out holds"),
                       ((a, np.zeros((2, 2), np.uint64), b, out, 2, 4, 3, 1), "valid holds"),
                       ((a, None, b, out, -2, 4, 3, 1), "sizes must be >= 0")]:
        with pytest.raises(ValueError, match=name):
            compiled.matmul(*args)
    with pytest.raises(TypeError):
        compiled.matmul(a, None, b, out.astype(np.int32).tobytes(), 2, 4, 3, 1)  # read-only out
    with pytest.raises(ValueError, match=r"\(N, W\) and \(M, W\)"):
        binary_matmul(a, np.zeros((4, 2), np.uint64), 128, kernel="compiled")


def test_kernel_names_are_checked(monkeypatch):
    a = pack_signs(torch.ones(1, 8))
    with pytest.raises(ValueError, match="kernel must be one of"):
        binary_matmul(a, a, 8, kernel="fast")
    monkeypatch.setattr(xnor_popcount, "_popcount", None)
    with pytest.raises(RuntimeError, match="not built .* `pip install -e .` again"):
        masked_binary_matmul(a, a, a, kernel="compiled")
    assert binary_matmul(a, a, 8).tolist() == [[8]]  # auto falls back to numpy


@pytest.mark.parametrize("kernel", ["numpy", pytest.param("compiled", marks=needs_compiled)])
@pytest.mark.parametrize("k", [1, 63, 64, 65, 100, 1000])
def test_xnor_popcount_equals_the_float_dot_product(k, kernel):
    gen = torch.Generator().manual_seed(k)
    a = sign_binarize(torch.randn(7, k, generator=gen))
    b = sign_binarize(torch.randn(9, k, generator=gen))
    got = binary_matmul(pack_signs(a), pack_signs(b), k, chunk=3, kernel=kernel)
    assert np.array_equal(got, (a @ b.T).numpy().astype(np.int32))


def _words_by_hand(bits: list[list[int]]) -> list[list[int]]:
    """The packed layout computed bit by bit: bit i of a row is bit 7 − i % 8 of byte i // 8
    (numpy's packbits order), eight bytes make a little-endian uint64, zero-padded."""
    out = []
    for row in bits:
        padded = row + [0] * (-len(row) % 64)
        data = bytes(sum(b << (7 - i) for i, b in enumerate(padded[j:j + 8]))
                     for j in range(0, len(padded), 8))
        out.append([int.from_bytes(data[w:w + 8], "little") for w in range(0, len(data), 8)])
    return out


@pytest.mark.parametrize("k", [1, 8, 63, 64, 65, 128, 130])
def test_packed_words_have_the_documented_layout_and_width(k):
    """pack_signs: bit 1 exactly where x >= 0 (sign(0) = +1, tiny negatives 0), ceil(K/64)
    words, the padding zero. (Every dot-product test is blind to inverted bits, which invert
    both operands alike, and to extra zero words.)"""
    gen = torch.Generator().manual_seed(k)
    x = torch.randn(3, k, generator=gen)
    x[0, 0], x[1, -1], x[2, k // 2] = 0.0, -1e-9, 0.5  # the edges of x >= 0
    words = pack_signs(x)
    assert words.dtype == np.uint64 and words.shape == (3, -(-k // 64))
    bits = (x >= 0).int().tolist()
    assert words.tolist() == _words_by_hand(bits)
    assert pack_bits(x >= 0).tolist() == words.tolist()
    assert pack_bits((x >= 0).numpy()).tolist() == words.tolist()  # numpy rows alike


def test_packing_anything_but_booleans_is_refused():
    for rows in (np.array([[1, 0]]), np.array([[0.5, -1.0]]), np.array([["a", "b"]])):
        with pytest.raises(ValueError, match="pack_bits needs booleans"):
            pack_bits(rows)


@needs_compiled
def test_the_direct_packed_convolution_refuses_what_does_not_fit():
    act = pack_channel_signs(torch.ones(1, 70, 4, 4))  # 2 words per position
    weights = pack_conv_taps(torch.ones(3, 60, 3, 3))  # 1 word per tap
    with pytest.raises(ValueError, match="2 words per position, the weights 1"):
        binary_conv2d_packed(act, weights, 70, (1, 1), (1, 1))
    weights = pack_conv_taps(torch.ones(3, 70, 3, 3))
    out = binary_conv2d_packed(act, weights, 70, (1, 1), (1, 1))
    assert out.shape == (1, 3, 4, 4) and out[0, 0, 0, 0] == 4 * 70 and out[0, 0, 1, 1] == 9 * 70
    with pytest.raises(ValueError, match="channels <= 64"):
        binary_conv2d_packed(act, weights, 129, (1, 1), (1, 1))
    with pytest.raises(ValueError, match="strides must be >= 1"):
        binary_conv2d_packed(act, weights, 70, (0, 1), (1, 1))
    with pytest.raises(ValueError, match="sizes must be >= 0, strides >= 1"):  # the C check
        xnor_popcount._popcount.conv(act, weights, np.empty((1, 3, 4, 4), np.int32), 1, 4, 4, 2,
                                     70, 3, 3, 3, 4, 4, 0, 1, 1, 1)


@pytest.mark.parametrize("kernel", ["numpy", pytest.param("compiled", marks=needs_compiled)])
def test_masked_popcount_counts_only_valid_positions(kernel):
    rows = torch.tensor([[1.0, 0.0, -1.0, 1.0], [0.0, 0.0, 1.0, -1.0]])
    w = torch.tensor([[1.0, 1.0, 1.0, 1.0], [-1.0, 1.0, -1.0, 1.0]])
    got = masked_binary_matmul(pack_signs(rows), pack_bits(rows != 0), pack_signs(w),
                               kernel=kernel)
    assert got.tolist() == (rows @ w.T).int().tolist() == [[1, 1], [0, -2]]
    with pytest.raises(ValueError, match="needs booleans"):
        pack_bits(rows)

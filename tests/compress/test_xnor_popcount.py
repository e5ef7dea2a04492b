"""The two XNOR-popcount kernels (compress/xnor_popcount.py): the compiled one is built where a
compiler exists, agrees with numpy's and with float ±1 products at every size (blocks of rows,
words that are not full, zero padding masks), and refuses what it cannot compute."""

from __future__ import annotations

import shutil
import sysconfig

import numpy as np
import pytest
import torch

from quantsurvey.compress import xnor_popcount
from quantsurvey.compress.binary import sign_binarize
from quantsurvey.compress.xnor_popcount import (
    binary_matmul,
    masked_binary_matmul,
    pack_bits,
    pack_signs,
)

compiled = xnor_popcount._popcount


def test_the_compiled_kernel_is_built_where_a_c_compiler_exists():
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler}): the numpy kernel is the only one")
    assert compiled is not None, "a C compiler exists but `pip install -e .` built no _popcount"
    assert xnor_popcount.KERNEL == f"compiled ({compiled.KERNEL})"
    assert compiled.KERNEL in ("avx512vpopcntdq", "popcnt", "portable")


@pytest.mark.skipif(compiled is None, reason="compiled kernel not built")
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


@pytest.mark.skipif(compiled is None, reason="compiled kernel not built")
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

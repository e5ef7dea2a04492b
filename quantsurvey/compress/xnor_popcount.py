"""Binary dot products on packed words: XNOR and popcount (BinaryNet §5, XNOR-Net §3.2).

Vectors of ±1 are packed 64 to a word (bit 1 for +1, numpy's packbits, zero-padded to whole
words: padding bits are 0 in both operands, so they never differ). For two packed vectors of
length n, the dot product is

    a · b = n − 2 · popcount(a XOR b)

(matching signs add 1, differing ones subtract 1). Two kernels give the same exact integers:

- `compiled`: quantsurvey/compress/_popcount.c, one fused loop (XOR, hardware popcount, sum)
  with no temporaries, built by `pip install` where a C compiler exists (optional in setup.py);
  it picks AVX-512 VPOPCNTDQ or POPCNT at run time. At batch 1 the numpy kernel spends most of its
  time writing and re-reading the XOR and count arrays, so this is the one that makes packed
  inference pay (results/benchmarks/xnor.json).
- `numpy`: numpy's `bitwise_count` (numpy ≥ 2.0) on XORed words, summed per row; no build.

`KERNEL` says which one runs by default (`kernel="auto"`): the compiled one if it was built.
"""

from __future__ import annotations

import numpy as np
import torch

try:  # built by setup.py where a C compiler exists; absent elsewhere
    from quantsurvey.compress import _popcount
except ImportError:
    _popcount = None

KERNEL = f"compiled ({_popcount.KERNEL})" if _popcount is not None else "numpy"
KERNELS = ("auto", "compiled", "numpy")


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


def pack_channel_signs(x: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) → uint64 words (N, H, W, ceil(C/64)): the signs of each position's channels
    (bit 1 where x ≥ 0): the activations of `binary_conv2d_packed`."""
    n, c, h, w = x.shape
    return pack_signs(x.detach().permute(0, 2, 3, 1).reshape(-1, c)).reshape(n, h, w, -1)


def pack_conv_taps(weight: torch.Tensor) -> np.ndarray:
    """A conv weight (O, C, KH, KW) of ±1 → uint64 words (KH, KW, ceil(C/64), O): each filter
    tap's channel signs, output channels innermost (the compiled kernel's inner loop runs over
    them): the weights of `binary_conv2d_packed`."""
    return np.ascontiguousarray(np.transpose(pack_channel_signs(weight), (1, 2, 3, 0)))


def uses_compiled(kernel: str) -> bool:
    """Whether `kernel` ('auto', 'compiled' or 'numpy') runs the compiled kernel here; asking for
    'compiled' where it was not built is an error."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if kernel == "compiled" and _popcount is None:
        raise RuntimeError("the compiled popcount kernel was not built (no C compiler at install "
                           "time): install one and run `pip install -e .` again, or use "
                           "kernel='numpy'")
    return _popcount is not None and kernel != "numpy"


def _compiled_matmul(a_words: np.ndarray, valid_words: np.ndarray | None, b_words: np.ndarray,
                     k: int) -> np.ndarray:
    a = np.ascontiguousarray(a_words, dtype=np.uint64)
    b = np.ascontiguousarray(b_words, dtype=np.uint64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"packed rows must be (N, W) and (M, W), got {a.shape} and {b.shape}")
    valid = None if valid_words is None else np.ascontiguousarray(valid_words, dtype=np.uint64)
    out = np.empty((a.shape[0], b.shape[0]), dtype=np.int32)
    _popcount.matmul(a, valid, b, out, a.shape[0], b.shape[0], a.shape[1], k)
    return out


def binary_matmul(a_words: np.ndarray, b_words: np.ndarray, k: int, chunk: int = 16,
                  workspace: dict | None = None, kernel: str = "auto") -> np.ndarray:
    """(N, W) × (M, W) packed ±1 rows → (N, M) int32 dot products of length `k`:
    k − 2·popcount(a XOR b). The numpy kernel works `chunk` rows of a at a time (bounded
    memory), and a `workspace` dict keeps its temporary arrays between calls (no fresh pages per
    call: for batch 1 the allocation cost as much as the arithmetic)."""
    if uses_compiled(kernel):
        return _compiled_matmul(a_words, None, b_words, k)
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


def masked_binary_matmul(a_words: np.ndarray, valid_words: np.ndarray, b_words: np.ndarray,
                         kernel: str = "auto") -> np.ndarray:
    """Like `binary_matmul` where some entries of each a-row are 0 (a convolution's zero
    padding; `valid_words` = `pack_bits(row != 0)`): only positions whose valid bit is set
    count, so row i's dot product with b_j is popcount(valid_i) − 2·popcount((a_i XOR b_j) AND
    valid_i)."""
    if uses_compiled(kernel):
        return _compiled_matmul(a_words, valid_words, b_words, 0)
    n, m = a_words.shape[0], b_words.shape[0]
    out = np.empty((n, m), dtype=np.int32)
    counts = np.bitwise_count(valid_words).sum(axis=1, dtype=np.int32)
    for start in range(0, n, 64):
        a = a_words[start : start + 64, None, :]
        v = valid_words[start : start + 64, None, :]
        differ = np.bitwise_count((a ^ b_words[None, :, :]) & v).sum(axis=2, dtype=np.int32)
        out[start : start + 64] = counts[start : start + 64, None] - 2 * differ
    return out


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a convolution along one axis: ⌊(size + 2·padding − kernel) / stride⌋ + 1
    (may be ≤ 0 when the kernel is larger than the padded input)."""
    return (size + 2 * padding - kernel) // stride + 1


def binary_conv2d_packed(act_words: np.ndarray, tap_words: np.ndarray, channels: int,
                         stride: tuple[int, int], padding: tuple[int, int]) -> np.ndarray:
    """A convolution of ±1 activations (`pack_channel_signs`, (N, H, W, Cw)) with ±1 weights
    (`pack_conv_taps`, (KH, KW, Cw, O)), computed on the words by the compiled kernel: each
    output is Σ over the filter taps inside the input of channels − 2·popcount(a XOR w), the zero
    padding left out. Returns int32 (N, O, OH, OW), equal to conv2d on the signs."""
    if _popcount is None:
        raise RuntimeError("binary_conv2d_packed needs the compiled popcount kernel (not built: "
                           "no C compiler at install time)")
    if min(stride) < 1 or min(padding) < 0:
        raise ValueError(f"strides must be >= 1 and paddings >= 0, got {stride} and {padding}")
    act = np.ascontiguousarray(act_words, dtype=np.uint64)
    taps = np.ascontiguousarray(tap_words, dtype=np.uint64)
    (n, h, w, cw), (kh, kw, tcw, o) = act.shape, taps.shape
    if cw != tcw:
        raise ValueError(f"activations hold {cw} words per position, the weights {tcw}")
    oh = conv_output_size(h, kh, stride[0], padding[0])
    ow = conv_output_size(w, kw, stride[1], padding[1])
    out = np.empty((n, max(oh, 0), max(ow, 0), o), dtype=np.int32)  # channels last: the
    _popcount.conv(act, taps, out, n, h, w, cw, channels, o, kh, kw, out.shape[1],  # kernel's
                   out.shape[2], *stride, *padding)  # writes stay in one cache line per position
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))

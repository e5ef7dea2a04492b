/* XNOR-popcount dot products of packed ±1 rows (BinaryNet §5, XNOR-Net §3.2): the compiled
 * kernel behind quantsurvey.compress.xnor_popcount.binary_matmul, masked_binary_matmul and
 * binary_conv2d_packed.
 *
 *   dot(a_i, b_j) = k − 2·popcount(a_i XOR b_j)                       (unmasked)
 *   dot(a_i, b_j) = popcount(v_i) − 2·popcount((a_i XOR b_j) AND v_i)  (masked: v_i marks the
 *                                                                      row's valid entries)
 *
 * One fused pass over the words (no temporaries): b streamed once per block of a's rows, the
 * block kept in the L1 cache. Built at install time where a C compiler exists (setup.py, optional);
 * elsewhere the numpy formulation in xnor_popcount.py runs instead and gives the same integers.
 * No numpy headers: arrays arrive through the buffer protocol, their sizes checked here. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#if defined(_MSC_VER)
#include <intrin.h>
#define POPCOUNT64(x) ((int64_t)__popcnt64(x))
#else
#define POPCOUNT64(x) ((int64_t)__builtin_popcountll(x))
#endif

/* The loop, compiled once per instruction set: on x86-64 with GCC or Clang the widest one the
 * CPU has (AVX-512 VPOPCNTDQ, else POPCNT) is chosen at run time; elsewhere the portable one. */
#define XNOR_POPCOUNT_BODY                                                                   \
    /* rows of a in blocks of about 16 KiB (L1), each block against every row of b */        \
    Py_ssize_t block = w > 0 ? 2048 / w : n;                                                 \
    if (block < 1)                                                                           \
        block = 1;                                                                           \
    for (Py_ssize_t i0 = 0; i0 < n; i0 += block) {                                           \
        Py_ssize_t i1 = i0 + block < n ? i0 + block : n;                                     \
        for (Py_ssize_t j = 0; j < m; j++) {                                                 \
            const uint64_t *bj = b + j * w;                                                  \
            for (Py_ssize_t i = i0; i < i1; i++) {                                           \
                const uint64_t *ai = a + i * w;                                              \
                int64_t differ = 0, length = k;                                              \
                if (valid) {                                                                 \
                    const uint64_t *vi = valid + i * w;                                      \
                    length = 0;                                                              \
                    for (Py_ssize_t t = 0; t < w; t++) {                                     \
                        differ += POPCOUNT64((ai[t] ^ bj[t]) & vi[t]);                       \
                        length += POPCOUNT64(vi[t]);                                         \
                    }                                                                        \
                } else {                                                                     \
                    for (Py_ssize_t t = 0; t < w; t++)                                       \
                        differ += POPCOUNT64(ai[t] ^ bj[t]);                                 \
                }                                                                            \
                out[i * m + j] = (int32_t)(length - 2 * differ);                             \
            }                                                                                \
        }                                                                                    \
    }

#define KERNEL_ARGS                                                                          \
    (const uint64_t *a, const uint64_t *valid, const uint64_t *b, int32_t *out, Py_ssize_t n, \
     Py_ssize_t m, Py_ssize_t w, int32_t k)

/* A binary convolution straight on packed activations: act (n, h, w, cw) holds each position's
 * c channel signs in cw words, weights (kh, kw, cw, o) each filter tap's word for every output
 * channel (innermost, so the loop over output channels vectorises); out (n, oh, ow, o) = Σ over
 * the taps inside the input of c − 2·popcount(act XOR weight). The zero padding is neither +1
 * nor −1, so taps outside the input are left out (as conv2d's zeros add nothing). acc: o
 * counters of scratch. */
#define XNOR_CONV_BODY                                                                       \
    for (Py_ssize_t ni = 0; ni < n; ni++)                                                    \
        for (Py_ssize_t oy = 0; oy < oh; oy++)                                               \
            for (Py_ssize_t ox = 0; ox < ow; ox++) {                                         \
                int64_t taps = 0;                                                            \
                for (Py_ssize_t oi = 0; oi < o; oi++)                                        \
                    acc[oi] = 0;                                                             \
                for (Py_ssize_t ky = 0; ky < kh; ky++) {                                     \
                    Py_ssize_t iy = oy * sh - ph + ky;                                       \
                    if (iy < 0 || iy >= h)                                                   \
                        continue;                                                            \
                    for (Py_ssize_t kx = 0; kx < kw; kx++) {                                 \
                        Py_ssize_t ix = ox * sw - pw + kx;                                   \
                        if (ix < 0 || ix >= w)                                               \
                            continue;                                                        \
                        const uint64_t *ai = act + ((ni * h + iy) * w + ix) * cw;            \
                        const uint64_t *wi = weights + (ky * kw + kx) * cw * o;              \
                        for (Py_ssize_t t = 0; t < cw; t++) {                                \
                            const uint64_t at = ai[t];                                       \
                            const uint64_t *wt = wi + t * o;                                 \
                            for (Py_ssize_t oi = 0; oi < o; oi++)                            \
                                acc[oi] += (uint64_t)POPCOUNT64(at ^ wt[oi]);                \
                        }                                                                    \
                        taps++;                                                              \
                    }                                                                        \
                }                                                                            \
                int32_t *po = out + ((ni * oh + oy) * ow + ox) * o;                          \
                for (Py_ssize_t oi = 0; oi < o; oi++)                                        \
                    po[oi] = (int32_t)(taps * c - 2 * (int64_t)acc[oi]);                     \
            }

#define CONV_ARGS                                                                            \
    (const uint64_t *act, const uint64_t *weights, int32_t *out, uint64_t *acc, Py_ssize_t n,  \
     Py_ssize_t h,                                                                           \
     Py_ssize_t w, Py_ssize_t cw, Py_ssize_t c, Py_ssize_t o, Py_ssize_t kh, Py_ssize_t kw,   \
     Py_ssize_t oh, Py_ssize_t ow, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw)

static void xnor_popcount_portable KERNEL_ARGS { XNOR_POPCOUNT_BODY }
static void xnor_conv_portable CONV_ARGS { XNOR_CONV_BODY }

#if defined(__GNUC__) && defined(__x86_64__)
#define HAVE_X86_CLONES 1
__attribute__((target("popcnt"))) static void xnor_popcount_popcnt KERNEL_ARGS
{ XNOR_POPCOUNT_BODY }
__attribute__((target("avx512f,avx512vpopcntdq"))) static void xnor_popcount_avx512 KERNEL_ARGS
{ XNOR_POPCOUNT_BODY }
__attribute__((target("popcnt"))) static void xnor_conv_popcnt CONV_ARGS { XNOR_CONV_BODY }
__attribute__((target("avx512f,avx512vpopcntdq"))) static void xnor_conv_avx512 CONV_ARGS
{ XNOR_CONV_BODY }
#endif

static void (*xnor_popcount) KERNEL_ARGS = xnor_popcount_portable;
static void (*xnor_conv) CONV_ARGS = xnor_conv_portable;
static const char *kernel_name = "portable";

static void
choose_kernel(void)
{
#ifdef HAVE_X86_CLONES
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512vpopcntdq")) {
        xnor_popcount = xnor_popcount_avx512;
        xnor_conv = xnor_conv_avx512;
        kernel_name = "avx512vpopcntdq";
    } else if (__builtin_cpu_supports("popcnt")) {
        xnor_popcount = xnor_popcount_popcnt;
        xnor_conv = xnor_conv_popcnt;
        kernel_name = "popcnt";
    }
#endif
}

static int
check_size(const Py_buffer *buf, Py_ssize_t items, Py_ssize_t itemsize, const char *name)
{
    if (buf->len != items * itemsize) {
        PyErr_Format(PyExc_ValueError, "%s holds %zd bytes, expected %zd (%zd items of %zd)",
                     name, buf->len, items * itemsize, items, itemsize);
        return -1;
    }
    return 0;
}

/* matmul(a, valid, b, out, n, m, w, k): a, valid (or None) (n, w) and b (m, w) uint64 words,
 * C-contiguous; out (n, m) int32, written. */
static PyObject *
py_matmul(PyObject *self, PyObject *args)
{
    Py_buffer a, b, out, valid = {0};
    PyObject *valid_obj;
    Py_ssize_t n, m, w;
    int k;
    if (!PyArg_ParseTuple(args, "y*Oy*w*nnni", &a, &valid_obj, &b, &out, &n, &m, &w, &k))
        return NULL;
    int has_valid = valid_obj != Py_None, failed = 0;
    if (has_valid && PyObject_GetBuffer(valid_obj, &valid, PyBUF_SIMPLE) < 0)
        failed = 1;
    if (!failed && (n < 0 || m < 0 || w < 0)) {
        PyErr_Format(PyExc_ValueError, "sizes must be >= 0, got n=%zd m=%zd w=%zd", n, m, w);
        failed = 1;
    }
    if (!failed && (check_size(&a, n * w, 8, "a") ||
                    check_size(&b, m * w, 8, "b") || check_size(&out, n * m, 4, "out") ||
                    (has_valid && check_size(&valid, n * w, 8, "valid"))))
        failed = 1;
    if (!failed) {
        Py_BEGIN_ALLOW_THREADS
        xnor_popcount((const uint64_t *)a.buf, has_valid ? (const uint64_t *)valid.buf : NULL,
                      (const uint64_t *)b.buf, (int32_t *)out.buf, n, m, w, (int32_t)k);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    PyBuffer_Release(&out);
    if (has_valid && valid.obj)
        PyBuffer_Release(&valid);
    if (failed)
        return NULL;
    Py_RETURN_NONE;
}

/* conv(act, weights, out, n, h, w, cw, c, o, kh, kw, oh, ow, sh, sw, ph, pw): see
 * XNOR_CONV_BODY; every buffer C-contiguous, act (n, h, w, cw) and weights (kh, kw, cw, o)
 * uint64, out (n, oh, ow, o) int32, written. */
static PyObject *
py_conv(PyObject *self, PyObject *args)
{
    Py_buffer act, weights, out;
    Py_ssize_t n, h, w, cw, c, o, kh, kw, oh, ow, sh, sw, ph, pw;
    if (!PyArg_ParseTuple(args, "y*y*w*nnnnnnnnnnnnnn", &act, &weights, &out, &n, &h, &w, &cw,
                          &c, &o, &kh, &kw, &oh, &ow, &sh, &sw, &ph, &pw))
        return NULL;
    int failed = 0;
    if (n < 0 || h < 0 || w < 0 || cw < 0 || c < 0 || c > 64 * cw || o < 0 || kh < 0 ||
        kw < 0 || oh < 0 || ow < 0 || sh < 1 || sw < 1 || ph < 0 || pw < 0) {
        PyErr_SetString(PyExc_ValueError, "conv: sizes must be >= 0, strides >= 1 and "
                                          "channels <= 64 * words");
        failed = 1;
    }
    if (!failed && (check_size(&act, n * h * w * cw, 8, "act") ||
                    check_size(&weights, o * kh * kw * cw, 8, "weights") ||
                    check_size(&out, n * o * oh * ow, 4, "out")))
        failed = 1;
    uint64_t *acc = NULL;
    if (!failed && !(acc = PyMem_Malloc((o > 0 ? o : 1) * sizeof(uint64_t)))) {
        PyErr_NoMemory();
        failed = 1;
    }
    if (!failed) {
        Py_BEGIN_ALLOW_THREADS
        xnor_conv((const uint64_t *)act.buf, (const uint64_t *)weights.buf, (int32_t *)out.buf,
                  acc, n, h, w, cw, c, o, kh, kw, oh, ow, sh, sw, ph, pw);
        Py_END_ALLOW_THREADS
    }
    PyMem_Free(acc);
    PyBuffer_Release(&act);
    PyBuffer_Release(&weights);
    PyBuffer_Release(&out);
    if (failed)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"conv", py_conv, METH_VARARGS,
     "conv(act, weights, out, n, h, w, cw, c, o, kh, kw, oh, ow, sh, sw, ph, pw): a binary "
     "convolution on channel-packed signs (act (n, h, w, cw), weights (kh, kw, cw, o))"},
    {"matmul", py_matmul, METH_VARARGS,
     "matmul(a, valid, b, out, n, m, w, k): out[i, j] = k - 2*popcount(a_i XOR b_j), or with "
     "valid: popcount(valid_i) - 2*popcount((a_i XOR b_j) AND valid_i)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_popcount",
                                    "Fused XNOR-popcount kernel (see xnor_popcount.py)", -1,
                                    methods};

PyMODINIT_FUNC
PyInit__popcount(void)
{
    choose_kernel();
    PyObject *mod = PyModule_Create(&module);
    if (mod && PyModule_AddStringConstant(mod, "KERNEL", kernel_name) < 0) {
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}

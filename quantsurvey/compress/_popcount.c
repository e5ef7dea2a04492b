/* XNOR-popcount dot products of packed ±1 rows (BinaryNet §5, XNOR-Net §3.2): the compiled
 * kernel behind quantsurvey.compress.xnor_popcount.binary_matmul and masked_binary_matmul.
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

static void xnor_popcount_portable KERNEL_ARGS { XNOR_POPCOUNT_BODY }

#if defined(__GNUC__) && defined(__x86_64__)
#define HAVE_X86_CLONES 1
__attribute__((target("popcnt"))) static void xnor_popcount_popcnt KERNEL_ARGS
{ XNOR_POPCOUNT_BODY }
__attribute__((target("avx512f,avx512vpopcntdq"))) static void xnor_popcount_avx512 KERNEL_ARGS
{ XNOR_POPCOUNT_BODY }
#endif

static void (*xnor_popcount) KERNEL_ARGS = xnor_popcount_portable;
static const char *kernel_name = "portable";

static void
choose_kernel(void)
{
#ifdef HAVE_X86_CLONES
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512vpopcntdq")) {
        xnor_popcount = xnor_popcount_avx512;
        kernel_name = "avx512vpopcntdq";
    } else if (__builtin_cpu_supports("popcnt")) {
        xnor_popcount = xnor_popcount_popcnt;
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

static PyMethodDef methods[] = {
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

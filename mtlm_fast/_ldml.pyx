"""K3: per-label LDML loss and gradient sums over each label's stored pairs.

The caller (``mtlm._ldml``) hands in validated CSR pair lists (indices into the
pair store in range, signs +1/-1) and float64 weights.  Each label's sums are
written by exactly one thread (parallel over labels), in an order fixed by the
label's own pairs; the shared sum is taken afterwards serially in label order,
so the result does not depend on the number of threads.

The arithmetic lives in ``_ldml_kernels.h``: per block of a label's pairs, z
for 4 pairs at a time, then a branch-free vectorised exp/log1p/sigmoid pass,
then the gradient sums in registers; an AVX2 build of it is picked at run time
on x86-64.  The "base" and "avx2" levels give the same bits; "scalar" (libm,
for compilers without vector extensions) agrees to rounding.
"""
import numpy as np

from cython.parallel cimport prange
from libc.stdint cimport int8_t

from mtlm_fast._typedefs cimport intp_t, int32_t, float32_t, float64_t


cdef extern from "_ldml_kernels.h" nogil:
    int mtlm_ldml_simd
    int mtlm_ldml_simd_set(int level)
    intp_t mtlm_ldml_work_size(intp_t F)
    # Function pointers set by mtlm_ldml_simd_set.
    void mtlm_ldml_label(const float32_t* d, intp_t F, const int32_t* pair,
                         const int8_t* sign, intp_t n, const float64_t* w,
                         float64_t bias, float64_t scale, float64_t* work,
                         float64_t* g, float64_t* loss)
    void mtlm_ldml_exp_log1p(const float64_t* x, intp_t n, float64_t* e,
                             float64_t* l)


cdef int _simd_current() noexcept:
    return mtlm_ldml_simd


cdef int _simd_use(int level) noexcept:
    return mtlm_ldml_simd_set(level)


include "_simd_api.pxi"


def _exp_log1p(const float64_t[::1] x):
    """(exp(x), log1p(x)) by the kernels' own routines, for the tests.

    Valid for x <= 0 (exp) and 0 <= x <= 1 (log1p) at the vector levels; the
    scalar level is libm.
    """
    e = np.empty(x.shape[0])
    lp = np.empty(x.shape[0])
    cdef float64_t[::1] ev = e, lv = lp
    if x.shape[0]:
        mtlm_ldml_exp_log1p(&x[0], x.shape[0], &ev[0], &lv[0])
    return e, lp


def ldml_grad(const float32_t[:, ::1] d, const int32_t[::1] ptr,
              const int32_t[::1] pair, const int8_t[::1] sign,
              const float64_t[:, ::1] W, const float64_t[::1] bias,
              const float64_t[::1] scale, float64_t[:, ::1] grad,
              float64_t[::1] loss, float64_t[::1] grad_shared, int n_threads):
    """Data terms of the LDML objective and gradient, per label.

    For label m and its pairs r in pair[ptr[m]:ptr[m+1]] with sign s:
    z = s (W[m] . d[r] - bias[m]); loss[m] = scale[m] sum softplus(z);
    grad[m] = scale[m] sum s sigmoid(z) [-1, d[r]];
    grad_shared = sum over m, in label order, of grad[m, 1:].
    Shapes: d (P, F), W (M, F), grad (M, F + 1), grad_shared (F,).
    """
    cdef intp_t M = W.shape[0], F = W.shape[1]
    cdef intp_t m, f, r0, n
    cdef float64_t[:, ::1] work = np.empty((max(M, 1), mtlm_ldml_work_size(F)))
    # Raw pointers, NULL for empty arrays (no [0] index of an empty view).
    cdef const float32_t* dp = &d[0, 0] if d.shape[0] and d.shape[1] else NULL
    cdef const float64_t* wp = &W[0, 0] if M and F else NULL
    cdef const int32_t* pp = &pair[0] if pair.shape[0] else NULL
    cdef const int8_t* sp = &sign[0] if sign.shape[0] else NULL
    with nogil:
        for m in prange(M, schedule="dynamic", num_threads=n_threads):
            r0 = ptr[m]
            n = ptr[m + 1] - r0
            mtlm_ldml_label(dp, F, pp + r0, sp + r0, n, wp + m * F, bias[m],
                            scale[m], &work[m, 0], &grad[m, 0], &loss[m])
        for f in range(F):
            grad_shared[f] = 0.0
        for m in range(M):
            for f in range(F):
                grad_shared[f] = grad_shared[f] + grad[m, f + 1]

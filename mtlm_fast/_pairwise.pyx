"""K1: base distances between row blocks (ALGORITHM.md section 1 and 7).

Every function here trusts its caller (``mtlm._distances``): C-contiguous
inputs of one float dtype, finite values, non-negative values for chi-square,
and an ``out`` buffer of the right shape.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport fabs, sqrt

from mtlm_fast._typedefs cimport intp_t, float32_t

# Metric codes shared with mtlm._distances (keep in sync).
L1 = 0
CHI2 = 1
SQEUCLIDEAN = 2
L2 = 3

# Sums are taken in `floating` over chunks of CHUNK dimensions (so that the
# compiler can vectorise them) and the chunk sums are accumulated in float64.
cdef enum:
    CHUNK = 64
    TILE = 256


cdef inline double _l1(const floating* x, const floating* z, intp_t d) noexcept nogil:
    cdef double acc = 0.0
    cdef floating part
    cdef intp_t k0, k, k1
    for k0 in range(0, d, 64):
        k1 = k0 + CHUNK if k0 + CHUNK < d else d
        part = 0
        for k in range(k0, k1):
            part = part + fabs(x[k] - z[k])
        acc = acc + part
    return acc


cdef inline double _sqeuclidean(const floating* x, const floating* z,
                                intp_t d) noexcept nogil:
    cdef double acc = 0.0
    cdef floating part, t
    cdef intp_t k0, k, k1
    for k0 in range(0, d, 64):
        k1 = k0 + CHUNK if k0 + CHUNK < d else d
        part = 0
        for k in range(k0, k1):
            t = x[k] - z[k]
            part = part + t * t
        acc = acc + part
    return acc


cdef inline double _chi2(const floating* x, const floating* z, intp_t d) noexcept nogil:
    # A term with denominator 0 has numerator 0 too (non-negative inputs): it
    # counts as 0.  The select keeps the loop branch-free for vectorisation.
    cdef double acc = 0.0
    cdef floating part, t, s
    cdef intp_t k0, k, k1
    for k0 in range(0, d, 64):
        k1 = k0 + CHUNK if k0 + CHUNK < d else d
        part = 0
        for k in range(k0, k1):
            t = x[k] - z[k]
            s = x[k] + z[k]
            part = part + (t * t / s if s > 0 else 0)
        acc = acc + part
    return acc


cdef inline double _dist(const floating* x, const floating* z, intp_t d,
                         int metric) noexcept nogil:
    if metric == 0:
        return _l1(x, z, d)
    elif metric == 1:
        return _chi2(x, z, d)
    elif metric == 2:
        return _sqeuclidean(x, z, d)
    else:
        return sqrt(_sqeuclidean(x, z, d))


def pairwise_into(const floating[:, ::1] X, const floating[:, ::1] Z,
                  float32_t[:, :, ::1] out, intp_t f, int metric, double scale,
                  int n_threads):
    """out[i, j, f] = scale * dist(X[i], Z[j]) for every i, j (parallel over i)."""
    cdef intp_t nx = X.shape[0], nz = Z.shape[0], d = X.shape[1]
    cdef intp_t i, j, j0, j1
    if nx == 0 or nz == 0:
        return
    with nogil:
        # Tiles of Z rows are reused by every query row while in cache.
        for j0 in range(0, nz, 256):
            j1 = j0 + TILE if j0 + TILE < nz else nz
            for i in prange(nx, schedule="static", num_threads=n_threads):
                for j in range(j0, j1):
                    out[i, j, f] = <float32_t>(
                        scale * _dist(&X[i, 0], &Z[j, 0], d, metric))


def paired_into(const floating[:, ::1] X, const floating[:, ::1] Z,
                const intp_t[::1] qidx, const intp_t[::1] pidx,
                float32_t[:, ::1] out, intp_t f, int metric, double scale,
                int n_threads):
    """out[r, f] = scale * dist(X[qidx[r]], Z[pidx[r]]) (parallel over r)."""
    cdef intp_t n = qidx.shape[0], d = X.shape[1], r
    with nogil:
        for r in prange(n, schedule="static", num_threads=n_threads):
            out[r, f] = <float32_t>(
                scale * _dist(&X[qidx[r], 0], &Z[pidx[r], 0], d, metric))


def paired_mean(const floating[:, ::1] X, const intp_t[::1] qidx,
                const intp_t[::1] pidx, int metric, int n_threads):
    """Mean of dist(X[qidx[r]], X[pidx[r]]) over r, summed in a fixed order."""
    cdef intp_t n = qidx.shape[0], d = X.shape[1], r
    cdef double[::1] vals
    cdef double total = 0.0
    if n == 0:
        return 0.0
    import numpy as np
    vals = np.empty(n, dtype=np.float64)
    with nogil:
        for r in prange(n, schedule="static", num_threads=n_threads):
            vals[r] = _dist(&X[qidx[r], 0], &X[pidx[r], 0], d, metric)
        # Serial sum: the same value for any thread count.
        for r in range(n):
            total = total + vals[r]
    return total / n


def diagonal_into(const floating[:, ::1] X, const floating[:, ::1] Z,
                  float32_t[:, :, ::1] out, int n_threads):
    """out[i, j, k] = (X[i, k] - Z[j, k])**2: diagonal-metric base distances."""
    cdef intp_t nx = X.shape[0], nz = Z.shape[0], d = X.shape[1]
    cdef intp_t i, j, k
    cdef double t
    with nogil:
        for i in prange(nx, schedule="static", num_threads=n_threads):
            for j in range(nz):
                for k in range(d):
                    t = <double>X[i, k] - <double>Z[j, k]
                    out[i, j, k] = <float32_t>(t * t)

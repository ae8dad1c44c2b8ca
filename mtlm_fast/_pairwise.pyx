"""K1: base distances between row blocks (ALGORITHM.md section 1 and 7).

Every function here trusts its caller (``mtlm._distances``): C-contiguous
inputs of one float dtype, finite values, non-negative values for chi-square,
and an ``out`` buffer of the right shape.

The arithmetic lives in ``_pairwise_kernels.h`` (register-blocked SIMD
micro-kernels over packed tiles of ``Z``, an AVX2+FMA variant picked at run
time on x86-64).  Each pair's terms are summed in the input precision over
chunks of 64 dims, in order, and the chunk sums are added in float64; every
function computes a pair with exactly that arithmetic, so results are
bit-identical for any thread count, any split into tiles, any SIMD level, and
between ``pairwise_into`` and ``paired_into``.
"""
import numpy as np

from cython cimport floating
from cython.parallel cimport prange, threadid

from mtlm_fast._typedefs cimport intp_t, float32_t


cdef extern from "_pairwise_kernels.h" nogil:
    int MTLM_L1, MTLM_CHI2, MTLM_SQEUCLIDEAN, MTLM_L2, MTLM_MR
    int mtlm_simd
    int mtlm_simd_set(int level)
    intp_t mtlm_tile_rows(intp_t d, intp_t itemsize)
    intp_t mtlm_buf_elems(intp_t d, intp_t itemsize)
    # Function pointers set by mtlm_simd_set.
    void mtlm_rect_f32(const float* X, const float* Z, intp_t d, intp_t i0,
                       intp_t i1, intp_t j0, intp_t j1, int metric, double scale,
                       float* out, intp_t ldo, intp_t ldf, float* buf)
    void mtlm_rect_f64(const double* X, const double* Z, intp_t d, intp_t i0,
                       intp_t i1, intp_t j0, intp_t j1, int metric, double scale,
                       float* out, intp_t ldo, intp_t ldf, double* buf)
    void mtlm_paired_f32(const float* X, const float* Z, const intp_t* qidx,
                         const intp_t* pidx, intp_t r0, intp_t r1, intp_t d,
                         int metric, double scale, float* out, intp_t ldo,
                         double* vals)
    void mtlm_paired_f64(const double* X, const double* Z, const intp_t* qidx,
                         const intp_t* pidx, intp_t r0, intp_t r1, intp_t d,
                         int metric, double scale, float* out, intp_t ldo,
                         double* vals)


# Metric codes shared with mtlm._distances (keep in sync).
L1 = 0
CHI2 = 1
SQEUCLIDEAN = 2
L2 = 3
assert (L1, CHI2, SQEUCLIDEAN, L2) == (MTLM_L1, MTLM_CHI2, MTLM_SQEUCLIDEAN, MTLM_L2)

# Listed pairs per parallel work item.
cdef enum:
    PAIR_BLOCK = 256

# Pair-dims of work per thread below which another thread costs more than it
# saves (~1 ms at AVX2 speed): on a busy machine a thread that starts late or
# is preempted holds the whole call up at the end of the parallel region.
cdef intp_t MIN_WORK_PER_THREAD = 1 << 24


cdef inline int _threads_for(int n_threads, intp_t items, double work) noexcept:
    """Threads to use: at most n_threads, one per item, MIN_WORK_PER_THREAD each."""
    cdef double by_work = work / MIN_WORK_PER_THREAD
    cdef intp_t n = min(<intp_t>max(n_threads, 1), items)
    if by_work < n:
        n = <intp_t>by_work
    return <int>max(n, 1)


cdef int _simd_current() noexcept:
    return mtlm_simd


cdef int _simd_use(int level) noexcept:
    return mtlm_simd_set(level)


include "_simd_api.pxi"


def pairwise_into(const floating[:, ::1] X, const floating[:, ::1] Z,
                  float32_t[:, :, ::1] out, intp_t f, int metric, double scale,
                  int n_threads):
    """out[i, j, f] = scale * dist(X[i], Z[j]) for every i, j (parallel over tiles)."""
    cdef intp_t nq = X.shape[0], nz = Z.shape[0], d = X.shape[1]
    cdef intp_t tile, ncol, nrow, rows, nchunks, c, i0, i1, j0, j1
    cdef intp_t ldo = out.shape[1] * out.shape[2], ldf = out.shape[2]
    cdef int nthr, want
    cdef floating[:, ::1] buf
    cdef float32_t* o
    if nq == 0 or nz == 0:
        return
    if d == 0:
        out[:, :, f] = 0
        return
    # Work items are (row range, Z tile) rectangles.  Z tiles (~192 KiB, packed
    # per thread) are the natural unit; rows are split too only when there are
    # too few tiles to share out, and never below 32 rows per item (each item
    # packs its tile, so tiny items would pack more than they compute).
    tile = mtlm_tile_rows(d, sizeof(floating))
    ncol = (nz + tile - 1) // tile
    want = 4 * n_threads if n_threads > 1 else 1
    nrow = 1
    if ncol < want:
        nrow = max(1, min((want + ncol - 1) // ncol, nq // 32))
    rows = ((nq + nrow - 1) // nrow + MTLM_MR - 1) // MTLM_MR * MTLM_MR
    nrow = (nq + rows - 1) // rows
    nchunks = nrow * ncol
    nthr = _threads_for(n_threads, nchunks, <double>nq * nz * d)
    buf = np.empty((nthr, mtlm_buf_elems(d, sizeof(floating))),
                   dtype=np.float32 if floating is float else np.float64)
    o = &out[0, 0, f]
    # Results do not depend on the split, so items are handed out dynamically:
    # on a shared machine a thread that gets less CPU simply takes fewer items.
    for c in prange(nchunks, nogil=True, schedule="dynamic", num_threads=nthr):
        i0 = (c // ncol) * rows
        i1 = min(i0 + rows, nq)
        j0 = (c % ncol) * tile
        j1 = min(j0 + tile, nz)
        if floating is float:
            mtlm_rect_f32(&X[0, 0], &Z[0, 0], d, i0, i1, j0, j1, metric, scale,
                          o, ldo, ldf, &buf[threadid(), 0])
        else:
            mtlm_rect_f64(&X[0, 0], &Z[0, 0], d, i0, i1, j0, j1, metric, scale,
                          o, ldo, ldf, &buf[threadid(), 0])


def paired_into(const floating[:, ::1] X, const floating[:, ::1] Z,
                const intp_t[::1] qidx, const intp_t[::1] pidx,
                float32_t[:, ::1] out, intp_t f, int metric, double scale,
                int n_threads):
    """out[r, f] = scale * dist(X[qidx[r]], Z[pidx[r]]) (parallel over r)."""
    cdef intp_t n = qidx.shape[0], d = X.shape[1], b, r0, r1
    cdef intp_t nb = (n + PAIR_BLOCK - 1) // PAIR_BLOCK
    cdef int nthr
    if n == 0:
        return
    if d == 0:
        out[:, f] = 0
        return
    nthr = _threads_for(n_threads, nb, <double>n * d)
    for b in prange(nb, nogil=True, schedule="static", num_threads=nthr):
        r0 = b * PAIR_BLOCK
        r1 = min(r0 + PAIR_BLOCK, n)
        if floating is float:
            mtlm_paired_f32(&X[0, 0], &Z[0, 0], &qidx[0], &pidx[0], r0, r1, d,
                              metric, scale, &out[0, f], out.shape[1], NULL)
        else:
            mtlm_paired_f64(&X[0, 0], &Z[0, 0], &qidx[0], &pidx[0], r0, r1, d,
                              metric, scale, &out[0, f], out.shape[1], NULL)


def paired_mean(const floating[:, ::1] X, const intp_t[::1] qidx,
                const intp_t[::1] pidx, int metric, int n_threads):
    """Mean of dist(X[qidx[r]], X[pidx[r]]) over r, summed in a fixed order."""
    cdef intp_t n = qidx.shape[0], d = X.shape[1], b, r0, r1, r
    cdef intp_t nb = (n + PAIR_BLOCK - 1) // PAIR_BLOCK
    cdef int nthr
    cdef double[::1] vals
    cdef double total = 0.0
    if n == 0 or d == 0:
        return 0.0
    vals = np.empty(n, dtype=np.float64)
    nthr = _threads_for(n_threads, nb, <double>n * d)
    with nogil:
        for b in prange(nb, schedule="static", num_threads=nthr):
            r0 = b * PAIR_BLOCK
            r1 = min(r0 + PAIR_BLOCK, n)
            if floating is float:
                mtlm_paired_f32(&X[0, 0], &X[0, 0], &qidx[0], &pidx[0], r0, r1,
                                  d, metric, 1.0, NULL, 0, &vals[0])
            else:
                mtlm_paired_f64(&X[0, 0], &X[0, 0], &qidx[0], &pidx[0], r0, r1,
                                  d, metric, 1.0, NULL, 0, &vals[0])
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

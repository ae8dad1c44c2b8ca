"""K6: the label-specific weighted vote over a pool of training images.

score(t, m) = sum_{p in pool} w_m(t,p) Y[p, m] / sum_{p in pool} w_m(t,p),
w_m(t, p) = exp(-(D_m(t, p) - min_p D_m(t, p)) / tau)  (ALGORITHM.md section 5);
with ``raw`` the denominator is dropped and the shift is undone.

Per query, the pool positions of each label are listed once (from the rows of
Y as label lists), so a numerator sums only over the pool members carrying
its label, in pool order; the per-(label, tau) work is one pass of exp over
the pool for the denominator, done in C (``_vote_kernels.h``: our vector
exp, with an AVX2 build picked at run time on x86-64; "base" and "avx2" give
the same bits, "scalar" (libm) agrees to rounding).
"""
import numpy as np

from cython.parallel cimport parallel, prange
from libc.math cimport exp
from libc.stdlib cimport free, malloc

from mtlm_fast._typedefs cimport intp_t, int32_t, uint8_t, float32_t, float64_t


cdef extern from "_vote_kernels.h" nogil:
    int mtlm_vote_simd
    int mtlm_vote_simd_set(int level)
    # Function pointer set by mtlm_vote_simd_set.
    float64_t mtlm_vote_weights(const float64_t* D, intp_t n, float64_t dmin,
                                float64_t tau, float64_t* e)


cdef int _simd_current() noexcept:
    return mtlm_vote_simd


cdef int _simd_use(int level) noexcept:
    return mtlm_vote_simd_set(level)


include "_simd_api.pxi"


cdef void _distances(const float32_t[:, :, ::1] d, intp_t i, const float64_t* w,
                     const int32_t* pool, intp_t P, float64_t* D) noexcept nogil:
    """D[j] = w . d[i, pool[j]]."""
    cdef intp_t j, f, F = d.shape[2]
    cdef const float32_t* row
    cdef float64_t acc
    for j in range(P):
        row = &d[i, pool[j], 0]
        acc = 0.0
        for f in range(F):
            acc = acc + w[f] * row[f]
        D[j] = acc


cdef enum:
    JB = 8  # pool members per block of _all_distances


cdef void _all_distances(const float32_t[:, :, ::1] d, intp_t i,
                         const float64_t[:, ::1] W, const int32_t* pool, intp_t P,
                         intp_t stride, float64_t* D) noexcept nogil:
    """D[m * stride + j] = W[m] . d[i, pool[j]] for every label m.

    Blocks of JB pool members are transposed into dT (F, JB), so that a
    label's JB sums run side by side (one broadcast weight times a short
    contiguous vector) instead of as one latency-bound chain; each sum still
    adds its F terms in order.
    """
    cdef intp_t jb, j0, jj, nb, f, m, F = d.shape[2], M = W.shape[0]
    cdef float64_t dT[64 * JB]  # F <= 64; larger F takes the plain loop
    cdef float64_t acc[JB]
    cdef float64_t wf
    cdef const float32_t* row
    if F > 64:
        for m in range(M):
            _distances(d, i, &W[m, 0], pool, P, D + m * stride)
        return
    for jb in range((P + JB - 1) // JB):
        j0 = jb * JB
        nb = min(JB, P - j0)
        for jj in range(JB):
            if jj < nb:
                row = &d[i, pool[j0 + jj], 0]
                for f in range(F):
                    dT[f * JB + jj] = row[f]
            else:
                for f in range(F):
                    dT[f * JB + jj] = 0.0
        for m in range(M):
            for jj in range(JB):
                acc[jj] = 0.0
            for f in range(F):
                wf = W[m, f]
                for jj in range(JB):
                    acc[jj] = acc[jj] + wf * dT[f * JB + jj]
            for jj in range(nb):
                D[m * stride + j0 + jj] = acc[jj]


cdef void _label_positions(const int32_t* pool, intp_t P, const intp_t[::1] lab_ptr,
                           const int32_t[::1] lab, intp_t M, intp_t* ptr,
                           intp_t* cur, int32_t* pos) noexcept nogil:
    """pos[ptr[m]:ptr[m + 1]]: increasing pool positions of the members with m."""
    cdef intp_t j, r, m
    for m in range(M + 1):
        ptr[m] = 0
    for j in range(P):
        for r in range(lab_ptr[pool[j]], lab_ptr[pool[j] + 1]):
            ptr[lab[r] + 1] += 1
    for m in range(M):
        ptr[m + 1] += ptr[m]
        cur[m] = ptr[m]
    for j in range(P):
        for r in range(lab_ptr[pool[j]], lab_ptr[pool[j] + 1]):
            m = lab[r]
            pos[cur[m]] = <int32_t>j
            cur[m] += 1


cdef float64_t _score(const float64_t* e, const int32_t* pos, intp_t lo, intp_t hi,
                      float64_t den, float64_t dmin, float64_t tau,
                      bint raw) noexcept nogil:
    cdef intp_t r
    cdef float64_t num = 0.0
    for r in range(lo, hi):
        num = num + e[pos[r]]
    if raw:
        return num * exp(-dmin / tau)
    return num / den


cdef float64_t _min(const float64_t* D, intp_t P) noexcept nogil:
    cdef intp_t j
    cdef float64_t dmin = D[0]
    for j in range(1, P):
        if D[j] < dmin:
            dmin = D[j]
    return dmin


def pool_vote(const float32_t[:, :, ::1] d, const float64_t[:, ::1] W,
              const int32_t[:, ::1] pool, const intp_t[::1] pool_size,
              const uint8_t[:, ::1] Y, const float64_t[::1] taus, bint raw,
              float64_t[:, :, ::1] out, int n_threads):
    """out[t, i, m]: vote of query i for label m at temperature taus[t].

    d: (b, n, F) base distances; W: (1 or M, F) metric weights; pool: (b, P)
    training indices, the first pool_size[i] valid; Y: (n, M) training labels.
    """
    cdef intp_t b = d.shape[0], M = Y.shape[1], T = taus.shape[0]
    cdef intp_t Pmax = pool.shape[1]
    cdef bint shared = W.shape[0] == 1
    cdef intp_t i, m, t, P, Lmax
    cdef float64_t dmin, den
    cdef float64_t* D
    cdef float64_t* Dm
    cdef float64_t* e
    cdef intp_t* ptr
    cdef intp_t* cur
    cdef int32_t* pos
    cdef int failed = 0
    cdef int* failed_p = &failed
    if b == 0:
        return
    # Label lists of the training images (CSR of Y).
    rows, cols = np.nonzero(np.asarray(Y))
    counts = np.bincount(rows, minlength=Y.shape[0])
    lab_ptr_arr = np.zeros(Y.shape[0] + 1, dtype=np.intp)
    np.cumsum(counts, out=lab_ptr_arr[1:])
    cdef const intp_t[::1] lab_ptr = lab_ptr_arr
    cdef const int32_t[::1] lab = np.ascontiguousarray(cols, dtype=np.int32)
    Lmax = int(counts.max()) if counts.size else 0
    cdef intp_t nD = max(Pmax, 1) * (1 if shared else M)
    with nogil, parallel(num_threads=n_threads):
        D = <float64_t*>malloc(nD * sizeof(float64_t))
        e = <float64_t*>malloc(max(Pmax, 1) * sizeof(float64_t))
        ptr = <intp_t*>malloc((M + 1) * sizeof(intp_t))
        cur = <intp_t*>malloc(max(M, 1) * sizeof(intp_t))
        pos = <int32_t*>malloc(max(Pmax * Lmax, 1) * sizeof(int32_t))
        if D == NULL or e == NULL or ptr == NULL or cur == NULL or pos == NULL:
            failed_p[0] = 1
        for i in prange(b, schedule="dynamic"):
            if failed_p[0]:
                continue
            P = pool_size[i]
            if P == 0:
                for t in range(T):
                    for m in range(M):
                        out[t, i, m] = 0.0
                continue
            _label_positions(&pool[i, 0], P, lab_ptr, lab, M, ptr, cur, pos)
            if shared:
                _distances(d, i, &W[0, 0], &pool[i, 0], P, D)
                dmin = _min(D, P)
                for t in range(T):
                    den = mtlm_vote_weights(D, P, dmin, taus[t], e)
                    for m in range(M):
                        out[t, i, m] = _score(e, pos, ptr[m], ptr[m + 1], den, dmin,
                                              taus[t], raw)
            else:
                _all_distances(d, i, W, &pool[i, 0], P, Pmax, D)
                for m in range(M):
                    if ptr[m] == ptr[m + 1]:
                        # No pool member carries m: a zero numerator, exactly.
                        for t in range(T):
                            out[t, i, m] = 0.0
                        continue
                    Dm = D + m * Pmax
                    dmin = _min(Dm, P)
                    for t in range(T):
                        den = mtlm_vote_weights(Dm, P, dmin, taus[t], e)
                        out[t, i, m] = _score(e, pos, ptr[m], ptr[m + 1], den, dmin,
                                              taus[t], raw)
        free(D)
        free(e)
        free(ptr)
        free(cur)
        free(pos)
    if failed:
        raise MemoryError("pool_vote: cannot allocate the per-thread scratch")

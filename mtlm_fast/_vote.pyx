"""K6: the label-specific weighted vote over a pool of training images.

score(t, m) = sum_{p in pool} w_m(t,p) Y[p, m] / sum_{p in pool} w_m(t,p),
w_m(t, p) = exp(-(D_m(t, p) - min_p D_m(t, p)) / tau)  (ALGORITHM.md section 5);
with ``raw`` the denominator is dropped and the shift is undone.
"""
from cython.parallel cimport prange, threadid
from libc.math cimport exp

from mtlm_fast._typedefs cimport intp_t, int32_t, uint8_t, float32_t, float64_t


cdef void _label_distances(const float32_t[:, :, ::1] d, intp_t i,
                           const float64_t[:, ::1] W, intp_t wrow,
                           const int32_t[:, ::1] pool, intp_t P,
                           float64_t* D) noexcept nogil:
    cdef intp_t j, f, F = d.shape[2]
    cdef float64_t acc
    for j in range(P):
        acc = 0.0
        for f in range(F):
            acc = acc + W[wrow, f] * d[i, pool[i, j], f]
        D[j] = acc


cdef void _vote_one(const float64_t* D, intp_t P, const int32_t* pool,
                    const uint8_t[:, ::1] Y, intp_t m0, intp_t m1,
                    float64_t tau, bint raw, float64_t* out) noexcept nogil:
    # Scores of labels m0..m1-1 that share the distances D.
    cdef intp_t j, m
    cdef float64_t dmin = D[0], e, den = 0.0, shift
    for j in range(1, P):
        if D[j] < dmin:
            dmin = D[j]
    for m in range(m0, m1):
        out[m] = 0.0
    for j in range(P):
        e = exp(-(D[j] - dmin) / tau)
        den = den + e
        for m in range(m0, m1):
            if Y[pool[j], m]:
                out[m] = out[m] + e
    if raw:
        shift = exp(-dmin / tau)
        for m in range(m0, m1):
            out[m] = out[m] * shift
    else:
        for m in range(m0, m1):
            out[m] = out[m] / den


def pool_vote(const float32_t[:, :, ::1] d, const float64_t[:, ::1] W,
              const int32_t[:, ::1] pool, const intp_t[::1] pool_size,
              const uint8_t[:, ::1] Y, const float64_t[::1] taus, bint raw,
              float64_t[:, :, ::1] out, float64_t[:, ::1] work, int n_threads):
    """out[t, i, m]: vote of query i for label m at temperature taus[t].

    d: (b, n, F) base distances; W: (1 or M, F) metric weights; pool: (b, P)
    training indices, the first pool_size[i] valid; Y: (n, M) training labels;
    work: (n_threads, P) scratch rows, one per thread.
    """
    cdef intp_t b = d.shape[0], M = Y.shape[1], T = taus.shape[0]
    cdef bint shared = W.shape[0] == 1
    cdef intp_t i, m, t, P
    cdef float64_t* D
    if b == 0:
        return
    with nogil:
        for i in prange(b, schedule="dynamic", num_threads=n_threads):
            P = pool_size[i]
            if P == 0:
                for t in range(T):
                    for m in range(M):
                        out[t, i, m] = 0.0
                continue
            D = &work[threadid(), 0]
            if shared:
                _label_distances(d, i, W, 0, pool, P, D)
                for t in range(T):
                    _vote_one(D, P, &pool[i, 0], Y, 0, M, taus[t], raw, &out[t, i, 0])
            else:
                for m in range(M):
                    _label_distances(d, i, W, m, pool, P, D)
                    for t in range(T):
                        _vote_one(D, P, &pool[i, 0], Y, m, m + 1, taus[t], raw,
                                  &out[t, i, 0])

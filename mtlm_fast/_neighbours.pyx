"""K2/K5: the k nearest images of every label group, per query row.

The caller (``mtlm._neighbourhoods``) hands in a block of base distances and
validated CSR group lists whose members are sorted by training index.
"""
from cython.parallel cimport prange
from libc.math cimport INFINITY

from mtlm_fast._topk cimport topk_insert
from mtlm_fast._typedefs cimport intp_t, int32_t, float32_t, float64_t


def group_knn(const float32_t[:, :, ::1] d, const float64_t[:, ::1] W,
              const int32_t[::1] group_ptr, const int32_t[::1] group_idx,
              const intp_t[::1] exclude, int32_t[:, :, ::1] out_idx,
              float64_t[:, :, ::1] out_dist, int n_threads):
    """k nearest members of each group under D_m = W[m] . d (W[0] if one row).

    d: (b, n, F) base distances of b queries; exclude[i] is a training index
    that query i must not get (itself), or -1.  out_idx/out_dist: (b, M, k),
    padded with -1 / +inf when a group has fewer than k usable members.
    """
    cdef intp_t b = d.shape[0], F = d.shape[2]
    cdef intp_t M = out_idx.shape[1], k = out_idx.shape[2]
    cdef bint shared = W.shape[0] == 1
    cdef intp_t i, m, s, r, f, wrow
    cdef int32_t p
    cdef float64_t acc
    if k == 0 or b == 0:
        return
    with nogil:
        for i in prange(b, schedule="static", num_threads=n_threads):
            for m in range(M):
                wrow = 0 if shared else m
                for s in range(k):
                    out_idx[i, m, s] = -1
                    out_dist[i, m, s] = INFINITY
                for r in range(group_ptr[m], group_ptr[m + 1]):
                    p = group_idx[r]
                    if p == exclude[i]:
                        continue
                    acc = 0.0
                    for f in range(F):
                        acc = acc + W[wrow, f] * d[i, p, f]
                    topk_insert(&out_idx[i, m, 0], &out_dist[i, m, 0], k, p, acc)

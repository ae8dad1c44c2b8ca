"""K2 (LMNN's own sets) and K4: LMNN target/impostor selection and the
active-set update of the hinge gradient.

Layout shared by the K4 kernels (built by ``mtlm._lmnn``): task m (a label,
or the single global task) owns the local pairs ``lp_ptr[m]:lp_ptr[m+1]``,
each one an index ``lp_idx[j]`` into the pair store ``d`` (n_pairs, F), and
the candidate triplets ``t_ptr[m]:t_ptr[m+1]``, each one a pair of local
positions (target ``t_a[t]``, impostor ``t_b[t]``) in canonical order
(m, q, target slot, impostor slot).  Inputs are validated by the caller.
"""
from cython.parallel cimport prange
from libc.math cimport INFINITY
from libc.stdlib cimport malloc, free

from mtlm_fast._topk cimport topk_insert
from mtlm_fast._typedefs cimport intp_t, int32_t, int64_t, uint8_t
from mtlm_fast._typedefs cimport float32_t, float64_t


def select_triplet_neighbours(const float32_t[:, :, ::1] d,
                              const float64_t[::1] w,
                              const uint8_t[:, ::1] Y,
                              const intp_t[::1] qglob,
                              const int64_t[::1] qlab_ptr,
                              const int32_t[::1] qlab,
                              bint global_task,
                              int32_t[:, ::1] tgt, int32_t[:, ::1] imp,
                              int n_threads):
    """Targets and impostor candidates of each (query, label) under D = w . d.

    d: (b, n, F) base distances of b query rows, qglob[i] the training index
    of row i, labels of row i in qlab[qlab_ptr[i]:qlab_ptr[i+1]].
    Per-label mode: output row r = qlab_ptr[i] + s is (row i, label
    qlab[r]): tgt[r] the k_pos nearest images carrying the label (row i's
    own image excluded), imp[r] the k_neg nearest images lacking it.
    Global mode: output row i: targets share a label with the query,
    impostors share none.  -1 pads rows with too few candidates; ties go to
    the lower index.  One scan of the row fills every bucket of the query:
    a query has few labels, so bounded insertion (O(n (F + |L_q|))) beats
    sorting the row (O(n log n)).
    """
    cdef intp_t b = d.shape[0], n = d.shape[1], F = d.shape[2]
    cdef intp_t kp = tgt.shape[1], kn = imp.shape[1]
    cdef intp_t i, p, f, r, r0, r1, s, nb, q
    cdef float64_t acc
    cdef bint shared
    cdef float64_t* tdist
    cdef float64_t* idist
    cdef intp_t width = 0
    for i in range(b):
        width = max(width, qlab_ptr[i + 1] - qlab_ptr[i])
    width = max(width, 1)
    with nogil:
        for i in prange(b, schedule="dynamic", num_threads=n_threads):
            q = qglob[i]
            r0 = qlab_ptr[i]
            r1 = qlab_ptr[i + 1]
            nb = 1 if global_task else r1 - r0
            if r1 == r0:
                nb = 0
            tdist = <float64_t*> malloc(width * (kp + kn + 1) * sizeof(float64_t))
            idist = tdist + width * (kp + 1)
            for s in range(width * (kp + 1 + kn)):
                tdist[s] = INFINITY
            for s in range(nb):
                r = i if global_task else r0 + s
                for f in range(kp):
                    tgt[r, f] = -1
                for f in range(kn):
                    imp[r, f] = -1
            if nb > 0:
                for p in range(n):
                    acc = 0.0
                    for f in range(F):
                        acc = acc + w[f] * d[i, p, f]
                    if global_task:
                        shared = False
                        for s in range(r0, r1):
                            if Y[p, qlab[s]]:
                                shared = True
                                break
                        if shared:
                            if p != q:
                                topk_insert(&tgt[i, 0], tdist, kp, <int32_t> p, acc)
                        else:
                            topk_insert(&imp[i, 0], idist, kn, <int32_t> p, acc)
                    else:
                        for s in range(nb):
                            r = r0 + s
                            if Y[p, qlab[r]]:
                                if p != q:
                                    topk_insert(&tgt[r, 0], tdist + s * kp, kp,
                                            <int32_t> p, acc)
                            else:
                                topk_insert(&imp[r, 0], idist + s * kn, kn,
                                        <int32_t> p, acc)
            free(tdist)


def task_distances(const float32_t[:, ::1] d, const int32_t[::1] lp_idx,
                   const int64_t[::1] lp_ptr, const float64_t[:, ::1] W,
                   float64_t[::1] out, int n_threads):
    """out[j] = W[m] . d[lp_idx[j]] for every local pair j of every task m."""
    cdef intp_t M = lp_ptr.shape[0] - 1, F = d.shape[1]
    cdef intp_t m, j, f, row
    cdef float64_t acc
    with nogil:
        for m in prange(M, schedule="dynamic", num_threads=n_threads):
            for j in range(lp_ptr[m], lp_ptr[m + 1]):
                row = lp_idx[j]
                acc = 0.0
                for f in range(F):
                    acc = acc + W[m, f] * d[row, f]
                out[j] = acc


cdef inline void _add_diff(float64_t* S, const float32_t* da, const float32_t* db,
                           intp_t F, float64_t sign) noexcept nogil:
    # S += sign * (d_qp - d_qn), in float64 (the difference of two float32
    # values is exact in float64).
    cdef intp_t f
    for f in range(F):
        S[f] = S[f] + sign * (<float64_t> da[f] - <float64_t> db[f])


def active_update(const float32_t[:, ::1] d, const int32_t[::1] lp_idx,
                  const float64_t[::1] D, const int64_t[::1] t_ptr,
                  const int32_t[::1] t_a, const int32_t[::1] t_b,
                  float64_t margin, bint full, uint8_t[::1] ws,
                  uint8_t[::1] mask, float64_t[:, ::1] S,
                  float64_t[::1] hinge, int64_t[::1] n_active,
                  int64_t[::1] n_changed, int n_threads):
    """K4: new active set and incremental S_m from the set differences.

    A triplet is checked (active when margin + D[t_a] - D[t_b] > 0) if
    ``full`` or if it is in the working set ``ws``; the others are
    inactive.  ``full`` also sets ws to the new active set.  S[m] gets
    +(d_qp - d_qn) for each entered triplet and -(...) for each one that
    left; ``mask`` becomes the new set.  Per task: hinge sum over the new
    active set, active count and changed count.  Parallel over tasks.
    """
    cdef intp_t M = t_ptr.shape[0] - 1, F = d.shape[1]
    cdef intp_t m, t
    cdef float64_t z, h
    cdef int64_t na, nc
    cdef uint8_t new
    with nogil:
        for m in prange(M, schedule="dynamic", num_threads=n_threads):
            h = 0.0
            na = 0
            nc = 0
            for t in range(t_ptr[m], t_ptr[m + 1]):
                new = 0
                z = 0.0
                if full or ws[t]:
                    z = margin + D[t_a[t]] - D[t_b[t]]
                    if z > 0:
                        new = 1
                if full:
                    ws[t] = new
                if new:
                    h = h + z
                    na = na + 1
                if new != mask[t]:
                    _add_diff(&S[m, 0], &d[lp_idx[t_a[t]], 0],
                              &d[lp_idx[t_b[t]], 0], F,
                              1.0 if new else -1.0)
                    mask[t] = new
                    nc = nc + 1
            hinge[m] = h
            n_active[m] = na
            n_changed[m] = nc


def mask_difference_update(const float32_t[:, ::1] d, const int32_t[::1] lp_idx,
                           const int64_t[::1] t_ptr, const int32_t[::1] t_a,
                           const int32_t[::1] t_b, const uint8_t[::1] old,
                           const uint8_t[::1] new, float64_t[:, ::1] S,
                           int n_threads):
    """S[m] += sum over triplets of (new - old) * (d_qp - d_qn): the set
    difference of two 0/1 masks applied to the hinge gradient."""
    cdef intp_t M = t_ptr.shape[0] - 1, F = d.shape[1]
    cdef intp_t m, t
    with nogil:
        for m in prange(M, schedule="dynamic", num_threads=n_threads):
            for t in range(t_ptr[m], t_ptr[m + 1]):
                if new[t] != old[t]:
                    _add_diff(&S[m, 0], &d[lp_idx[t_a[t]], 0],
                              &d[lp_idx[t_b[t]], 0], F,
                              1.0 if new[t] else -1.0)


def active_recompute(const float32_t[:, ::1] d, const int32_t[::1] lp_idx,
                     const int64_t[::1] lp_ptr, const float64_t[::1] D,
                     const int64_t[::1] t_ptr, const int32_t[::1] t_a,
                     const int32_t[::1] t_b, float64_t margin,
                     const uint8_t[::1] ws, bint full, uint8_t[::1] mask,
                     float64_t[:, ::1] S, float64_t[::1] hinge,
                     int64_t[::1] n_active, int64_t[::1] coef, int n_threads):
    """From-scratch twin of :func:`active_update`: the active set (all of C_m
    if ``full``, else within ``ws``), then S[m] from one integer coefficient
    per local pair (+1 per active triplet as target, -1 as impostor),
    S[m] = sum_j coef[j] d[lp_idx[j]].  ``coef`` is (n_local,) work space."""
    cdef intp_t M = t_ptr.shape[0] - 1, F = d.shape[1]
    cdef intp_t m, t, j, f, row
    cdef float64_t z, h, c
    cdef int64_t na
    with nogil:
        for m in prange(M, schedule="dynamic", num_threads=n_threads):
            for j in range(lp_ptr[m], lp_ptr[m + 1]):
                coef[j] = 0
            h = 0.0
            na = 0
            for t in range(t_ptr[m], t_ptr[m + 1]):
                mask[t] = 0
                if full or ws[t]:
                    z = margin + D[t_a[t]] - D[t_b[t]]
                    if z > 0:
                        mask[t] = 1
                        h = h + z
                        na = na + 1
                        coef[t_a[t]] += 1
                        coef[t_b[t]] -= 1
            for f in range(F):
                S[m, f] = 0.0
            for j in range(lp_ptr[m], lp_ptr[m + 1]):
                if coef[j] != 0:
                    c = <float64_t> coef[j]
                    row = lp_idx[j]
                    for f in range(F):
                        S[m, f] = S[m, f] + c * d[row, f]
            hinge[m] = h
            n_active[m] = na

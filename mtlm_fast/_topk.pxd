# Bounded top-k insertion shared by the neighbour-selection kernels.
from mtlm_fast._typedefs cimport intp_t, int32_t, float64_t


cdef inline void topk_insert(int32_t* idx, float64_t* dist, intp_t k, int32_t p,
                             float64_t dp) noexcept nogil:
    # Keep (dist, idx) sorted ascending.  Candidates arrive in increasing
    # index order, so an equal distance never displaces: ties go to the
    # lower training index.
    cdef intp_t s = k - 1
    if not (dp < dist[s]):
        return
    while s > 0 and dp < dist[s - 1]:
        dist[s] = dist[s - 1]
        idx[s] = idx[s - 1]
        s -= 1
    dist[s] = dp
    idx[s] = p

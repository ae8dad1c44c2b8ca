"""Streaming neighbourhood selection and voting over query blocks.

Base distances between a block of query rows and every training image are
computed block by block (memory O(block x n x F), never O(n^2 x F)), handed to
the K2/K5 kernel (k nearest of every label group) and the K6 vote.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtlm._memory import check_allocation, rows_per_block
from mtlm_fast import _neighbours, _vote

__all__ = [
    "LabelGroups",
    "group_neighbours",
    "neighbour_arrays",
    "pool_scores",
    "query_blocks",
    "union_pool",
]


@dataclass(frozen=True)
class LabelGroups:
    """Semantic groups T_m = {p : Y[p, m] = 1} as CSR lists sorted by index.

    Attributes
    ----------
    ptr : ndarray of shape (M + 1,), int32
    idx : ndarray of shape (A,), int32
    """

    ptr: np.ndarray
    idx: np.ndarray

    @classmethod
    def from_labels(cls, Y):
        """Build the groups of a (n, M) 0/1 label matrix."""
        Yc = np.asarray(Y, dtype=bool)
        cols, rows = np.nonzero(Yc.T)  # label-major, rows ascending within a label
        counts = np.bincount(cols, minlength=Yc.shape[1])
        ptr = np.zeros(Yc.shape[1] + 1, dtype=np.int32)
        np.cumsum(counts, out=ptr[1:])
        return cls(ptr=ptr, idx=np.ascontiguousarray(rows, dtype=np.int32))

    @property
    def sizes(self):
        """Number of images of each label."""
        return np.diff(self.ptr)

    @property
    def n_groups(self):
        """Number of labels M."""
        return self.ptr.size - 1

    def width(self, k):
        """Neighbour slots per group worth storing: ``min(k, largest group)``.

        A group fills at most its size, so wider slots would only hold -1;
        capping keeps a huge ``k`` from allocating (nq, M, k) arrays of padding.
        """
        largest = int(self.sizes.max()) if self.n_groups else 0
        return max(1, min(int(k), largest))


def query_blocks(n_queries, n_train, n_base, budget=None, row_bytes=0):
    """(start, stop) spans of query rows whose buffers fit the budget.

    A row holds its base distances to every training image and ``row_bytes``
    of other per-row buffers.
    """
    per_row = n_train * n_base * 4 + int(row_bytes)
    rows = rows_per_block(per_row, **({} if budget is None else {"budget": budget}))
    check_allocation(
        min(rows, max(n_queries, 1)) * per_row,  # a short query set is one block
        "one block of base distances",
        "reduce the number of training images (or k)",
    )
    for start in range(0, n_queries, rows):
        yield start, min(n_queries, start + rows)


def _exclusions(exclude, nq):
    if exclude is None:
        return np.full(nq, -1, dtype=np.intp)
    return np.ascontiguousarray(exclude, dtype=np.intp)


def group_neighbours(
    bd, Pq, Pp, W, groups, k, *, exclude=None, n_threads=1, progress=None
):
    """k nearest members of every label group for every query row.

    Parameters
    ----------
    bd : BaseDistances
        Fitted base distances.
    Pq, Pp : list of ndarray
        Prepared query and training blocks (``bd.check``).
    W : ndarray of shape (1, F) or (M, F)
        Metric weights: one shared metric, or one per label.
    groups : LabelGroups
    k : int
    exclude : ndarray of shape (nq,) or None
        Training index that each query must not get as a neighbour (the
        query itself, when queries are training images), or -1.
    n_threads : int
    progress : callable or None
        Called with the number of query rows done after each block.

    Returns
    -------
    idx : ndarray of shape (nq, M, groups.width(k)), int32
        -1 where a group has fewer members; the last axis is capped at the
        largest group (:meth:`LabelGroups.width`).
    dist : ndarray of the shape of idx, float64, +inf where idx is -1
    """
    nq, n = Pq[0].shape[0], Pp[0].shape[0]
    M, F = groups.n_groups, bd.n_base_
    W = np.ascontiguousarray(W, dtype=np.float64)
    exclude = _exclusions(exclude, nq)
    idx, dist = neighbour_arrays(nq, M, groups.width(k))
    for start, stop in query_blocks(nq, n, F):
        d = np.empty((stop - start, n, F), dtype=np.float32)
        bd.pairwise_prepared([b[start:stop] for b in Pq], Pp, d, n_threads)
        excl = exclude[start:stop]
        _neighbours.group_knn(
            d,
            W,
            groups.ptr,
            groups.idx,
            excl,
            idx[start:stop],
            dist[start:stop],
            n_threads,
        )
        if progress is not None:
            progress(stop - start)
    return idx, dist


def neighbour_arrays(nq, M, width):
    """Empty (idx int32, dist float64) of shape (nq, M, width), checked first."""
    check_allocation(
        nq * M * width * 12,
        f"the {width} nearest images of {M} label groups for {nq} images",
        "reduce k",
    )
    return (
        np.empty((nq, M, width), dtype=np.int32),
        np.empty((nq, M, width), dtype=np.float64),
    )


def union_pool(idx):
    """Union of every group's neighbours per query, sorted, de-duplicated.

    Parameters
    ----------
    idx : ndarray of shape (nq, M, k), int32 with -1 padding

    Returns
    -------
    pool : ndarray of shape (nq, P), int32, valid entries first
    size : ndarray of shape (nq,), intp
    """
    nq = idx.shape[0]
    flat = np.sort(idx.reshape(nq, -1), axis=1)
    big = np.iinfo(np.int32).max
    dup = np.zeros_like(flat, dtype=bool)
    dup[:, 1:] = flat[:, 1:] == flat[:, :-1]
    flat[dup | (flat < 0)] = big
    flat.sort(axis=1)
    size = (flat != big).sum(axis=1).astype(np.intp)
    width = max(int(size.max()) if nq else 0, 1)
    pool = np.ascontiguousarray(flat[:, :width])
    pool[pool == big] = 0  # never read: pool_size bounds each row
    return pool, size


def pool_scores(
    bd,
    Pq,
    Pp,
    W_pool,
    W_vote,
    groups,
    Y,
    k,
    taus,
    *,
    raw=False,
    exclude=None,
    n_threads=1,
    progress=None,
):
    """Label scores of every query row for each temperature in ``taus``.

    The pool of a query is the union over labels of its k nearest images of
    each group under ``W_pool``; the vote for label m weighs pool members by
    ``exp(-D_m / tau)`` with D_m from ``W_vote`` (ALGORITHM.md section 5).

    ``exclude`` is as in :func:`group_neighbours`.

    Returns
    -------
    scores : ndarray of shape (len(taus), nq, M), float64
    """
    nq, n = Pq[0].shape[0], Pp[0].shape[0]
    M, F = groups.n_groups, bd.n_base_
    taus = np.ascontiguousarray(np.atleast_1d(taus), dtype=np.float64)
    W_pool = np.ascontiguousarray(W_pool, dtype=np.float64)
    W_vote = np.ascontiguousarray(W_vote, dtype=np.float64)
    Y = np.ascontiguousarray(Y, dtype=np.uint8)
    exclude = _exclusions(exclude, nq)
    scores = np.empty((taus.size, nq, M), dtype=np.float64)
    width = groups.width(k)
    # per row: neighbours (12 B a slot), the pool union's sorted copies and
    # masks (~13 B a slot) and the scores of every tau
    row_bytes = M * width * 25 + taus.size * M * 16
    for start, stop in query_blocks(nq, n, F, row_bytes=row_bytes):
        b = stop - start
        d = np.empty((b, n, F), dtype=np.float32)
        bd.pairwise_prepared([x[start:stop] for x in Pq], Pp, d, n_threads)
        excl = exclude[start:stop]
        idx, dist = neighbour_arrays(b, M, width)
        _neighbours.group_knn(
            d, W_pool, groups.ptr, groups.idx, excl, idx, dist, n_threads
        )
        pool, size = union_pool(idx)
        out = np.empty((taus.size, b, M), dtype=np.float64)
        _vote.pool_vote(d, W_vote, pool, size, Y, taus, raw, out, n_threads)
        scores[:, start:stop] = out
        if progress is not None:
            progress(b)
    return scores

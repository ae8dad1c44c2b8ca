"""Pair constraints for LDML: one pair store, per-task index lists and signs.

Two schemes (ALGORITHM.md section 3):

``"2pknn"`` (default; the authors' precursor pipeline)
    For every training image q, under the initial metric D_0: similar
    candidates are the k nearest images of T_l for each label l of q,
    dissimilar candidates the k nearest images of T_l for each label l that q
    lacks; each list is de-duplicated.  An image found in both lists is
    removed from the dissimilar list only (``overlap="dissimilar"``) or from
    both (``overlap="both"``, the precursor's literal rule); with
    ``overlap="shared"`` every dissimilar candidate that carries one of q's
    labels is dropped (the literal rules keep such an image as dissimilar
    when it was not among the k nearest of q's own groups).  With
    ``max_dissimilar`` set, only that many dissimilar candidates are kept per
    image, the nearest under D_0 (ties to the lower index): on Corel5K the
    literal rule lists ~680 dissimilar images per image (every label the
    image lacks contributes its k nearest members), 98 % of all label pairs,
    and the far ones sit deep in the flat part of the loss.  The pairs of q
    are given to every label q carries.  Labels with ``|T_l| <= k`` are
    skipped: they are neither a source of candidates nor a task.
``"label"``
    For label m and q in T_m: the ``k_pos`` nearest images of T_m \\ {q}
    (similar) and the ``k_neg`` nearest images outside T_m (dissimilar).
    Labels with fewer than ``min_label_count`` images are not tasks.  A
    similar pair listed both ways, (q, p) and (p, q), is kept once.

With ``image_level=True`` there is one task (the global metric of section
4.5): under ``"2pknn"`` every labelled image contributes its pair lists
once; under ``"label"`` q is any labelled image, similar means sharing at
least one label, dissimilar sharing none.

The query itself is never its own neighbour.  An exact duplicate of it (base
distance 0, another training index) is a valid neighbour: the package does
not pass over zero distances as the precursor did.  Ties go to the lower
training index.  Neighbourhoods are fixed before learning.

Base distances are symmetric, so the store keeps each unordered pair once, as
(min, max).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from mtlm._memory import check_allocation
from mtlm._neighbourhoods import LabelGroups, group_neighbours, query_blocks
from mtlm._pairstore import PairStore

__all__ = ["Constraints", "build_constraints", "image_lists_2pknn"]

logger = logging.getLogger(__name__)

SCHEMES = ("2pknn", "label")
OVERLAPS = ("dissimilar", "both", "shared")


@dataclass(frozen=True)
class Constraints:
    """Pairs of every task as CSR lists into one :class:`PairStore`.

    Attributes
    ----------
    store : PairStore
        Distinct pairs and their float32 base distances.
    ptr : ndarray of shape (T + 1,), int32
        Task t owns entries ``ptr[t]:ptr[t + 1]`` of ``pair`` and ``sign``.
    pair : ndarray of shape (nnz,), int32
        Index into the store.
    sign : ndarray of shape (nnz,), int8
        +1 similar, -1 dissimilar.
    active : ndarray of shape (T,), bool
        Tasks that have at least one pair and are learned.
    """

    store: PairStore
    ptr: np.ndarray
    pair: np.ndarray
    sign: np.ndarray
    active: np.ndarray

    @property
    def n_tasks(self):
        """Number of tasks T (M labels, or 1 for the global metric)."""
        return self.ptr.size - 1

    @property
    def counts(self):
        """Pairs of each task."""
        return np.diff(self.ptr)

    @property
    def nbytes(self):
        """Memory held by the store and the index lists."""
        return self.store.nbytes + self.ptr.nbytes + self.pair.nbytes + self.sign.nbytes

    def task_pairs(self, t):
        """(q, p, sign) of task t, as arrays (for inspection and tests)."""
        sl = slice(self.ptr[t], self.ptr[t + 1])
        j = self.pair[sl]
        return self.store.q[j], self.store.p[j], self.sign[sl]


def build_constraints(
    bd,
    train_blocks,
    Y,
    *,
    scheme="2pknn",
    k=4,
    k_pos=5,
    k_neg=10,
    overlap="dissimilar",
    max_dissimilar=None,
    image_level=False,
    min_label_count=2,
    n_threads=1,
    neighbours=group_neighbours,
):
    """Build the LDML constraints of a training set.

    Parameters
    ----------
    bd : BaseDistances
        Fitted base distances.
    train_blocks : list of ndarray
        Prepared training blocks (``bd.check(X_train)``).
    Y : ndarray of shape (n, M)
        Training labels, 0/1.
    scheme : {"2pknn", "label"}
    k : int
        Neighbours per label group (``"2pknn"``).
    k_pos, k_neg : int
        Similar and dissimilar neighbours per query (``"label"``).
    overlap : {"dissimilar", "both", "shared"}
        Where an image listed as similar and dissimilar is removed, or
        ``"shared"``: no image sharing a label with q is dissimilar (``"2pknn"``).
    max_dissimilar : int or None
        Keep at most this many dissimilar images per query, the nearest
        under D_0 (``"2pknn"``); None keeps them all.
    image_level : bool
        One task (global metric) instead of one per label.
    min_label_count : int
        Smallest label group that is a task (``"label"``).
    n_threads : int
    neighbours : callable
        ``group_neighbours`` of :mod:`mtlm._neighbourhoods` or a drop-in with
        its signature (the Dask backend's), used by ``"2pknn"``.

    Returns
    -------
    Constraints
    """
    Y = np.asarray(Y, dtype=bool)
    if scheme == "2pknn":
        _, _, lists = image_lists_2pknn(
            bd, train_blocks, Y, k, overlap, max_dissimilar, n_threads, neighbours
        )
        q, p, s, owner_ptr = _pairs_of_lists(lists)
        usable = Y.sum(axis=0) > k
    else:
        q, p, s, owner_ptr = _image_pairs_label(
            bd, train_blocks, Y, k_pos, k_neg, image_level, n_threads
        )
        usable = Y.sum(axis=0) >= min_label_count
    # Image-level pair lists -> task lists.
    if scheme == "2pknn":
        Yu = Y & usable[None, :]
        if image_level:
            owners = [np.flatnonzero(Yu.any(axis=1))]
        else:
            owners = [np.flatnonzero(Yu[:, m]) for m in range(Y.shape[1])]
        entries = [_expand(owner_ptr, o) for o in owners]
    else:
        # owner_ptr lists the pairs of each task directly.
        entries = [
            np.arange(owner_ptr[t], owner_ptr[t + 1]) for t in range(owner_ptr.size - 1)
        ]
    lo, hi = np.minimum(q, p), np.maximum(q, p)
    store, index = PairStore.build(bd, train_blocks, lo, hi, n_threads)
    ptr = np.zeros(len(entries) + 1, dtype=np.int64)
    pair_parts, sign_parts = [], []
    for t, e in enumerate(entries):
        j, st = index[e], s[e]
        if scheme == "label":
            # (q, p) and (p, q) map to one stored pair: keep one copy.
            key = j.astype(np.int64) * 2 + (st > 0)
            _, first = np.unique(key, return_index=True)
            first.sort()
            j, st = j[first], st[first]
        # Store order within a task: the kernel then reads the store
        # sequentially (about 5x faster than in listing order).
        order = np.argsort(j, kind="stable")
        pair_parts.append(j[order])
        sign_parts.append(st[order])
        ptr[t + 1] = ptr[t] + j.size
    pair = (
        np.concatenate(pair_parts).astype(np.int32)
        if pair_parts
        else np.zeros(0, np.int32)
    )
    sign = (
        np.concatenate(sign_parts).astype(np.int8)
        if sign_parts
        else np.zeros(0, np.int8)
    )
    counts = np.diff(ptr)
    active = counts > 0
    if not image_level:
        active &= usable
    cons = Constraints(
        store=store, ptr=ptr.astype(np.int32), pair=pair, sign=sign, active=active
    )
    n_sim = int((sign > 0).sum())
    logger.info(
        "constraints (%s%s): %d tasks learned of %d, %d label pairs "
        "(%d similar, %d dissimilar) over %d distinct pairs, %.1f MB",
        scheme,
        ", image level" if image_level else "",
        int(active.sum()),
        active.size,
        pair.size,
        n_sim,
        pair.size - n_sim,
        store.n_pairs,
        cons.nbytes / 1e6,
    )
    return cons


def _expand(owner_ptr, owners):
    """Concatenated ranges owner_ptr[o]:owner_ptr[o + 1] for o in owners."""
    starts = owner_ptr[owners]
    lens = owner_ptr[owners + 1] - starts
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offs = np.repeat(starts - np.concatenate(([0], np.cumsum(lens)[:-1])), lens)
    return np.arange(total, dtype=np.int64) + offs


def image_lists_2pknn(
    bd,
    train_blocks,
    Y,
    k,
    overlap,
    max_dissimilar,
    n_threads,
    neighbours=group_neighbours,
):
    """Per-image similar and dissimilar lists of the precursor scheme.

    Returns
    -------
    usable : ndarray of int
        Labels with more than ``k`` images (the label groups).
    idx : ndarray of shape (n, usable.size, k), int32, or None
        The ``k`` nearest images of each usable group for every image under
        D_0 (-1 padded), None when no label is usable.
    lists : list of (sim, dis) or None, one per image
        Similar and dissimilar images (ascending index), None for an image
        without a usable label.
    """
    n, M = Y.shape
    usable = np.flatnonzero(Y.sum(axis=0) > k)
    lists = [None] * n
    if usable.size == 0:
        return usable, None, lists
    Yu = Y[:, usable]
    w0 = np.full((1, bd.n_base_), 1.0 / bd.n_base_)
    idx, dist = neighbours(
        bd,
        train_blocks,
        train_blocks,
        w0,
        LabelGroups.from_labels(Yu),
        k,
        exclude=np.arange(n),
        n_threads=n_threads,
    )
    for qi in range(n):
        mine = Yu[qi]
        if not mine.any():
            continue  # an image with no (usable) label belongs to no task
        sim = np.unique(idx[qi, mine].ravel())
        dis, first = np.unique(idx[qi, ~mine].ravel(), return_index=True)
        dis_d = dist[qi, ~mine].ravel()[first]
        keep = dis >= 0
        sim, dis, dis_d = sim[sim >= 0], dis[keep], dis_d[keep]
        both = np.intersect1d(sim, dis, assume_unique=True)
        if overlap == "both":
            sim = np.setdiff1d(sim, both, assume_unique=True)
        if overlap == "shared":
            # Never dissimilar: an image that carries one of q's labels.
            keep = ~Y[dis][:, Y[qi]].any(axis=1)
        else:
            keep = ~np.isin(dis, both, assume_unique=True)
        dis, dis_d = dis[keep], dis_d[keep]
        if max_dissimilar is not None and dis.size > max_dissimilar:
            near = np.lexsort((dis, dis_d))[:max_dissimilar]
            dis = np.sort(dis[near])
        lists[qi] = (sim, dis)
    return usable, idx, lists


def _pairs_of_lists(lists):
    """The (sim, dis) lists of :func:`image_lists_2pknn` as pairs.

    Returns q, p, sign (one entry per listed pair, grouped by q) and
    owner_ptr (n + 1,) delimiting the pairs of each image.
    """
    n = len(lists)
    q_parts, p_parts, s_parts = [], [], []
    owner_ptr = np.zeros(n + 1, dtype=np.int64)
    for qi, lst in enumerate(lists):
        if lst is None:
            continue
        sim, dis = lst
        p = np.concatenate((sim, dis))
        q_parts.append(np.full(p.size, qi, dtype=np.int64))
        p_parts.append(p.astype(np.int64))
        s_parts.append(
            np.concatenate((np.ones(sim.size, np.int8), -np.ones(dis.size, np.int8)))
        )
        owner_ptr[qi + 1] = p.size
    np.cumsum(owner_ptr, out=owner_ptr)
    return (
        _cat(q_parts, np.int64),
        _cat(p_parts, np.int64),
        _cat(s_parts, np.int8),
        owner_ptr,
    )


def _image_pairs_label(bd, train_blocks, Y, k_pos, k_neg, image_level, n_threads):
    """Per-label (or image-level) nearest similar/dissimilar images under D_0.

    Rows of D_0 are computed block by block and sorted stably (ties to the
    lower index).  Returns q, p, sign and task_ptr (T + 1,) delimiting each
    task's pairs.
    """
    n, M = Y.shape
    F = bd.n_base_
    rows = int(Y.any(axis=1).sum()) if image_level else int(Y.sum())
    n_pairs = rows * (min(k_pos, n - 1) + min(k_neg, n - 1))
    # q, p (int64) and sign per listed pair, its stored base distances
    check_allocation(
        n_pairs * (17 + 4 * F),
        f"up to {n_pairs} constraint pairs",
        "reduce k_pos or k_neg",
    )
    YT = np.ascontiguousarray(Y.T)
    T = 1 if image_level else M
    parts = [[] for _ in range(T)]
    w0 = np.full(F, 1.0 / F)
    for start, stop in query_blocks(n, n, F):
        d = np.empty((stop - start, n, F), dtype=np.float32)
        bd.pairwise_prepared(
            [b[start:stop] for b in train_blocks], train_blocks, d, n_threads
        )
        D0 = d @ w0
        order = np.argsort(D0, axis=1, kind="stable")
        for i, qi in enumerate(range(start, stop)):
            labels = np.flatnonzero(Y[qi])
            if labels.size == 0:
                continue
            o = order[i]
            o = o[o != qi]
            if image_level:
                shares = YT[labels][:, o].any(axis=0)
                tasks = [(0, shares)]
            else:
                tasks = [(m, YT[m, o]) for m in labels]
            for t, member in tasks:
                sim = o[member][:k_pos]
                dis = o[~member][:k_neg]
                parts[t].append((qi, sim, dis))
    q_parts, p_parts, s_parts = [], [], []
    task_ptr = np.zeros(T + 1, dtype=np.int64)
    for t in range(T):
        for qi, sim, dis in parts[t]:
            p = np.concatenate((sim, dis))
            q_parts.append(np.full(p.size, qi, dtype=np.int64))
            p_parts.append(p.astype(np.int64))
            s_parts.append(
                np.concatenate(
                    (np.ones(sim.size, np.int8), -np.ones(dis.size, np.int8))
                )
            )
            task_ptr[t + 1] += p.size
    np.cumsum(task_ptr, out=task_ptr)
    return (
        _cat(q_parts, np.int64),
        _cat(p_parts, np.int64),
        _cat(s_parts, np.int8),
        task_ptr,
    )


def _cat(parts, dtype):
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

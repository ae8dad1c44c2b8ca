"""MTLM-LMNN: per-label triplets, active-set hinge gradient, projected descent.

ALGORITHM.md sections 3, 4.2-4.5 and 4.7.  One code path serves three methods:

``"mtlm-lmnn"``
    Shared w_* and label-specific w_m, one task per label (the paper's method).
``"local-lmnn"``
    Independent label metrics: w_* = 0, each w_m starts at w0 = 1/F.
``"global-lmnn"``
    One metric, one task with image-level constraints (similar = the two
    images share a label, dissimilar = they share none).

Our correction to the paper's appendix (section 4.7, the no-collapse
remedy): the plain ``[.]_+`` projection lets the weights shrink to 0 on
image-annotation data, because most impostors are nearer than the targets
and w -> 0 lowers the hinge.  The scale is therefore fixed by the projection
after every step: w_* on ``{w >= 0, sum(w) = 1}`` (the sum of the starting
equal weights), each w_m on ``{w >= 0, sum(w) <= label_budget}`` (on
``{sum(w) = 1}`` in the local method, where w_m is the whole metric), and the
margin is stated relative to that scale: ``margin`` times the mean initial
distance D_0 of the stored pairs, instead of LMNN's absolute 1.  Each
label's data term is divided by its number of target pairs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from mtlm._caller import warn_at_caller
from mtlm._constraints import image_lists_2pknn
from mtlm._memory import check_allocation
from mtlm._neighbourhoods import group_neighbours, query_blocks
from mtlm._pairstore import PairStore
from mtlm._simplex import project_capped_simplex, project_simplex
from mtlm._validation import check_choice, check_float, check_int
from mtlm_fast import _lmnn

__all__ = [
    "TripletSet",
    "build_triplets",
    "fit_lmnn",
    "learn",
    "learn_lmnn",
    "lmnn_constraints",
    "lmnn_constraints_key",
    "LMNN_METHODS",
]

logger = logging.getLogger(__name__)

#: method name -> mode of :func:`fit_lmnn`
LMNN_METHODS = {"mtlm-lmnn": "mtlm", "local-lmnn": "local", "global-lmnn": "global"}

#: LMNN's default iteration cap (ALGORITHM.md section 4.3) when max_iter is None.
DEFAULT_MAX_ITER = 1000


# -- constraint sets -----------------------------------------------------------------
@dataclass(frozen=True)
class TripletSet:
    """Targets, impostor candidates and candidate triplets of every task.

    Task m owns the local pairs ``lp_ptr[m]:lp_ptr[m+1]`` (its
    ``n_target[m]`` target pairs first, then its impostor pairs), each an
    index into ``store``, and the triplets ``t_ptr[m]:t_ptr[m+1]`` in the
    canonical order (m, q, target slot, impostor slot), each a (target,
    impostor) pair of local positions ``(t_a[t], t_b[t])``.

    Attributes
    ----------
    store : PairStore
        Every distinct pair with its base distances (one store for all tasks).
    lp_ptr : ndarray of shape (n_tasks + 1,), int64
    lp_idx : ndarray of shape (n_local,), int32
    n_target : ndarray of shape (n_tasks,), int64
    c : ndarray of shape (n_tasks, F), float64
        Sum of the base distances of each task's target pairs.
    t_ptr : ndarray of shape (n_tasks + 1,), int64
    t_a, t_b : ndarray of shape (n_triplets,), int32
    task_labels : ndarray of shape (n_tasks,), intp
        Label of each task (-1 for the global task).
    """

    store: PairStore
    lp_ptr: np.ndarray
    lp_idx: np.ndarray
    n_target: np.ndarray
    c: np.ndarray
    t_ptr: np.ndarray
    t_a: np.ndarray
    t_b: np.ndarray
    task_labels: np.ndarray

    @property
    def n_tasks(self):
        """Number of tasks."""
        return self.task_labels.size

    @property
    def n_triplets(self):
        """Number of candidate triplets."""
        return self.t_a.size

    @property
    def nbytes(self):
        """Memory of the store, the index lists and one byte mask."""
        return (
            self.store.nbytes
            + self.lp_idx.nbytes
            + self.t_a.nbytes
            + self.t_b.nbytes
            + self.n_triplets
        )


def select_neighbours(
    bd,
    train_blocks,
    Y,
    qlab_ptr,
    qlab,
    k_pos,
    k_neg,
    *,
    global_task=False,
    w=None,
    n_threads=1,
):
    """Targets and impostor candidates under ``D = w . d`` (w0 = 1/F by default).

    Parameters
    ----------
    bd : BaseDistances
    train_blocks : list of ndarray
        Prepared training blocks; every training image is a query.
    Y : ndarray of shape (n, M), uint8
    qlab_ptr, qlab : ndarray
        CSR lists of the labels of each query (int64 / int32).
    k_pos, k_neg : int
    global_task : bool
        One bucket per query (similar = shares a label with it) instead of
        one per (query, label).

    Returns
    -------
    tgt : ndarray of shape (n_rows, k_pos), int32, -1 padded
    imp : ndarray of shape (n_rows, k_neg), int32, -1 padded
        Rows follow ``qlab`` (per-label mode) or the queries (global mode).
    """
    n, F = train_blocks[0].shape[0], bd.n_base_
    w = np.full(F, 1.0 / F) if w is None else np.ascontiguousarray(w, np.float64)
    rows = n if global_task else qlab.size
    tgt = np.empty((rows, k_pos), dtype=np.int32)
    imp = np.empty((rows, k_neg), dtype=np.int32)
    Y = np.ascontiguousarray(Y, dtype=np.uint8)
    for start, stop in query_blocks(n, n, F):
        d = np.empty((stop - start, n, F), dtype=np.float32)
        bd.pairwise_prepared(
            [b[start:stop] for b in train_blocks], train_blocks, d, n_threads
        )
        r0, r1 = (start, stop) if global_task else (qlab_ptr[start], qlab_ptr[stop])
        _lmnn.select_triplet_neighbours(
            d,
            w,
            Y,
            np.arange(start, stop, dtype=np.intp),
            np.ascontiguousarray(qlab_ptr[start : stop + 1] - qlab_ptr[start]),
            np.ascontiguousarray(qlab[qlab_ptr[start] : qlab_ptr[stop]]),
            global_task,
            tgt[r0:r1],
            imp[r0:r1],
            n_threads,
        )
    return tgt, imp


def build_triplets(
    bd,
    train_blocks,
    Y,
    k_pos=3,
    k_neg=20,
    *,
    scheme="label",
    k=4,
    overlap="dissimilar",
    max_dissimilar=50,
    global_task=False,
    n_threads=1,
    neighbours=group_neighbours,
):
    """The triplet constraints of a training set under the initial metric.

    ``scheme="label"`` (LMNN's own sets, ALGORITHM.md section 3): per label
    m with at least ``k_pos + 1`` images (the others have no task and keep
    the shared metric), for q in T_m, targets are the ``k_pos`` nearest
    images of T_m other than q, impostor candidates the ``k_neg`` nearest
    images lacking m.  With ``global_task``, one task over the images with a
    label (targets share a label with q, candidates share none).

    ``scheme="2pknn"``: the image-level lists of the LDML precursor scheme
    (:func:`mtlm._constraints.image_lists_2pknn`, with ``k``, ``overlap``
    and ``max_dissimilar``).  Per label m with more than ``k`` images, for q
    in T_m, targets are the ``k`` nearest images of T_m (the pool the vote
    of m uses), impostor candidates q's dissimilar images that lack m.  With
    ``global_task``: targets are q's similar list, candidates its dissimilar
    images that share no label with q.

    C_m is every target x candidate triplet, in the canonical order (m, q,
    target slot, candidate slot).

    Returns
    -------
    TripletSet
    """
    Y = np.ascontiguousarray(Y, dtype=np.uint8)
    if scheme == "2pknn":
        rows = _rows_2pknn(
            bd,
            train_blocks,
            Y,
            k,
            overlap,
            max_dissimilar,
            global_task,
            n_threads,
            neighbours,
        )
    else:
        rows = _rows_label(bd, train_blocks, Y, k_pos, k_neg, global_task, n_threads)
    return _assemble(bd, train_blocks, *rows, n_threads)


def _rows_label(bd, train_blocks, Y, k_pos, k_neg, global_task, n_threads):
    """(queries, task of each row, task labels, targets, candidates) of "label"."""
    n, M = Y.shape
    sizes = Y.sum(axis=0)
    if global_task:
        labels_ok = np.ones(M, dtype=bool)
    else:
        labels_ok = sizes >= k_pos + 1
    qs, ls = np.nonzero(Y * labels_ok[None, :].astype(np.uint8))  # query-major
    qlab_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(qs, minlength=n), out=qlab_ptr[1:])
    qlab = ls.astype(np.int32)
    # No row can fill more slots than the largest group (targets) or the
    # other images (candidates): a huge k_pos / k_neg allocates no padding.
    largest = n - 1 if global_task else (int(sizes.max()) if M else 0)
    tgt, imp = select_neighbours(
        bd,
        train_blocks,
        Y,
        qlab_ptr,
        qlab,
        max(1, min(k_pos, largest)),
        max(1, min(k_neg, n - 1)),
        global_task=global_task,
        n_threads=n_threads,
    )
    if global_task:
        keep = np.flatnonzero(np.diff(qlab_ptr) > 0)
        return keep, np.zeros(keep.size, np.intp), np.array([-1]), tgt[keep], imp[keep]
    order = np.lexsort((qs, ls))  # label-major, queries ascending
    task_labels = np.flatnonzero(labels_ok)
    task_of = np.searchsorted(task_labels, ls[order])
    return qs[order], task_of, task_labels, tgt[order], imp[order]


def _rows_2pknn(
    bd, train_blocks, Y, k, overlap, max_dissimilar, global_task, n_threads, neighbours
):
    """(queries, task of each row, task labels, targets, candidates) of "2pknn"."""
    Yb = Y.astype(bool)
    usable, idx, lists = image_lists_2pknn(
        bd, train_blocks, Yb, k, overlap, max_dissimilar, n_threads, neighbours
    )
    aq, task_of, tgt, imp = [], [], [], []
    if global_task:
        task_labels = np.array([-1])
        for q, lst in enumerate(lists):
            if lst is not None:
                sim, dis = lst
                aq.append(q)
                tgt.append(sim)
                imp.append(dis[~Yb[dis][:, Yb[q]].any(axis=1)])
        task_of = [0] * len(aq)
    else:
        task_labels = usable
        for t, m in enumerate(usable):
            for q in np.flatnonzero(Yb[:, m]):
                sim, dis = lists[q]
                aq.append(q)
                task_of.append(t)
                tgt.append(idx[q, t])
                imp.append(dis[~Yb[dis, m]])
    return (
        np.asarray(aq, dtype=np.intp),
        np.asarray(task_of, dtype=np.intp),
        np.asarray(task_labels, dtype=np.intp),
        _padded(tgt),
        _padded(imp),
    )


def _padded(rows):
    """Ragged int rows -> (len(rows), max length >= 1) int32, -1 padded."""
    width = max([1] + [r.size for r in rows])
    out = np.full((len(rows), width), -1, dtype=np.int32)
    for i, r in enumerate(rows):
        out[i, : r.size] = r
    return out


def _assemble(bd, train_blocks, aq, task_of, task_labels, tgt, imp, n_threads):
    """The :class:`TripletSet` of per-row targets and candidates (-1 padded)."""
    F = bd.n_base_
    nT = task_labels.size
    w_t, w_i = tgt.shape[1], imp.shape[1]
    vt, vi = tgt >= 0, imp >= 0
    n_trip = int((vt.sum(axis=1) * vi.sum(axis=1)).sum())
    # the (rows, w_t, w_i) selection mask, then per triplet t_a, t_b (int32),
    # its task (int64) and the int64 gathers they are cut from
    check_allocation(
        tgt.shape[0] * w_t * w_i + n_trip * 32,
        f"{n_trip} candidate triplets",
        "reduce k_pos or k_neg (constraints='label'), or k or max_dissimilar "
        "(constraints='2pknn')",
    )
    ft, fi = np.flatnonzero(vt.ravel()), np.flatnonzero(vi.ravel())
    tt, ti = task_of[ft // w_t], task_of[fi // w_i]
    nt = np.bincount(tt, minlength=nT).astype(np.int64)
    ni = np.bincount(ti, minlength=nT).astype(np.int64)
    lp_ptr = np.zeros(nT + 1, dtype=np.int64)
    np.cumsum(nt + ni, out=lp_ptr[1:])
    tcum = np.concatenate(([0], np.cumsum(nt)))[:-1]
    icum = np.concatenate(([0], np.cumsum(ni)))[:-1]
    pos_t = lp_ptr[tt] + np.arange(ft.size) - tcum[tt]
    pos_i = lp_ptr[ti] + nt[ti] + np.arange(fi.size) - icum[ti]
    n_local = int(lp_ptr[-1])
    lq = np.empty(n_local, dtype=np.int64)
    lp = np.empty(n_local, dtype=np.int64)
    lq[pos_t], lp[pos_t] = aq[ft // w_t], tgt.ravel()[ft]
    lq[pos_i], lp[pos_i] = aq[fi // w_i], imp.ravel()[fi]
    store, lp_idx = PairStore.build(bd, train_blocks, lq, lp, n_threads)

    post = np.full(tgt.shape, -1, dtype=np.int64)
    post.ravel()[ft] = pos_t
    posi = np.full(imp.shape, -1, dtype=np.int64)
    posi.ravel()[fi] = pos_i
    valid = vt[:, :, None] & vi[:, None, :]  # (A, w_t, w_i), C order = canonical
    shape = valid.shape
    t_a = np.broadcast_to(post[:, :, None], shape)[valid].astype(np.int32)
    t_b = np.broadcast_to(posi[:, None, :], shape)[valid].astype(np.int32)
    t_task = np.broadcast_to(task_of[:, None, None], shape)[valid]
    t_ptr = np.zeros(nT + 1, dtype=np.int64)
    np.cumsum(np.bincount(t_task, minlength=nT), out=t_ptr[1:])

    dl = store.d[lp_idx]
    c = np.zeros((nT, F), dtype=np.float64)
    for m in range(nT):
        a = lp_ptr[m]
        c[m] = dl[a : a + nt[m]].sum(axis=0, dtype=np.float64)
    ts = TripletSet(
        store=store,
        lp_ptr=lp_ptr,
        lp_idx=np.ascontiguousarray(lp_idx),
        n_target=nt,
        c=c,
        t_ptr=t_ptr,
        t_a=np.ascontiguousarray(t_a),
        t_b=np.ascontiguousarray(t_b),
        task_labels=task_labels,
    )
    logger.info(
        "LMNN constraints: %d task(s), %d target pairs, %d local pairs, "
        "%d candidate triplets, %.1f MB (store %.1f MB)",
        nT,
        int(nt.sum()),
        n_local,
        ts.n_triplets,
        ts.nbytes / 1e6,
        store.nbytes / 1e6,
    )
    return ts


# -- optimisation ----------------------------------------------------------------------
@dataclass
class LMNNResult:
    """Output of :func:`fit_lmnn` (weights per task)."""

    w_shared: np.ndarray  # (F,)
    w_label: np.ndarray  # (n_tasks, F)
    n_iter: int
    objective: np.ndarray
    n_active: np.ndarray  # (n_tasks,)
    converged: bool
    margin: float
    info: dict = field(default_factory=dict)


class _ActiveState:
    """Working set, active mask and incremental S_m of a triplet set."""

    def __init__(self, ts, margin, n_threads):
        self.ts, self.margin, self.n_threads = ts, margin, n_threads
        nT, F = ts.n_tasks, ts.store.d.shape[1]
        self.D = np.empty(ts.lp_idx.size, dtype=np.float64)
        self.ws = np.zeros(ts.n_triplets, dtype=np.uint8)
        self.mask = np.zeros(ts.n_triplets, dtype=np.uint8)
        self.S = np.zeros((nT, F), dtype=np.float64)
        self.hinge = np.zeros(nT, dtype=np.float64)
        self.n_active = np.zeros(nT, dtype=np.int64)
        self.n_changed = np.zeros(nT, dtype=np.int64)

    def update(self, W, full):
        """Move to the metric W (n_tasks, F); incremental S_m (K4)."""
        ts = self.ts
        W = np.ascontiguousarray(W, dtype=np.float64)
        _lmnn.task_distances(
            ts.store.d, ts.lp_idx, ts.lp_ptr, W, self.D, self.n_threads
        )
        _lmnn.active_update(
            ts.store.d,
            ts.lp_idx,
            self.D,
            ts.t_ptr,
            ts.t_a,
            ts.t_b,
            self.margin,
            full,
            self.ws,
            self.mask,
            self.S,
            self.hinge,
            self.n_active,
            self.n_changed,
            self.n_threads,
        )
        return int(self.n_changed.sum())

    def recompute(self, W, full):
        """From-scratch twin of :meth:`update` (same mask, S_m rebuilt)."""
        ts = self.ts
        W = np.ascontiguousarray(W, dtype=np.float64)
        _lmnn.task_distances(
            ts.store.d, ts.lp_idx, ts.lp_ptr, W, self.D, self.n_threads
        )
        coef = np.empty(ts.lp_idx.size, dtype=np.int64)
        _lmnn.active_recompute(
            ts.store.d,
            ts.lp_idx,
            ts.lp_ptr,
            self.D,
            ts.t_ptr,
            ts.t_a,
            ts.t_b,
            self.margin,
            self.ws,
            full,
            self.mask,
            self.S,
            self.hinge,
            self.n_active,
            coef,
            self.n_threads,
        )
        if full:
            self.ws[:] = self.mask

    def save(self):
        return self.mask.copy(), self.S.copy(), self.hinge.copy(), self.n_active.copy()

    def restore(self, saved):
        self.mask[:], self.S[:], self.hinge[:], self.n_active[:] = saved


def _modes(mode):
    # (learn w_*, learn w_m, w_m projection sum fixed)
    return {"mtlm": (True, True), "local": (False, True), "global": (True, False)}[mode]


def objective_terms(
    ts, w_shared, w_label, hinge, *, mu, gamma_shared, gamma_label, mode
):
    """E(w) of ALGORITHM.md section 4.2 from the task hinge sums."""
    learn_s, learn_l = _modes(mode)
    W = w_shared[None, :] + w_label
    N = np.maximum(ts.n_target, 1)
    data = (np.einsum("mf,mf->m", W, ts.c) + mu * hinge) / N
    E = float(data.sum())
    if learn_s:
        E += gamma_shared * float(w_shared @ w_shared)
    if learn_l:
        E += gamma_label * float(np.sum(w_label * w_label))
    return E


def gradients(ts, w_shared, w_label, S, *, mu, gamma_shared, gamma_label, mode):
    """(G(w_*), G(w_m)) of ALGORITHM.md section 4.2 (data terms / n_target)."""
    learn_s, learn_l = _modes(mode)
    N = np.maximum(ts.n_target, 1)[:, None]
    g = (ts.c + mu * S) / N
    Gs = (
        2 * gamma_shared * w_shared + g.sum(axis=0)
        if learn_s
        else np.zeros_like(w_shared)
    )
    Gl = 2 * gamma_label * w_label + g if learn_l else np.zeros_like(w_label)
    return Gs, Gl


def fit_lmnn(
    ts,
    *,
    mode="mtlm",
    mu=1.0,
    margin=0.1,
    gamma_shared=1.0,
    gamma_label=1.0,
    label_budget=1.0,
    label_sum="at_most",
    max_iter=DEFAULT_MAX_ITER,
    tol=1e-6,
    full_check_every=10,
    n_threads=1,
    callback=None,
):
    """Projected (sub)gradient descent on MTLM-LMNN with the active-set update.

    Parameters
    ----------
    ts : TripletSet
    mode : {"mtlm", "local", "global"}
    mu : float
        Push weight.
    margin : float
        Margin as a fraction of the mean initial distance of the stored pairs.
    gamma_shared, gamma_label : float
        Weights of ||w_*||^2 and of each ||w_m||^2.
    label_budget : float or None
        Cap on sum(w_m) (mtlm mode); None keeps only w_m >= 0.
    label_sum : {"at_most", "equal"}
        mtlm mode: ``sum(w_m) <= label_budget`` (w_m starts at 0), or
        ``sum(w_m) == label_budget`` (w_m starts at ``label_budget / F``:
        every label spends the same budget on the features it prefers).
    max_iter, tol, full_check_every : see :class:`~mtlm.MTLMAnnotator`.
    callback : callable or None
        Called after every iteration with ``(it, accepted, W, state)`` where W
        is the current (accepted) metric per task and state the
        :class:`_ActiveState` (tests check S_m against a recomputation).

    Returns
    -------
    LMNNResult
    """
    learn_s, learn_l = _modes(mode)
    nT, F = ts.n_tasks, ts.store.d.shape[1]
    w0 = np.full(F, 1.0 / F)
    w_s = w0.copy() if mode != "local" else np.zeros(F)
    w_l = np.zeros((nT, F)) if mode != "local" else np.tile(w0, (nT, 1))
    equal = mode == "mtlm" and label_sum == "equal"
    if equal:
        w_l[:] = label_budget / F
    D0 = ts.store.d @ w0
    margin_abs = float(margin * D0.mean()) if D0.size else float(margin)
    kw = dict(mu=mu, gamma_shared=gamma_shared, gamma_label=gamma_label, mode=mode)

    def project(vs, vl):
        if learn_s:
            vs = project_simplex(vs, 1.0)
        if learn_l:
            if mode == "local":
                vl = project_simplex(vl, 1.0)
            elif equal:
                vl = project_simplex(vl, label_budget)
            elif label_budget is None:
                vl = np.maximum(vl, 0.0)
            else:
                vl = project_capped_simplex(vl, label_budget)
        return vs, vl

    state = _ActiveState(ts, margin_abs, n_threads)
    state.update(w_s[None, :] + w_l, full=True)
    E = objective_terms(ts, w_s, w_l, state.hinge, **kw)
    objective = [E]
    Gs, Gl = gradients(ts, w_s, w_l, state.S, **kw)
    # Initial step (section 4.3) on the gradient seen through the projection:
    # the part of G that the projection removes (its mean on a sum-1
    # simplex, positive entries at w = 0) would otherwise make eta0 tiny.
    gmax = max(
        np.abs(Gs).max() if learn_s else 0.0,
        np.abs(Gl).max(initial=0.0) if learn_l else 0.0,
    )
    if gmax > 0:
        t = 1e-6 / gmax
        ps, pl = project(w_s - t * Gs, w_l - t * Gl)
        gmax = max(np.abs(ps - w_s).max(), np.abs(pl - w_l).max(initial=0.0)) / t
    eta0 = 0.1 * max(np.abs(w_s).max(), np.abs(w_l).max(initial=0.0), 1.0 / F)
    eta0 = eta0 / gmax if gmax > 1e-300 else 0.0
    eta = eta0
    converged = False
    it = 0
    since_full = 0
    n_accepted = n_rejected = n_full = 0
    t0 = time.perf_counter()
    if eta0 == 0.0 or ts.n_triplets == 0 and not (learn_s or learn_l):
        converged = True
    while not converged and it < max_iter:
        if since_full >= full_check_every:
            state.update(w_s[None, :] + w_l, full=True)
            E = objective_terms(ts, w_s, w_l, state.hinge, **kw)
            since_full = 0
            n_full += 1
        Gs, Gl = gradients(ts, w_s, w_l, state.S, **kw)
        vs, vl = project(w_s - eta * Gs, w_l - eta * Gl)
        saved = state.save()
        state.update(vs[None, :] + vl, full=False)
        E_new = objective_terms(ts, vs, vl, state.hinge, **kw)
        it += 1
        since_full += 1
        stop = False
        if E_new < E:
            rel = (E - E_new) / abs(E) if E != 0 else 0.0
            w_s, w_l, E = vs, vl, E_new
            eta *= 1.01
            objective.append(E)
            n_accepted += 1
            stop = rel < tol
            accepted = True
        else:
            state.restore(saved)
            eta *= 0.5
            n_rejected += 1
            stop = eta < 1e-12 * eta0
            accepted = False
        if callback is not None:
            callback(it, accepted, w_s[None, :] + w_l, state)
        if stop:
            # One full check before declaring convergence.
            changed = state.update(w_s[None, :] + w_l, full=True)
            n_full += 1
            since_full = 0
            E = objective_terms(ts, w_s, w_l, state.hinge, **kw)
            if changed == 0:
                converged = True
            elif eta < 1e-12 * eta0:
                eta = eta0
    if not converged:
        warn_at_caller(
            f"LMNN ({mode}) did not converge in max_iter={max_iter} iterations "
            f"(last relative decrease above tol={tol}); increase max_iter.",
            ConvergenceWarning,
        )
    else:
        # the state is at a full check already unless we stopped on eta0 == 0
        pass
    logger.info(
        "LMNN (%s): %d iterations (%d accepted, %d rejected, %d full checks) "
        "in %.2fs, E %.6g -> %.6g, %d active triplets of %d",
        mode,
        it,
        n_accepted,
        n_rejected,
        n_full,
        time.perf_counter() - t0,
        objective[0],
        E,
        int(state.n_active.sum()),
        ts.n_triplets,
    )
    return LMNNResult(
        w_shared=w_s,
        w_label=w_l,
        n_iter=it,
        objective=np.asarray(objective),
        n_active=state.n_active.copy(),
        converged=converged,
        margin=margin_abs,
        info=dict(n_accepted=n_accepted, n_rejected=n_rejected, n_full=n_full),
    )


# -- annotator hook ------------------------------------------------------------------
def check_lmnn_params(est):
    """Validate the LMNN parameters of an annotator; return them as a dict."""
    p = dict(
        k_pos=check_int(est.k_pos, "k_pos", low=1),
        k_neg=check_int(est.k_neg, "k_neg", low=1),
        mu=check_float(est.mu, "mu", low=0.0),
        margin=check_float(est.margin, "margin", low=0.0),
        gamma_shared=check_float(est.gamma_shared, "gamma_shared", low=0.0),
        gamma_label=check_float(est.gamma_label, "gamma_label", low=0.0),
        # the shared weights sum to 1: a budget past 1e6 only overflows
        label_budget=check_float(
            est.label_budget,
            "label_budget",
            low=0.0,
            high=1e6,
            low_open=True,
            allow_none=True,
        ),
        label_sum=check_choice(est.label_sum, "label_sum", ("at_most", "equal")),
        max_iter=check_int(est.max_iter, "max_iter", low=1, allow_none=True),
        tol=check_float(est.tol, "tol", low=0.0),
        full_check_every=check_int(est.full_check_every, "full_check_every", low=1),
    )
    if p["label_sum"] == "equal" and p["label_budget"] is None:
        raise ValueError(
            'label_sum="equal" needs a label_budget (the sum of each w_m), got None; '
            'use label_sum="at_most" to leave sum(w_m) free.'
        )
    if p["max_iter"] is None:
        p["max_iter"] = DEFAULT_MAX_ITER
    return p


def result_to_weights(res, ts, M, mode, label_fill=0.0):
    """Per-label (w_*, W_label, n_active) from the per-task result.

    Labels without a task get w_m = ``label_fill`` * w_* (mtlm: the shared
    metric, scaled like the others when ``label_sum="equal"``), or w0 (local).
    """
    F = res.w_shared.size
    n_active = np.zeros(M, dtype=np.int64)
    if mode == "global":
        return res.w_shared, np.zeros((M, F)), res.n_active.copy()
    w_label = np.zeros((M, F))
    if mode == "local":
        w_label[:] = 1.0 / F  # labels without a task keep the initial metric
    elif label_fill:
        w_label[:] = label_fill * res.w_shared
    w_label[ts.task_labels] = res.w_label
    n_active[ts.task_labels] = res.n_active
    return res.w_shared, w_label, n_active


def lmnn_scheme(est):
    """``est.constraints``, None read as LMNN's default ``"label"``."""
    return "label" if est.constraints is None else est.constraints


def lmnn_constraints_key(est):
    """What the triplets of ``est`` depend on, besides the training data.

    Grid points with equal keys (on the same data) share one
    :func:`lmnn_constraints` result; ``mu``, ``margin``, the gammas and the
    solver settings only enter :func:`learn_lmnn`.
    """
    scheme = lmnn_scheme(est)
    if scheme == "2pknn":
        knobs = (est.k, est.overlap, est.max_dissimilar)
    else:
        knobs = (est.k_pos, est.k_neg)
    return ("lmnn", LMNN_METHODS[est.method] == "global", scheme, knobs)


def lmnn_constraints(est, n_threads):
    """The triplet set that ``est`` (a fit context) asks for."""
    p = check_lmnn_params(est)
    scheme = lmnn_scheme(est)
    neighbours = group_neighbours
    if scheme == "2pknn":  # the label-group search may run on the Dask backend
        neighbours, _, n_threads = est._neighbourhood_functions(n_threads)
    return build_triplets(
        est.base_distances_,
        est._train_blocks,
        est.Y_train_,
        p["k_pos"],
        p["k_neg"],
        scheme=scheme,
        k=est.k,
        overlap=est.overlap,
        max_dissimilar=est.max_dissimilar,
        global_task=LMNN_METHODS[est.method] == "global",
        n_threads=n_threads,
        neighbours=neighbours,
    )


def _warn_no_triplet(est, ts, Y):
    """Say why no triplet was made and what the fit then learns."""
    scheme = lmnn_scheme(est)
    knob = "k_pos" if scheme == "label" else "k"
    size = est.k_pos + 1 if scheme == "label" else est.k + 1
    counts = np.asarray(Y.sum(axis=0)).ravel()
    big = counts >= size
    everywhere = np.flatnonzero(counts == Y.shape[0])
    if LMNN_METHODS[est.method] == "global" and everywhere.size:
        cause = (
            f"label {everywhere[0]} is carried by every image, so every two images "
            "share a label and none can be an impostor"
        )
    elif big.any() and (counts[big] == Y.shape[0]).all():
        # lowering k_pos / k cannot help: nothing is an impostor
        cause = (
            f"every label with {size} images or more is carried by every image, "
            "so no image can be an impostor"
        )
    else:
        cause = (
            f"constraints={scheme!r}: a label needs {size} images or more, and "
            f"images without it; lower {knob}"
        )
    effect = (
        "only the pull term on the target pairs is learned"
        if np.any(ts.n_target > 0)
        else "the metric stays at its initial value"
    )
    warn_at_caller(
        f"no candidate triplet to learn from ({cause}): {effect}.", UserWarning
    )


def learn_lmnn(est, ts, n_threads):
    """Solve the problem of ``est.method`` on a prebuilt triplet set.

    Returns a :class:`~mtlm._annotator.LearnedMetric`.  The triplets depend
    only on the data, ``k_pos``, ``k_neg`` and whether the method is global
    (:func:`lmnn_constraints_key`), so a parameter search over ``mu``,
    ``margin`` or the regularisation can reuse them.
    """
    from mtlm._annotator import LearnedMetric

    mode = LMNN_METHODS[est.method]
    p = check_lmnn_params(est)
    Y = est.Y_train_
    if ts.n_triplets == 0:
        _warn_no_triplet(est, ts, Y)
    res = fit_lmnn(
        ts,
        mode=mode,
        mu=p["mu"],
        margin=p["margin"],
        gamma_shared=p["gamma_shared"],
        gamma_label=p["gamma_label"],
        label_budget=p["label_budget"],
        label_sum=p["label_sum"],
        max_iter=p["max_iter"],
        tol=p["tol"],
        full_check_every=p["full_check_every"],
        n_threads=n_threads,
    )
    fill = p["label_budget"] if mode == "mtlm" and p["label_sum"] == "equal" else 0.0
    w_s, w_l, n_active = result_to_weights(res, ts, Y.shape[1], mode, fill)
    W = w_s[None, :] + w_l
    dead = np.flatnonzero(W.sum(axis=1) < 1e-6)
    if dead.size:
        warn_at_caller(
            f"LMNN drove the metric of {dead.size} label(s) to zero "
            f"(first: {dead[:5].tolist()}); their votes are uninformative.",
            RuntimeWarning,
        )
    return LearnedMetric(
        weights_shared=w_s,
        weights_label=w_l,
        bias=np.zeros(Y.shape[1]),
        n_iter=res.n_iter,
        objective=res.objective,
        extra=dict(
            n_active_=n_active,
            n_triplets_=ts.n_triplets,
            margin_=res.margin,
            converged_=res.converged,
        ),
    )


def learn(est, n_threads):
    """Learner of ``method in LMNN_METHODS`` for :class:`~mtlm.MTLMAnnotator`."""
    return learn_lmnn(est, lmnn_constraints(est, n_threads), n_threads)

"""Plain-numpy twins of the LMNN kernels (mtlm_fast/_lmnn.pyx), for tests.

Slow and simple on purpose: full sorts, explicit loops over tasks, float64.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "select_triplet_neighbours",
    "select_2pknn_triplets",
    "task_distances",
    "active_set",
    "mask_difference",
    "lmnn_objective",
]


def select_triplet_neighbours(d, w, Y, k_pos, k_neg, *, global_task=False, labels=None):
    """Targets/impostors from the full (n, n, F) base distances.

    Returns a dict keyed by (q, m) (m = -1 in global mode) of
    (targets, impostors) as lists, nearest first, ties to the lower index.
    ``labels`` restricts the per-label mode to those labels.
    """
    n = Y.shape[0]
    D = d.astype(np.float64) @ np.asarray(w, dtype=np.float64)
    Yb = Y.astype(bool)
    out = {}
    for q in range(n):
        order = np.argsort(D[q], kind="stable")
        Lq = np.flatnonzero(Yb[q])
        if labels is not None:
            Lq = [m for m in Lq if m in set(labels)]
        if global_task:
            if len(Lq) == 0:
                continue
            pos = Yb[:, Lq].any(axis=1)
            t = [p for p in order if pos[p] and p != q][:k_pos]
            i = [p for p in order if not pos[p]][:k_neg]
            out[(q, -1)] = (t, i)
            continue
        for m in Lq:
            t = [p for p in order if Yb[p, m] and p != q][:k_pos]
            i = [p for p in order if not Yb[p, m]][:k_neg]
            out[(q, m)] = (t, i)
    return out


def select_2pknn_triplets(
    d, Y, k, *, overlap="dissimilar", max_dissimilar=None, global_task=False
):
    """Targets/impostors of ``scheme="2pknn"`` from the full base distances.

    Equal weights; the 2PKNN lists are rebuilt with plain loops: label groups
    with more than ``k`` images, the ``k`` nearest of each group (not q, ties
    to the lower index), similar for q's labels and dissimilar for the
    others, the overlap rule, the nearest ``max_dissimilar`` dissimilar.
    Returns a dict keyed by (q, m) (m = -1 in global mode) of (targets,
    impostors): per label the group's k nearest (nearest first) and the
    dissimilar images lacking m; globally the similar list and the
    dissimilar images sharing no label with q (both ascending index).
    """
    n, F = d.shape[0], d.shape[2]
    D = d.astype(np.float64).sum(axis=2) / F
    Yb = Y.astype(bool)
    usable = [m for m in range(Y.shape[1]) if Yb[:, m].sum() > k]
    near = {}
    for q in range(n):
        order = np.argsort(D[q], kind="stable")
        for m in usable:
            near[q, m] = [p for p in order if Yb[p, m] and p != q][:k]
    out = {}
    for q in range(n):
        mine = [m for m in usable if Yb[q, m]]
        if not mine:
            continue
        sim = sorted({p for m in mine for p in near[q, m]})
        dis = sorted({p for m in usable if m not in mine for p in near[q, m]})
        both = set(sim) & set(dis)
        if overlap == "both":
            sim = [p for p in sim if p not in both]
        if overlap == "shared":
            dis = [p for p in dis if not (Yb[p] & Yb[q]).any()]
        else:
            dis = [p for p in dis if p not in both]
        if max_dissimilar is not None and len(dis) > max_dissimilar:
            dis = sorted(sorted(dis, key=lambda p: (D[q, p], p))[:max_dissimilar])
        if global_task:
            out[q, -1] = (sim, [p for p in dis if not (Yb[p] & Yb[q]).any()])
        else:
            for m in mine:
                out[q, m] = (near[q, m], [p for p in dis if not Yb[p, m]])
    return out


def task_distances(d, lp_idx, lp_ptr, W):
    """D[j] = W[m] . d[lp_idx[j]] for the local pairs of each task."""
    D = np.empty(lp_idx.size)
    for m in range(lp_ptr.size - 1):
        sl = slice(lp_ptr[m], lp_ptr[m + 1])
        D[sl] = d[lp_idx[sl]].astype(np.float64) @ W[m]
    return D


def active_set(d, lp_idx, lp_ptr, t_ptr, t_a, t_b, W, margin, ws=None):
    """Active mask (within ``ws`` if given), S_m and hinge sums from scratch."""
    D = task_distances(d, lp_idx, lp_ptr, W)
    z = margin + D[t_a] - D[t_b]
    mask = z > 0
    if ws is not None:
        mask &= ws.astype(bool)
    diff = d[lp_idx[t_a]].astype(np.float64) - d[lp_idx[t_b]].astype(np.float64)
    M, F = t_ptr.size - 1, d.shape[1]
    S = np.zeros((M, F))
    hinge = np.zeros(M)
    for m in range(M):
        sl = slice(t_ptr[m], t_ptr[m + 1])
        S[m] = diff[sl][mask[sl]].sum(axis=0)
        hinge[m] = z[sl][mask[sl]].sum()
    return mask.astype(np.uint8), S, hinge


def mask_difference(d, lp_idx, t_ptr, t_a, t_b, old, new):
    """sum over triplets of (new XOR old) * sign * (d_qp - d_qn), per task."""
    changed = np.logical_xor(old.astype(bool), new.astype(bool))
    sign = np.where(new.astype(bool), 1.0, -1.0)
    diff = d[lp_idx[t_a]].astype(np.float64) - d[lp_idx[t_b]].astype(np.float64)
    M, F = t_ptr.size - 1, d.shape[1]
    S = np.zeros((M, F))
    for m in range(M):
        sl = slice(t_ptr[m], t_ptr[m + 1])
        S[m] = (diff[sl] * (changed[sl] * sign[sl])[:, None]).sum(axis=0)
    return S


def lmnn_objective(
    ts,
    w_shared,
    w_label,
    margin,
    *,
    mu,
    gamma_shared,
    gamma_label,
    learn_shared=True,
    learn_label=True,
):
    """E(w) of ALGORITHM.md 4.2 (data terms / n_target) over all of C_m."""
    W = w_shared[None, :] + w_label
    d = ts.store.d
    D = task_distances(d, ts.lp_idx, ts.lp_ptr, W)
    E = 0.0
    for m in range(ts.n_tasks):
        a = ts.lp_ptr[m]
        pull = D[a : a + ts.n_target[m]].sum()
        sl = slice(ts.t_ptr[m], ts.t_ptr[m + 1])
        z = margin + D[ts.t_a[sl]] - D[ts.t_b[sl]]
        E += (pull + mu * np.maximum(z, 0).sum()) / max(ts.n_target[m], 1)
    if learn_shared:
        E += gamma_shared * w_shared @ w_shared
    if learn_label:
        E += gamma_label * np.sum(w_label**2)
    return E

"""Plain-numpy twins of the base-distance, neighbourhood and vote kernels.

Slow and simple on purpose: the tests compare every kernel with these.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

__all__ = ["base_distance", "group_knn", "pool_vote"]


def base_distance(X, Z, metric):
    """Raw (unnormalised) distance matrix between rows of X and Z, in float64."""
    X = np.asarray(X, dtype=np.float64)
    Z = np.asarray(Z, dtype=np.float64)
    if metric == "l1":
        return cdist(X, Z, "cityblock")
    if metric == "sqeuclidean":
        return cdist(X, Z, "sqeuclidean")
    if metric == "l2":
        return cdist(X, Z, "euclidean")
    if metric == "hellinger":
        return cdist(np.sqrt(X), np.sqrt(Z), "euclidean") / np.sqrt(2.0)
    if metric == "chi2":
        num = (X[:, None, :] - Z[None, :, :]) ** 2
        den = X[:, None, :] + Z[None, :, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            terms = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
        return terms.sum(axis=2)
    raise ValueError(metric)


def group_knn(d, W, Y, k, exclude=None):
    """k nearest members of each label group, ties to the lower index.

    d: (b, n, F); W: (1 or M, F); Y: (n, M) 0/1. Returns idx (b, M, k) with -1
    padding and dist (b, M, k) with +inf padding.
    """
    b, n, _ = d.shape
    M = Y.shape[1]
    idx = np.full((b, M, k), -1, dtype=np.int64)
    dist = np.full((b, M, k), np.inf)
    for i in range(b):
        for m in range(M):
            w = W[0] if W.shape[0] == 1 else W[m]
            members = np.flatnonzero(Y[:, m])
            if exclude is not None:
                members = members[members != exclude[i]]
            D = d[i, members].astype(np.float64) @ w
            order = np.argsort(D, kind="stable")[:k]
            idx[i, m, : order.size] = members[order]
            dist[i, m, : order.size] = D[order]
    return idx, dist


def pool_vote(d, W, pools, Y, tau, raw=False):
    """Vote of each query for each label over its pool (ALGORITHM.md section 5).

    pools: list of index arrays (one per query). Returns (b, M).
    """
    b = d.shape[0]
    M = Y.shape[1]
    out = np.zeros((b, M))
    for i in range(b):
        pool = np.asarray(pools[i])
        if pool.size == 0:
            continue
        for m in range(M):
            w = W[0] if W.shape[0] == 1 else W[m]
            D = d[i, pool].astype(np.float64) @ w
            e = np.exp(-(D - D.min()) / tau)
            num = (e * Y[pool, m]).sum()
            out[i, m] = num * np.exp(-D.min() / tau) if raw else num / e.sum()
    return out

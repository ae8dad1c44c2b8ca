"""Exact Euclidean projections onto the simplex and the capped simplex.

They keep the scale of LMNN's weights fixed (ALGORITHM.md section 4.7, our
correction to the appendix's plain ``[.]_+`` projection): w_* lives on
``{w >= 0, sum(w) = s}`` and each w_m on ``{w >= 0, sum(w) <= s}``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["project_simplex", "project_capped_simplex"]


def project_simplex(v, s=1.0):
    """Euclidean projection of each row of ``v`` onto ``{w >= 0, sum(w) = s}``.

    Sort-based algorithm (Held, Wolfe and Crowder 1974; Duchi et al. 2008):
    ``w = max(v - theta, 0)`` with theta chosen so that the sum is ``s``.

    Parameters
    ----------
    v : array-like of shape (F,) or (M, F)
    s : float, default=1.0
        Sum of the projection, > 0.

    Returns
    -------
    w : ndarray of the shape of ``v``, float64
    """
    v = np.asarray(v, dtype=np.float64)
    if s <= 0:
        raise ValueError(f"s must be > 0, got {s}.")
    V = np.atleast_2d(v)
    F = V.shape[1]
    u = -np.sort(-V, axis=1)  # descending
    css = np.cumsum(u, axis=1) - s
    ks = np.arange(1, F + 1)
    cond = u - css / ks > 0
    rho = F - 1 - np.argmax(cond[:, ::-1], axis=1)  # last index where cond holds
    theta = css[np.arange(V.shape[0]), rho] / (rho + 1)
    W = np.maximum(V - theta[:, None], 0.0)
    return W.reshape(v.shape)


def project_capped_simplex(v, s=1.0):
    """Euclidean projection of each row onto ``{w >= 0, sum(w) <= s}``.

    ``max(v, 0)`` when its sum is at most ``s``, else the projection onto
    the simplex of sum ``s`` (the cap is then the active constraint).

    Parameters
    ----------
    v : array-like of shape (F,) or (M, F)
    s : float, default=1.0

    Returns
    -------
    w : ndarray of the shape of ``v``, float64
    """
    v = np.asarray(v, dtype=np.float64)
    V = np.atleast_2d(v)
    W = np.maximum(V, 0.0)
    over = W.sum(axis=1) > s
    if over.any():
        W[over] = project_simplex(V[over], s)
    return W.reshape(v.shape)

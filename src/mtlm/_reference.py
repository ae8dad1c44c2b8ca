"""Plain-numpy twins of the compiled kernels in :mod:`mtlm_fast`.

Slow and simple on purpose: tests compare every kernel against its twin
here, and the benchmarks time the two side by side.  One delimited section
per kernel.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ldml_grad"]


# ---------------------------------------------------------------------------
# K3: LDML per-label loss and gradient sums (mtlm_fast/_ldml.pyx:ldml_grad)
# ---------------------------------------------------------------------------
def _softplus(z):
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def _sigmoid(z):
    return np.exp(np.minimum(z, 0.0)) / (1.0 + np.exp(-np.abs(z)))


def ldml_grad(d, ptr, pair, sign, W, bias, scale):
    """Per-label LDML data terms, written as in ALGORITHM.md section 4.1.

    Parameters
    ----------
    d : ndarray of shape (n_pairs, F)
        Base distances of the stored pairs.
    ptr : ndarray of shape (M + 1,)
        Label m owns entries ``ptr[m]:ptr[m + 1]`` of ``pair`` and ``sign``.
    pair : ndarray of shape (nnz,)
        Index into ``d`` of each of a label's pairs.
    sign : ndarray of shape (nnz,)
        +1 for a similar pair, -1 for a dissimilar one.
    W : ndarray of shape (M, F)
        Effective weights ``w_* + w_m``.
    bias : ndarray of shape (M,)
    scale : ndarray of shape (M,)
        Factor applied to each label's data term (1, or ``1 / |P_m|``).

    Returns
    -------
    grad : ndarray of shape (M, F + 1)
        ``scale_m sum_P_m s sigmoid(s D'_m) [-1, d]``; entry 0 is the bias.
    loss : ndarray of shape (M,)
        ``scale_m sum_P_m softplus(s D'_m)``.
    grad_shared : ndarray of shape (F,)
        ``sum_m grad[m, 1:]``.
    """
    d = np.asarray(d, dtype=np.float64)
    M, F = W.shape
    grad = np.zeros((M, F + 1))
    loss = np.zeros(M)
    for m in range(M):
        rows = pair[ptr[m] : ptr[m + 1]]
        s = sign[ptr[m] : ptr[m + 1]].astype(np.float64)
        dm = d[rows]
        z = s * (dm @ W[m] - bias[m])
        c = s * _sigmoid(z)
        loss[m] = scale[m] * _softplus(z).sum()
        grad[m, 0] = -scale[m] * c.sum()
        grad[m, 1:] = scale[m] * (c @ dm)
    return grad, loss, grad[:, 1:].sum(axis=0)


# --- end K3 ----------------------------------------------------------------

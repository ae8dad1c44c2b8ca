"""One store of distinct training pairs (q, p) with their base distances.

Constraint builders (2PKNN-style and per-label pairs for LDML, triplets for
LMNN) list pairs; the store keeps each distinct (q, p) once with its float32
base-distance vector, and labels refer to it by int32 index (ALGORITHM.md
section 7: store P.(4F + 8) bytes).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from mtlm._memory import check_allocation

__all__ = ["PairStore"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairStore:
    """Distinct ordered training pairs and their base distances.

    Attributes
    ----------
    q, p : ndarray of shape (n_pairs,), int32
        Query and partner training indices, sorted by (q, p).
    d : ndarray of shape (n_pairs, F), float32
        Normalised base distances d(q, p).
    """

    q: np.ndarray
    p: np.ndarray
    d: np.ndarray

    @property
    def n_pairs(self):
        """Number of stored pairs."""
        return self.q.size

    @property
    def nbytes(self):
        """Memory held by the store."""
        return self.q.nbytes + self.p.nbytes + self.d.nbytes

    @classmethod
    def build(cls, bd, train_blocks, q, p, n_threads=1):
        """Store the distinct pairs among (q[r], p[r]) and return (store, index).

        Parameters
        ----------
        bd : BaseDistances
            Fitted base distances.
        train_blocks : list of ndarray
            Prepared training blocks (``bd.check(X_train)``).
        q, p : array-like of int
            Listed pairs, possibly repeated.
        n_threads : int

        Returns
        -------
        store : PairStore
        index : ndarray of shape (len(q),), int32
            Position in the store of each listed pair.
        """
        q = np.asarray(q, dtype=np.int64).ravel()
        p = np.asarray(p, dtype=np.int64).ravel()
        n = train_blocks[0].shape[0]
        key = q * n + p
        uniq, index = np.unique(key, return_inverse=True)
        uq = (uniq // n).astype(np.int32)
        up = (uniq % n).astype(np.int32)
        check_allocation(
            uniq.size * (bd.n_base_ * 4 + 8),
            f"the pair store ({uniq.size} pairs x {bd.n_base_} base distances)",
            "reduce k (neighbours per label group) or the number of labels",
        )
        d = bd.paired_prepared(train_blocks, train_blocks, uq, up, n_threads)
        store = cls(q=uq, p=up, d=d)
        logger.info(
            "pair store: %d distinct pairs of %d listed, %.1f MB",
            store.n_pairs,
            q.size,
            store.nbytes / 1e6,
        )
        return store, index.astype(np.int32)

    def distances(self, w):
        """D(q, p) = w . d(q, p) for every stored pair, in float64."""
        return self.d @ np.asarray(w, dtype=np.float64)

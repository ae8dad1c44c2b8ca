"""K4: one incremental LMNN iteration against one from-scratch iteration.

The triplet layout has the Corel5K size of MTLM-LMNN with k_pos=3, k_neg=20
(247 labels, ~15k assignments, ~350k local pairs, ~920k candidate triplets,
F = 10); the metric alternates between two nearby weight sets so that every
iteration changes part of the active set.  ``benchmarks/eval_lmnn.py``
times the same on the real Corel5K triplets.
"""

import numpy as np

from mtlm._lmnn import TripletSet, _ActiveState
from mtlm._pairstore import PairStore


def corel_sized_triplets(
    seed=0, M=247, per_label=62, k_pos=3, k_neg=20, F=10, n_pairs=139_000
):
    rng = np.random.default_rng(seed)
    store = PairStore(
        q=np.zeros(n_pairs, np.int32),
        p=np.zeros(n_pairs, np.int32),
        d=rng.random((n_pairs, F), dtype=np.float32),
    )
    nt = np.full(M, per_label * k_pos, dtype=np.int64)
    ni = np.full(M, per_label * k_neg, dtype=np.int64)
    lp_ptr = np.concatenate(([0], np.cumsum(nt + ni))).astype(np.int64)
    lp_idx = np.sort(rng.integers(0, n_pairs, lp_ptr[-1])).astype(np.int32)
    j = np.arange(per_label)
    a = (j[:, None] * k_pos + np.arange(k_pos))[:, :, None]
    b = (j[:, None] * k_neg + np.arange(k_neg))[:, None, :]
    a, b = np.broadcast_arrays(a, b)
    t_a = np.concatenate([lp_ptr[m] + a.ravel() for m in range(M)]).astype(np.int32)
    t_b = np.concatenate([lp_ptr[m] + nt[m] + b.ravel() for m in range(M)]).astype(
        np.int32
    )
    t_ptr = np.arange(M + 1, dtype=np.int64) * per_label * k_pos * k_neg
    return TripletSet(
        store, lp_ptr, lp_idx, nt, np.zeros((M, F)), t_ptr, t_a, t_b, np.arange(M)
    )


class LMNNIteration:
    params = ([1, 2],)
    param_names = ["n_threads"]

    def setup(self, n_threads):
        self.ts = corel_sized_triplets()
        M, F = self.ts.n_tasks, self.ts.store.d.shape[1]
        rng = np.random.default_rng(1)
        self.W = [np.full((M, F), 0.1), 0.1 * (1 + 0.2 * rng.random((M, F)))]
        self.state = _ActiveState(self.ts, 0.05, n_threads)
        self.state.update(self.W[0], full=True)
        self.i = 0

    def _next(self):
        self.i += 1
        return self.W[self.i % 2]

    def time_incremental_iteration(self, n_threads):
        self.state.update(self._next(), full=False)

    def time_scratch_iteration(self, n_threads):
        self.state.recompute(self._next(), full=False)

    def time_full_check(self, n_threads):
        self.state.update(self._next(), full=True)

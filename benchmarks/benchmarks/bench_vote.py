"""asv benchmarks: the K6 pool vote (per-label metrics, many temperatures)."""

import numpy as np

from mtlm_fast import _vote


class PoolVote:
    # Corel5K test scale per block of queries: 260 labels, pools of ~800
    # training images (k = 4 per label group, overlapping), 16 temperatures
    # as in the choice of tau after learning.
    params = ([1, 2], ["scalar", "base", "avx2"])
    param_names = ["n_threads", "simd"]

    def setup(self, n_threads, simd):
        if simd not in _vote.simd_levels():
            raise NotImplementedError
        rng = np.random.default_rng(0)
        b, n, F, M, P = 100, 4500, 10, 260, 800
        self.d = rng.random((b, n, F), dtype=np.float32)
        self.W = rng.random((M, F))
        self.pool = np.stack([rng.choice(n, P, replace=False) for _ in range(b)])
        self.pool = self.pool.astype(np.int32)
        self.size = np.full(b, P, dtype=np.intp)
        self.Y = (rng.random((n, M)) < 3.4 / M).astype(np.uint8)
        self.taus = np.geomspace(0.01, 10.0, 16)
        self.out = np.empty((self.taus.size, b, M))
        self.old = _vote._set_simd_level(simd)

    def teardown(self, n_threads, simd):
        _vote._set_simd_level(self.old)

    def time_pool_vote(self, n_threads, simd):
        _vote.pool_vote(
            self.d,
            self.W,
            self.pool,
            self.size,
            self.Y,
            self.taus,
            False,
            self.out,
            n_threads,
        )

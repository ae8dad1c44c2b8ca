"""asv benchmarks: the K3 LDML gradient kernel against its numpy reference."""

import numpy as np

from mtlm import _reference
from mtlm_fast import _ldml


class LDMLGrad:
    # Corel5K scale: ~210k stored pairs, ~920k label pairs over 242 labels.
    params = ([100_000, 1_000_000], [10], [1, 2], ["kernel", "reference"])
    param_names = ["n_label_pairs", "n_base", "n_threads", "impl"]

    def setup(self, nnz, F, n_threads, impl):
        if impl == "reference" and n_threads != 1:
            raise NotImplementedError  # the reference is single-threaded
        rng = np.random.default_rng(0)
        M, P = 250, max(nnz // 4, 1)
        self.d = rng.random((P, F), dtype=np.float32)
        counts = rng.multinomial(nnz, rng.dirichlet(np.ones(M)))
        self.ptr = np.zeros(M + 1, dtype=np.int32)
        np.cumsum(counts, out=self.ptr[1:])
        self.pair = np.concatenate(
            [np.sort(rng.integers(0, P, c)) for c in counts]
        ).astype(np.int32)
        self.sign = rng.choice(np.array([-1, 1], dtype=np.int8), nnz)
        self.W = rng.random((M, F)) * 0.2
        self.bias = rng.random(M)
        self.scale = np.ones(M)
        self.grad = np.empty((M, F + 1))
        self.loss = np.empty(M)
        self.gs = np.empty(F)

    def time_ldml_grad(self, nnz, F, n_threads, impl):
        if impl == "kernel":
            _ldml.ldml_grad(
                self.d,
                self.ptr,
                self.pair,
                self.sign,
                self.W,
                self.bias,
                self.scale,
                self.grad,
                self.loss,
                self.gs,
                n_threads,
            )
        else:
            _reference.ldml_grad(
                self.d, self.ptr, self.pair, self.sign, self.W, self.bias, self.scale
            )

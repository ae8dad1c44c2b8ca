"""Shared helpers of the asv suite: synthetic data built in ``setup``."""

import numpy as np


def histograms(n, dims, dtype=np.float32, seed=0):
    """Feature blocks of non-negative rows that sum to 1, like colour histograms."""
    rng = np.random.default_rng(seed)
    blocks = {}
    for i, d in enumerate(dims):
        x = rng.random((n, d)).astype(dtype)
        blocks[f"f{i}"] = x / x.sum(axis=1, keepdims=True)
    return blocks

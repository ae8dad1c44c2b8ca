"""Neighbourhood selection at NUS-WIDE shape, and the extrapolation to full size.

Synthetic data shaped like NUS-WIDE's six low-level features (64-d colour
histogram, 144-d colour correlogram, 73-d edge-direction histogram, 128-d
wavelet texture, 225-d block-wise colour moments, 500-d SIFT bag of words;
1,134 dims in all), 81 labels with about 2 labels per image. For each n it
times the exhaustive training neighbourhood selection (every training image
against every training image, k nearest of every label group) and the test
pool + vote (n/1.5 test images against n training images), fits time = a n^2,
and extrapolates to NUS-WIDE's 161,789 training and 107,859 test images, beside
the paper's 24 h + 18 h (footnote 3).

Run: ``python benchmarks/scale_nuswide.py [--sizes 5000,10000,20000]``.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

BLOCKS = {
    "color_hist64": (64, "l1"),
    "correlogram144": (144, "l1"),
    "edge_hist73": (73, "l1"),
    "wavelet128": (128, "l2"),
    "moments225": (225, "l2"),
    "bow500": (500, "chi2"),
}
N_TRAIN, N_TEST = 161_789, 107_859
PAPER_HOURS = (24.0, 18.0)


def synthetic(n, n_labels=81, seed=0):
    """Histogram-like non-negative blocks and ~2 labels per image (Zipf-like)."""
    rng = np.random.default_rng(seed)
    X = {}
    for name, (d, metric) in BLOCKS.items():
        x = rng.gamma(0.3, size=(n, d)).astype(np.float32)
        if metric != "l2":
            x /= x.sum(axis=1, keepdims=True) + 1e-12
        X[name] = x
    freq = 1.0 / np.arange(1, n_labels + 1) ** 0.8
    freq *= 2.0 / freq.sum()
    Y = (rng.random((n, n_labels)) < freq).astype(np.uint8)
    return X, Y


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(n, k, n_jobs):
    from mtlm import BaseDistances
    from mtlm._neighbourhoods import LabelGroups, group_neighbours, pool_scores
    from mtlm_fast import effective_n_threads

    X, Y = synthetic(n)
    Xt, _ = synthetic(int(n / 1.5), seed=1)
    bd = BaseDistances(metrics={f: m for f, (_, m) in BLOCKS.items()}).fit(X)
    P, Pt = bd.check(X), bd.check(Xt, "Xt")
    groups = LabelGroups.from_labels(Y)
    W = np.full((1, bd.n_base_), 1.0 / bd.n_base_)
    nt = effective_n_threads(n_jobs)
    t0 = time.perf_counter()
    group_neighbours(bd, P, P, W, groups, k, exclude=np.arange(n), n_threads=nt)
    t1 = time.perf_counter()
    pool_scores(bd, Pt, P, W, W, groups, Y, k, [1.0], n_threads=nt)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, Pt[0].shape[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5000,10000,20000")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--n-jobs", type=int, default=-1)
    args = parser.parse_args(argv)
    dims = sum(d for d, _ in BLOCKS.values())
    sizes = [int(s) for s in args.sizes.split(",")]
    print(
        f"NUS-WIDE-shaped synthetic data: {len(BLOCKS)} blocks, {dims} dims, 81 labels"
    )
    print(
        f"{'n train':>8}{'n test':>8}{'train sel s':>13}{'test pool+vote s':>18}"
        f"{'G pair-dims/s':>15}{'peak RSS MB':>13}"
    )
    a_train, a_test = [], []
    for n in sizes:
        tr, te, nt = measure(n, args.k, args.n_jobs)
        rate = (n * n + nt * n) * dims / (tr + te) / 1e9
        print(f"{n:>8}{nt:>8}{tr:>13.2f}{te:>18.2f}{rate:>15.2f}{peak_rss_mb():>13.0f}")
        a_train.append(tr / (n * n))
        a_test.append(te / (nt * n))
    # Least-squares fit of t = a n^2 on the measured sizes (weights the largest).
    n2 = np.array([n * n for n in sizes], dtype=float)
    t_tr = np.array(a_train) * n2
    a_tr = float((t_tr * n2).sum() / (n2 * n2).sum())
    nt2 = np.array([n * int(n / 1.5) for n in sizes], dtype=float)
    t_te = np.array(a_test) * nt2
    a_te = float((t_te * nt2).sum() / (nt2 * nt2).sum())
    h_train = a_tr * N_TRAIN**2 / 3600
    h_test = a_te * N_TRAIN * N_TEST / 3600
    print(
        f"\nfit t = a n^2: a_train = {a_tr:.3e} s, a_test = {a_te:.3e} s "
        f"(per query x training image)"
    )
    print(
        f"extrapolated to NUS-WIDE ({N_TRAIN} train, {N_TEST} test): "
        f"train {h_train:.2f} h + test {h_test:.2f} h = {h_train + h_test:.2f} h "
        f"on this machine; the paper: {PAPER_HOURS[0]:.0f} h + {PAPER_HOURS[1]:.0f} h"
    )


if __name__ == "__main__":
    main()

"""How much of a test-split F1 difference is the split's noise?

Two views of the one Corel5K test split, for methods compared with the first
one (paired, as the methods see the same images):

* ``--bootstrap B``: fit on the whole training split once, then resample the
  499 test images B times; the 95 % interval and P(diff > 0) of each method's
  F1 minus the first method's.
* ``--subsamples S``: fit on S random 90 % parts of the training split (seeds
  100, 101, ...) and score the whole test split; mean difference, its
  standard error and the parts won.

Nothing here chooses a parameter: it says how far a single test figure can
be trusted.  Usage::

    python benchmarks/split_noise.py [--methods jec,mtlm-ldml]
        [--bootstrap 1000] [--subsamples 6]
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from mtlm import MTLMAnnotator, load_dataset
from mtlm.metrics import annotation_scores


def _fit(method, data, rows=None):
    X, Y = data.X_train, data.Y_train
    if rows is not None:
        X, Y = {f: v[rows] for f, v in X.items()}, Y[rows]
    est = MTLMAnnotator(method, metrics=data.metrics, random_state=0)
    return est.fit(X, Y).predict(data.X_test)


def bootstrap(methods, data, n_boot, seed=0):
    preds = {m: _fit(m, data) for m in methods}
    Y = data.Y_test
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(Y), len(Y)) for _ in range(n_boot)]
    f1 = {
        m: np.array([annotation_scores(Y[i], preds[m][i])["F1"] for i in draws])
        for m in methods
    }
    full = {m: annotation_scores(Y, preds[m])["F1"] for m in methods}
    print(f"\npaired bootstrap over the test images ({n_boot} resamples)")
    print(f"{'method':12s} {'F1':>6s} {'diff':>7s}   95 % interval    P(diff>0)")
    for m in methods:
        d = f1[m] - f1[methods[0]]
        lo, hi = np.quantile(d, [0.025, 0.975])
        print(
            f"{m:12s} {full[m]:.4f} {full[m] - full[methods[0]]:+.4f} "
            f"[{lo:+.4f}, {hi:+.4f}] {(d > 0).mean():.2f}"
        )


def subsamples(methods, data, n_sub, seed=100):
    n = data.Y_train.shape[0]
    f1 = {m: [] for m in methods}
    for s in range(n_sub):
        rows = np.sort(np.random.default_rng(seed + s).permutation(n)[: n * 9 // 10])
        for m in methods:
            f1[m].append(annotation_scores(data.Y_test, _fit(m, data, rows))["F1"])
    print(f"\ntest F1 of fits on {n_sub} random 90 % parts of the training split")
    head = f"{'method':12s} {'F1':>6s} {'min':>6s} {'max':>6s} {'diff':>7s} {'se':>6s}"
    print(head + " won")
    base = np.array(f1[methods[0]])
    for m in methods:
        v = np.array(f1[m])
        d = v - base
        se = d.std(ddof=1) / np.sqrt(d.size) if d.size > 1 else 0.0
        print(
            f"{m:12s} {v.mean():.4f} {v.min():.4f} {v.max():.4f} {d.mean():+.4f} "
            f"{se:.4f} {int((d > 0).sum())}/{d.size}"
        )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="jec,global-ldml,mtlm-ldml,mtlm-lmnn")
    ap.add_argument("--bootstrap", type=int, default=1000, help="0 to skip")
    ap.add_argument("--subsamples", type=int, default=6, help="0 to skip")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)
    methods = list(dict.fromkeys(args.methods.split(",")))
    data = load_dataset("corel5k")
    if args.bootstrap:
        bootstrap(methods, data, args.bootstrap)
    if args.subsamples:
        subsamples(methods, data, args.subsamples)


if __name__ == "__main__":
    main()

"""Repeated hold-out comparison of methods on the Corel5K TRAINING split.

One hold-out split moves F1 by about .015 between splits, as much as the
differences between methods, so a single split cannot say which method is
better.  This script draws ``--splits`` random hold-outs of the training
images (never the test split), fits every method (and every point of its
``--grid``) on the rest, scores F1 at top-5 on the hold-out, and prints the
mean, the standard deviation over splits and the paired difference to the
first row (mean, standard error, splits won).  The splits are the same for
every method, so the paired differences are far less noisy than the means.

The package defaults were chosen on the default splits (``--seed 100``), so
differences there are biased upwards by that choice.  Confirm a choice on
splits it was not made on (another ``--seed``), as the README's tables do.

It is :meth:`mtlm.MTLMAnnotator.tune` with ``refit=False`` once per split:
base distances, constraints and learned metrics are shared between grid
points as in a search.

Usage::

    python benchmarks/holdout_cv.py [--splits 8] [--methods jec,mtlm-ldml]
        [--grid '{"vote_scale": ["none", "label"]}'] [--set gamma_label=30]
        [--json FILE]

A grid applies to every method that has its parameters (for JEC and the
global methods ``vote_scale`` has no effect, for LDML ``mu`` none, ...).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from mtlm import MTLMAnnotator, load_dataset

METHODS = "jec,global-ldml,local-ldml,mtlm-ldml,global-lmnn,local-lmnn,mtlm-lmnn"


def _value(text):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def run(methods, grid, fixed, n_splits, holdout, seed, n_jobs):
    """``{(method, point as JSON): [(F1, N+) per split]}`` in visiting order."""
    data = load_dataset("corel5k")
    X, Y = data.X_train, data.Y_train
    results = {}
    for method in methods:
        t0 = time.perf_counter()
        for s in range(n_splits):
            params = {"metrics": data.metrics, "random_state": 0, **fixed}
            est = MTLMAnnotator(method, n_jobs=n_jobs, **params)
            est.tune(
                X,
                Y,
                grid or {"k": [est.k]},
                holdout=holdout,
                random_state=seed + s,
                refit=False,
            )
            r = est.tune_results_
            for i, point in enumerate(r["params"]):
                key = (method, json.dumps(point, sort_keys=True))
                results.setdefault(key, []).append((r["f1"][i], r["n_plus"][i]))
        print(f"# {method}: {time.perf_counter() - t0:.0f} s", flush=True)
    return results


def report(results):
    keys = list(results)
    base = np.array([f for f, _ in results[keys[0]]])
    print(f"\nbaseline for the differences: {keys[0][0]} {keys[0][1]}")
    head = f"{'method':12s} {'point':44s} {'F1':>6s} {'sd':>6s} {'N+':>6s}"
    print(head + f" {'diff':>7s} {'se':>6s} won")
    for method, point in keys:
        v = np.array(results[(method, point)])
        f1 = v[:, 0]
        d = f1 - base
        se = d.std(ddof=1) / np.sqrt(d.size) if d.size > 1 else 0.0
        print(
            f"{method:12s} {point:44s} {f1.mean():.4f} {f1.std(ddof=1):.4f} "
            f"{v[:, 1].mean():6.1f} {d.mean():+.4f} {se:.4f} "
            f"{int((d > 0).sum())}/{d.size}"
        )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default=METHODS)
    ap.add_argument("--splits", type=int, default=8)
    ap.add_argument("--holdout", type=int, default=450, help="images held out")
    ap.add_argument("--seed", type=int, default=100, help="seed of the first split")
    ap.add_argument("--grid", type=json.loads, default=None, help="JSON dict")
    ap.add_argument("--set", action="append", default=[], help="NAME=VALUE")
    ap.add_argument("--n-jobs", type=int, default=None)
    ap.add_argument("--json", help="write the per-split F1 here")
    args = ap.parse_args(argv)
    fixed = dict(kv.split("=", 1) for kv in args.set)
    fixed = {k: _value(v) for k, v in fixed.items()}
    warnings.simplefilter("ignore", ConvergenceWarning)
    methods = list(dict.fromkeys(args.methods.split(",")))
    results = run(
        methods, args.grid, fixed, args.splits, args.holdout, args.seed, args.n_jobs
    )
    report(results)
    if args.json:
        with open(args.json, "w") as fh:
            rows = [
                {"method": m, "point": json.loads(p), "f1": [f for f, _ in v]}
                for (m, p), v in results.items()
            ]
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()

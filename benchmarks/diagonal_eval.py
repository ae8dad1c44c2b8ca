"""Methods side by side on a one-block dataset with a diagonal metric.

A MULAN ARFF dataset (scene, Corel5K-MULAN) has one feature block, so a
block metric would have a single base distance and nothing to weigh.  Here
the features are given as one array, which makes every dimension its own base
distance (squared difference, ALGORITHM.md section 1), and each method is fit
on the training split and scored once on the test split at the package
defaults (chosen on Corel5K; nothing is tuned here).

Usage::

    python benchmarks/diagonal_eval.py PATH/scene-train.arff --n-labels 1
        [--methods jec,mtlm-lmnn] [--n-jobs N]
"""

from __future__ import annotations

import argparse
import time
import warnings

from sklearn.exceptions import ConvergenceWarning

from mtlm import METHODS, MTLMAnnotator, load_dataset
from mtlm.metrics import annotation_scores, top_k_annotation


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", help="an ARFF file (its -train/-test pair is read)")
    ap.add_argument("--n-labels", type=int, default=1, help="labels per image")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--n-jobs", type=int, default=None)
    args = ap.parse_args(argv)
    data = load_dataset(args.dataset)
    (block,) = data.feature_names
    X, Xt = data.X_train[block], data.X_test[block]
    print(
        f"{data.name}: {X.shape[0]} train / {Xt.shape[0]} test images, "
        f"{X.shape[1]} dimensions, {data.n_labels} labels, top {args.n_labels}"
    )
    print(
        f"{'method':12s} {'P':>6s} {'R':>6s} {'F1':>6s} {'N+':>4s} {'MAP':>6s}", end=""
    )
    print(f" {'F-ex':>6s} {'fit s':>6s} {'iter':>5s}")
    for method in args.methods.split(","):
        est = MTLMAnnotator(
            method, n_labels=args.n_labels, n_jobs=args.n_jobs, random_state=0
        )
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            est.fit(X, data.Y_train)
        fit_s = time.perf_counter() - t0
        capped = any(issubclass(w.category, ConvergenceWarning) for w in caught)
        scores = est.decision_function(Xt)
        r = annotation_scores(
            data.Y_test, top_k_annotation(scores, args.n_labels), scores
        )
        print(
            f"{method:12s} {r['P']:6.3f} {r['R']:6.3f} {r['F1']:6.3f} {r['N+']:4d} "
            f"{r['MAP']:6.3f} {r['F-ex']:6.3f} {fit_s:6.1f} {est.n_iter_:5d}"
            + (" (iteration cap)" if capped else ""),
            flush=True,
        )


if __name__ == "__main__":
    main()

"""Side-by-side comparison, in one process and on the same data.

1. Base-distance kernels (K1) against scipy ``cdist`` and the numpy reference.
2. Gradient kernels (K3 LDML pair sums, K4 LMNN set differencing) against
   their plain-numpy twins, where those kernels are built.
3. Annotators on the embedded Corel5K: ours against scikit-learn's
   ``KNeighborsClassifier`` (multi-label) and, where they run,
   scikit-multilearn's ``MLkNN`` and metric-learn's ``LMNN`` (+ k-NN).
   Failures of the peers are reported as found, with the error; they are not
   patched.

Run: ``python benchmarks/compare.py [--methods jec,mtlm-ldml] [--quick]``.
The machine is shared and noisy: quote the ratios, which are measured side by
side in the same run.
"""

from __future__ import annotations

import argparse
import time
import traceback

import numpy as np
from scipy.spatial.distance import cdist


def _best_of(fn, repeat=3):
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def kernel_table(nq, npool, dims, repeat):
    from mtlm import BaseDistances
    from mtlm._reference_core import base_distance

    rng = np.random.default_rng(0)
    rows = []
    for d in dims:
        Xq = rng.random((nq, d), dtype=np.float32)
        Xp = rng.random((npool, d), dtype=np.float32)
        work = nq * npool * d / 1e9
        peers = {
            "l1": ("cdist cityblock", lambda a, b: cdist(a, b, "cityblock")),
            "sqeuclidean": (
                "cdist sqeuclidean",
                lambda a, b: cdist(a, b, "sqeuclidean"),
            ),
            "chi2": ("numpy reference", lambda a, b: base_distance(a[:100], b, "chi2")),
        }
        for metric, (theirs_name, theirs) in peers.items():
            bd = BaseDistances(metrics=metric, normalize="none").fit({"x": Xp})
            qa, pa = {"x": Xq}, {"x": Xp}
            ours = _best_of(lambda: bd.pairwise(qa, pa, n_jobs=-1), repeat)  # noqa: B023
            t_theirs = _best_of(lambda: theirs(Xq, Xp), 1)  # noqa: B023
            w_theirs = work * (100 / nq if metric == "chi2" else 1.0)
            rows.append(
                (f"K1 {metric} d={d}", work / ours, theirs_name, w_theirs / t_theirs)
            )
    return rows


def gradient_table(repeat=3):
    """K3 and K4 per iteration against their plain-numpy twins (Corel5K-sized)."""
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from benchmarks.bench_ldml import LDMLGrad
    from benchmarks.bench_lmnn import LMNNIteration

    from mtlm import _reference, _reference_lmnn

    rows = []
    ldml = LDMLGrad()
    ldml.setup(1_000_000, 10, 2, "kernel")
    ours = _best_of(lambda: ldml.time_ldml_grad(1_000_000, 10, 2, "kernel"), repeat)
    ref = _best_of(
        lambda: _reference.ldml_grad(
            ldml.d, ldml.ptr, ldml.pair, ldml.sign, ldml.W, ldml.bias, ldml.scale
        ),
        1,
    )
    rows.append(
        ("K3 LDML grad, 1M label pairs", 1.0 / ours, "numpy reference", 1.0 / ref)
    )

    lm = LMNNIteration()
    lm.setup(2)
    ts = lm.ts
    W = lm._next()
    ours = _best_of(lambda: lm.state.update(lm._next(), full=False), repeat)
    full = _best_of(lambda: lm.state.update(lm._next(), full=True), repeat)
    ref = _best_of(
        lambda: _reference_lmnn.active_set(
            ts.store.d, ts.lp_idx, ts.lp_ptr, ts.t_ptr, ts.t_a, ts.t_b, W, 0.05
        ),
        1,
    )
    n_trip = ts.t_a.size // 1000
    rows.append(
        (
            f"K4 LMNN incremental, {n_trip}k trip",
            1.0 / ours,
            "numpy reference",
            1.0 / ref,
        )
    )
    rows.append(
        (
            f"K4 LMNN full check, {n_trip}k trip",
            1.0 / full,
            "numpy reference",
            1.0 / ref,
        )
    )
    return rows


def _knn_features(data):
    from mtlm import BaseDistances

    bd = BaseDistances(metrics="l1").fit(data.X_train)

    # Scale each block by its L1 normaliser so that the concatenated L1
    # distance is the mean-normalised JEC distance (up to the factor F).
    def cat(X):
        return np.hstack([X[f] * s for f, s in zip(bd.feature_names_, bd.scales_)])

    return cat(data.X_train), cat(data.X_test)


def _scores_from_proba(proba):
    return np.column_stack(
        [p[:, -1] if p.shape[1] > 1 else np.zeros(len(p)) for p in proba]
    )


def annotator_table(data, methods, n_jobs):
    from sklearn.neighbors import KNeighborsClassifier

    from mtlm import MTLMAnnotator
    from mtlm.metrics import annotation_scores, top_k_annotation

    results = []

    def record(name, fit, predict_scores):
        try:
            t0 = time.perf_counter()
            model = fit()
            t1 = time.perf_counter()
            scores = np.asarray(predict_scores(model), dtype=float)
            t2 = time.perf_counter()
            res = annotation_scores(data.Y_test, top_k_annotation(scores, 5), scores)
            results.append((name, res, t1 - t0, t2 - t1, None))
        except Exception as exc:  # a peer that does not run is reported, not fixed
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            results.append((name, None, np.nan, np.nan, last))

    for method in methods:
        record(
            f"mtlm {method}",
            lambda m=method: MTLMAnnotator(
                m, metrics=data.metrics, n_jobs=n_jobs, random_state=0
            ).fit(data.X_train, data.Y_train),
            lambda est: est.decision_function(data.X_test),
        )

    Xtr, Xte = _knn_features(data)
    Ytr = data.Y_train.astype(int)
    record(
        "sklearn KNeighborsClassifier (k=5, L1)",
        lambda: KNeighborsClassifier(5, metric="manhattan", n_jobs=n_jobs).fit(
            Xtr, Ytr
        ),
        lambda est: _scores_from_proba(est.predict_proba(Xte)),
    )
    record(
        "sklearn KNeighborsClassifier (k=5, L1, distance-weighted)",
        lambda: KNeighborsClassifier(
            5, metric="manhattan", weights="distance", n_jobs=n_jobs
        ).fit(Xtr, Ytr),
        lambda est: _scores_from_proba(est.predict_proba(Xte)),
    )

    def mlknn():
        from skmultilearn.adapt import MLkNN

        return MLkNN(k=10).fit(Xtr, Ytr)

    record(
        "scikit-multilearn MLkNN (k=10)",
        mlknn,
        lambda est: est.predict_proba(Xte).toarray(),
    )

    def lmnn_knn():
        from metric_learn import LMNN

        # metric-learn's LMNN is single-label: learn on each image's most
        # frequent label, then run multi-label k-NN in the learned space.
        y1 = np.argmax(Ytr * Ytr.sum(axis=0), axis=1)
        lmnn = LMNN(n_neighbors=3, max_iter=50, random_state=0).fit(Xtr, y1)
        return lmnn, KNeighborsClassifier(5).fit(lmnn.transform(Xtr), Ytr)

    record(
        "metric-learn LMNN + k-NN (k=5)",
        lmnn_knn,
        lambda est: _scores_from_proba(est[1].predict_proba(est[0].transform(Xte))),
    )
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--methods", default="jec", help="our methods to compare (default: jec)"
    )
    parser.add_argument("--quick", action="store_true", help="smaller kernel sizes")
    parser.add_argument("--n-jobs", type=int, default=-1)
    args = parser.parse_args(argv)

    import mtlm_fast
    from mtlm import load_dataset

    print(
        f"OpenMP: {mtlm_fast.openmp_enabled()}, threads: "
        f"{mtlm_fast.effective_n_threads(args.n_jobs)}"
    )
    nq, npool = (200, 2000) if args.quick else (1000, 4500)
    print(
        f"\n== Kernels (float32, {nq} x {npool} rows, all threads; "
        "G pair-dims/s, higher is better)"
    )
    print(f"{'kernel':<34}{'ours':>9}  {'theirs':<22}{'theirs':>9}{'ratio':>9}")
    rows = kernel_table(nq, npool, [48, 192, 1024], 2 if args.quick else 3)
    for name, ours, tname, theirs in rows:
        print(f"{name:<34}{ours:>9.2f}  {tname:<22}{theirs:>9.2f}{ours / theirs:>9.1f}")
    print("\n== Gradient kernels (iterations per second, 2 threads; higher is better)")
    for name, ours, tname, theirs in gradient_table():
        print(f"{name:<34}{ours:>9.2f}  {tname:<22}{theirs:>9.2f}{ours / theirs:>9.1f}")

    data = load_dataset("corel5k")
    methods = [m for m in args.methods.split(",") if m]
    print(
        "\n== Annotators on the embedded Corel5K (4500/499 images, 260 labels, "
        "top-5 labels per image)"
    )
    print(
        f"{'annotator':<58}{'P':>6}{'R':>6}{'F1':>6}{'N+':>5}{'MAP':>6}"
        f"{'fit s':>8}{'pred s':>8}"
    )
    results = annotator_table(data, methods, args.n_jobs)
    ours_t = {r[0]: r[2] + r[3] for r in results if r[0].startswith("mtlm")}
    for name, res, tf, tp, err in results:
        if res is None:
            print(f"{name:<58}  failed: {err}")
            continue
        print(
            f"{name:<58}{res['P']:>6.3f}{res['R']:>6.3f}{res['F1']:>6.3f}"
            f"{res['N+']:>5d}{res['MAP']:>6.3f}{tf:>8.2f}{tp:>8.2f}"
        )
    if ours_t:
        base = min(ours_t.values())
        print("\nTime ratios (fastest of ours, fit+predict) / (theirs):")
        for name, res, tf, tp, _ in results:
            if res is not None and not name.startswith("mtlm"):
                print(f"  {name}: {base / (tf + tp):.2f}")


if __name__ == "__main__":
    main()

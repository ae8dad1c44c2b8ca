"""Throughput of the K1 base-distance kernel against scipy/numpy, in one run.

Standalone script (not an asv benchmark): on a shared machine only numbers taken
side by side in the same process mean anything, so every configuration times
all its contenders in interleaved rounds and keeps each one's best round.

    python benchmarks/kernel_speed.py                      # full table
    python benchmarks/kernel_speed.py --quick              # smaller problems
    python benchmarks/kernel_speed.py --baseline old.so    # add an older build
    python benchmarks/kernel_speed.py --portable           # add the non-AVX2 path

Rates are in G pair-dims/s: (query rows x reference rows x dims) / seconds / 1e9.
``ref`` is scipy's ``cdist`` (``cityblock``, ``sqeuclidean``) or, for chi-square,
a chunked numpy expression; the slow references run on a subset of the query rows
(the rate is per pair-dim, so this does not favour either side).
``--baseline`` loads another build of ``mtlm_fast._pairwise`` (e.g. the one on
``main``) from a shared-library path and times it too; ``--portable`` also times
the kernels the run-time dispatch would use on a CPU without AVX2+FMA.
"""

from __future__ import annotations

import argparse
import functools
import importlib.machinery
import importlib.util
import platform
import time

import numpy as np
from scipy.spatial.distance import cdist

from mtlm_fast import _pairwise

METRICS = {
    "l1": _pairwise.L1,
    "chi2": _pairwise.CHI2,
    "sqeuclidean": _pairwise.SQEUCLIDEAN,
}
# Query rows x reference rows per d (a few 1e8 pair-dims for the fast kernel).
SHAPES = {48: (4000, 4000), 192: (2000, 2000), 1024: (800, 800)}
QUICK = {48: (1000, 1000), 192: (600, 600), 1024: (200, 200)}


def chi2_numpy(X, Z):
    """Chi-square distances with numpy (float64), a block of query rows at a time."""
    out = np.empty((X.shape[0], Z.shape[0]))
    rows = max(1, 4_000_000 // (Z.shape[0] * Z.shape[1]))  # ~32 MB temporaries
    Z = Z.astype(np.float64)
    for i in range(0, X.shape[0], rows):
        x = X[i : i + rows, None, :].astype(np.float64)
        s = x + Z
        t = x - Z
        t *= t
        np.divide(t, s, out=t, where=s > 0)  # s == 0 means t == 0 already (0/0 = 0)
        out[i : i + rows] = t.sum(-1)
    return out


def reference(metric, X, Z):
    if metric == "l1":
        return cdist(X, Z, "cityblock")
    if metric == "sqeuclidean":
        return cdist(X, Z, "sqeuclidean")
    return chi2_numpy(X, Z)


def load_baseline(path):
    loader = importlib.machinery.ExtensionFileLoader("_pairwise", path)
    spec = importlib.util.spec_from_file_location("_pairwise", path, loader=loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def portable_run(kernel, n_threads):
    """Run kernel with the portable SIMD level, then restore the default one."""
    old = _pairwise._set_simd_level("base")
    try:
        kernel(n_threads)
    finally:
        _pairwise._set_simd_level(old)


def best_times(contenders, rounds):
    """Run every contender once per round, interleaved; best time of each."""
    best = {name: np.inf for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller problems")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", help="path to another _pairwise*.so to time too")
    parser.add_argument(
        "--portable", action="store_true", help="also time the non-AVX2 SIMD path"
    )
    parser.add_argument("--metrics", default=",".join(METRICS))
    parser.add_argument("--dims", default="48,192,1024")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args(argv)

    base = load_baseline(args.baseline) if args.baseline else None
    shapes = QUICK if args.quick else SHAPES
    threads = [int(t) for t in args.threads.split(",")]
    simd = getattr(_pairwise, "simd_level", lambda: "n/a")()
    print(
        f"# {platform.processor() or platform.machine()}, numpy {np.__version__}, "
        f"kernel SIMD path: {simd}, rounds: {args.rounds}"
    )
    print(
        "# rates in G pair-dims/s; ref = scipy cdist (l1: cityblock, "
        "sqeuclidean) or chunked numpy (chi2)"
    )
    portable = args.portable and "base" in getattr(_pairwise, "simd_levels", list)()
    cols = ["metric", "dtype", "d", "thr", "ours", "ref", "ours/ref"]
    if base is not None:
        cols += ["before", "ours/before"]
    if portable:
        cols += ["portable"]
    cols += ["2thr/1thr"]
    print(" | ".join(f"{c:>11}" for c in cols))

    rng = np.random.default_rng(0)
    for metric in args.metrics.split(","):
        code = METRICS[metric]
        for dtype in [np.dtype(t) for t in args.dtypes.split(",")]:
            for d in [int(x) for x in args.dims.split(",")]:
                nq, nz = shapes[d]
                X = rng.random((nq, d)).astype(dtype)
                Z = rng.random((nz, d)).astype(dtype)
                out = np.zeros((nq, nz, 1), dtype=np.float32)
                n_ref = max(8, nq // 16)
                Xr = X[:n_ref].copy()
                work, work_ref = nq * nz * d / 1e9, n_ref * nz * d / 1e9
                kernel = functools.partial(
                    _pairwise.pairwise_into, X, Z, out, 0, code, 1.0
                )
                contenders = {"ref": functools.partial(reference, metric, Xr, Z)}
                for t in threads:
                    contenders[f"ours{t}"] = functools.partial(kernel, t)
                    if base is not None:
                        contenders[f"base{t}"] = functools.partial(
                            base.pairwise_into, X, Z, out, 0, code, 1.0, t
                        )
                    if portable:
                        contenders[f"port{t}"] = functools.partial(
                            portable_run, kernel, t
                        )
                best = best_times(contenders, args.rounds)
                ref = work_ref / best["ref"]
                for t in threads:
                    ours = work / best[f"ours{t}"]
                    row = [
                        metric,
                        dtype.name,
                        d,
                        t,
                        f"{ours:.2f}",
                        f"{ref:.2f}",
                        f"{ours / ref:.1f}x",
                    ]
                    if base is not None:
                        before = work / best[f"base{t}"]
                        row += [f"{before:.2f}", f"{ours / before:.1f}x"]
                    if portable:
                        row += [f"{work / best[f'port{t}']:.2f}"]
                    speedup = best[f"ours{threads[0]}"] / best[f"ours{t}"]
                    row += [f"{speedup:.2f}"]
                    print(" | ".join(f"{c:>11}" for c in row), flush=True)


if __name__ == "__main__":
    main()

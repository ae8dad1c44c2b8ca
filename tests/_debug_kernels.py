"""Run every mtlm_fast kernel on edge-case inputs (used by test_debug_build.py).

Meant for a build with ``-Dcython-debug=true``: an out-of-bounds access in a
kernel then raises IndexError, which fails this script.  Not a test module
(no ``test_`` prefix): it runs in a separate interpreter.
"""

import warnings

import numpy as np

from mtlm import BaseDistances, MTLMAnnotator
from mtlm._annotator import METHODS
from mtlm._lmnn import _ActiveState, build_triplets
from mtlm._neighbourhoods import LabelGroups, group_neighbours, pool_scores
from mtlm_fast import _lmnn, _neighbours, _pairwise, _vote

warnings.simplefilter("ignore")


def bounds_checks_are_on():
    # An output one label too narrow: only the bounds check stops the write.
    # (The C kernels of _pairwise and _ldml take raw pointers, so the probe
    # goes through a kernel that indexes memoryviews in its own loop.)
    try:
        _vote.pool_vote(
            np.zeros((1, 1, 1), np.float32),
            np.ones((1, 1)),
            np.zeros((1, 1), np.int32),
            np.zeros(1, np.intp),
            np.zeros((1, 2), np.uint8),
            np.array([1.0]),
            False,
            np.empty((1, 1, 1)),
            1,
        )
    except IndexError:
        return True
    return False


def datasets(rng):
    n = 12
    X = {"a": rng.random((n, 3)), "b": rng.random((n, 2)).astype(np.float32)}
    X["a"][1] = X["a"][0]  # duplicate image
    X["b"][1] = X["b"][0]
    Y = np.zeros((n, 5), np.uint8)
    Y[0, 0] = 1  # one image
    Y[:3, 1] = 1  # exactly k images
    # label 2: none; image 11: no label
    Y[:11, 3] = 1  # (nearly) every image: few impostors
    Y[4:8, 4] = 1
    yield "mixed", X, Y
    yield "diagonal", rng.random((n, 4)), Y
    yield "identical", {"a": np.ones((n, 2))}, Y
    yield "one image", {"a": np.ones((1, 2))}, np.ones((1, 1), np.uint8)
    yield "two images", {"a": rng.random((2, 3))}, np.array([[1, 0], [0, 1]], np.uint8)


def run_annotators(rng):
    for name, X, Y in datasets(rng):
        Xt = X if not isinstance(X, dict) else X  # training rows as queries
        for method in METHODS:
            for metric in ("l1", "chi2", "l2", "sqeuclidean", "hellinger"):
                for n_jobs in (1, 2):
                    est = MTLMAnnotator(
                        method,
                        k=3,
                        k_pos=2,
                        k_neg=3,
                        max_iter=5,
                        metrics=metric,
                        n_jobs=n_jobs,
                        normalize="max" if n_jobs == 2 else "mean",
                        random_state=0,
                    )
                    est.fit(X, Y)
                    s = est.decision_function(Xt)
                    assert np.all(np.isfinite(s)), (name, method, metric)
                    est.predict(Xt)
                if method != "jec" or not isinstance(X, dict):
                    break  # every metric once with jec is enough
        print("annotators ok:", name, flush=True)


def run_kernels_directly(rng):
    X = {"a": rng.random((9, 3)), "b": rng.random((9, 2))}
    bd = BaseDistances().fit(X)
    P = bd.check(X)
    Y = (rng.random((9, 3)) < 0.5).astype(np.uint8)
    Y[:, 2] = 0
    groups = LabelGroups.from_labels(Y)
    for k in (1, 4, 20):  # k above every group size
        W = rng.random((3, 2))
        group_neighbours(bd, P, P, W, groups, k, exclude=np.arange(9), n_threads=2)
        pool_scores(
            bd,
            P,
            P,
            W,
            W[:1],
            groups,
            Y,
            k,
            [0.1, 1.0],
            exclude=np.arange(9),
            n_threads=2,
        )
    # empty query block and empty pools
    d0 = np.empty((0, 9, 2), np.float32)
    _neighbours.group_knn(
        d0,
        np.ones((1, 2)),
        groups.ptr,
        groups.idx,
        np.empty(0, np.intp),
        np.empty((0, 3, 2), np.int32),
        np.empty((0, 3, 2)),
        2,
    )
    d = bd.pairwise(X)
    out = np.empty((1, 9, 3))
    _vote.pool_vote(
        d,
        np.ones((1, 2)),
        np.zeros((9, 1), np.int32),
        np.zeros(9, np.intp),
        Y,
        np.array([1.0]),
        False,
        out,
        2,
    )
    # pairwise kernels, both dtypes, diagonal
    for dtype in (np.float32, np.float64):
        A = rng.random((5, 4)).astype(dtype)
        out = np.empty((5, 5, 2), np.float32)
        for code in (_pairwise.L1, _pairwise.CHI2, _pairwise.L2, _pairwise.SQEUCLIDEAN):
            _pairwise.pairwise_into(A, A, out, 1, code, 1.0, 2)
            _pairwise.paired_mean(
                A,
                np.arange(5, dtype=np.intp),
                np.arange(5, dtype=np.intp)[::-1].copy(),
                code,
                2,
            )
        _pairwise.diagonal_into(A, A[:2], np.empty((5, 2, 4), np.float32), 2)
    # LMNN: selection, update, difference, scratch twin, both task layouts
    for global_task in (False, True):
        ts = build_triplets(bd, P, Y, 2, 3, global_task=global_task, n_threads=2)
        F, nT = bd.n_base_, ts.n_tasks
        st = _ActiveState(ts, 0.2, 2)
        st.update(np.full((nT, F), 0.5), full=True)
        st.update(rng.random((nT, F)), full=False)
        st.recompute(rng.random((nT, F)), full=True)
        new = (rng.random(ts.n_triplets) < 0.5).astype(np.uint8)
        _lmnn.mask_difference_update(
            ts.store.d, ts.lp_idx, ts.t_ptr, ts.t_a, ts.t_b, st.mask, new, st.S, 2
        )
    print("kernels ok", flush=True)


if __name__ == "__main__":
    on = bounds_checks_are_on()
    print(f"debug build: boundscheck {'on' if on else 'off'}", flush=True)
    rng = np.random.default_rng(0)
    run_kernels_directly(rng)
    run_annotators(rng)
    print("all kernels ran", flush=True)

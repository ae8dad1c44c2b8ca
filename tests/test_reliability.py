"""Issue 6: clear errors, right answers on edge cases, determinism, guards.

Only what the per-module test files do not already cover; each section names
the issue item it shows.
"""

import os
import signal
import subprocess
import sys
import time
import tracemalloc
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning, NotFittedError

import mtlm
import mtlm._annotator
import mtlm._memory
from mtlm import BaseDistances, MTLMAnnotator
from mtlm._annotator import METHODS
from mtlm._lmnn import build_triplets
from mtlm._neighbourhoods import LabelGroups, group_neighbours
from mtlm._reference_core import group_knn as ref_group_knn
from mtlm._reference_core import pool_vote as ref_pool_vote

LEARNED = [m for m in METHODS if m != "jec"]
# Small, fast settings every learned method accepts (LMNN: k_pos/k_neg).
FAST = {"k_pos": 2, "k_neg": 4}


def _fast(method, **kw):
    params = MTLMAnnotator().get_params()
    extra = {k: v for k, v in FAST.items() if k in params}
    return MTLMAnnotator(method, **extra, **kw)


def _data(rng, n=40, nt=5, M=4):
    X = {"a": rng.random((n, 4)), "b": rng.random((n, 3)).astype(np.float32)}
    Xt = {k: rng.random((nt, v.shape[1])).astype(v.dtype) for k, v in X.items()}
    Y = (rng.random((n, M)) < 0.4).astype(np.uint8)
    Y[:, 0] = 0
    Y[:8, 0] = 1
    return X, Xt, Y


@pytest.fixture
def fitted(rng):
    X, Xt, Y = _data(rng)
    return MTLMAnnotator(k=2, tau=0.5).fit(X, Y), X, Xt, Y


# -- 1. validation through the public entry points -------------------------------------
def _nan(a):
    a = a.copy()
    a[0, 0] = np.nan
    return a


FIT_BAD_X = [
    (lambda X: {**X, "a": _nan(X["a"])}, r"X\['a'\] contains NaN"),
    (lambda X: X["a"] * np.inf, r"^X contains inf"),
    (lambda X: {**X, "a": X["a"].astype(object)}, None),  # numeric object: accepted
    (lambda X: {**X, "a": np.full(X["a"].shape, "x")}, r"X\['a'\] has dtype <U1"),
    (lambda X: X["a"] * 1j, "X is complex"),
    (lambda X: {"a": X["a"][:0], "b": X["b"][:0]}, r"0 sample\(s\)"),
    (lambda X: {**X, "a": X["a"][:, :0]}, r"X\['a'\] is empty: it has 0 feature"),
    (lambda X: {**X, "b": X["b"][:-1]}, "different numbers of rows"),
    (lambda X: {**X, "a": X["a"] * 1e200}, r"X\['a'\] has values up to .* rescale"),
    (lambda X: X["a"] * 1e20, r"X has values up to .* rescale"),
]


@pytest.mark.parametrize("make, match", FIT_BAD_X)
def test_fit_rejects_bad_features(rng, make, match):
    X, _, Y = _data(rng)
    Xbad = make(X)
    if match is None:
        MTLMAnnotator(tau=0.5).fit(Xbad, Y)
        return
    with pytest.raises(ValueError, match=match):
        MTLMAnnotator(tau=0.5).fit(Xbad, Y)


PREDICT_BAD_X = [
    (lambda X: {**X, "a": X["a"] * -np.inf}, r"X\['a'\] contains inf"),
    (lambda X: {**X, "b": np.full(X["b"].shape, "x")}, r"X\['b'\] has dtype"),
    (lambda X: {**X, "b": X["b"] * 1j}, r"X\['b'\] is complex"),
    (lambda X: {**X, "a": np.array([[{}] * 4] * 5, dtype=object)}, "non-numeric"),
    (lambda X: {k: v[:0] for k, v in X.items()}, r"0 sample\(s\)"),
    (lambda X: {**X, "b": X["b"][:2]}, r"rows: \{'a': 5, 'b': 2\}"),
    (lambda X: {**X, "c": X["a"]}, r"\['c'\] that were not seen in fit"),
    (lambda X: {"b": X["b"]}, r"missing feature block\(s\) \['a'\]"),
    (lambda X: X["a"], "must be a dict of feature blocks"),
    (lambda X: {**X, "b": X["b"][:, :2]}, r"X\['b'\] has 2 features, .* expecting 3"),
    (lambda X: {**X, "a": X["a"][:, :, None]}, "must be 2-D"),
]


@pytest.mark.parametrize("entry", ["predict", "decision_function", "score"])
@pytest.mark.parametrize("make, match", PREDICT_BAD_X)
def test_prediction_entry_points_reject_bad_features(fitted, entry, make, match):
    est, _, Xt, Y = fitted
    args = (make(Xt),) + ((Y[:5],) if entry == "score" else ())
    with pytest.raises(ValueError, match=match):
        getattr(est, entry)(*args)


def test_diagonal_mode_dimension_mismatch_and_dict(rng):
    X, Xt, Y = _data(rng)
    est = MTLMAnnotator(tau=0.5).fit(X["a"], Y)
    with pytest.raises(ValueError, match="X has 3 features, but mtlm is expecting 4"):
        est.predict(Xt["b"])
    with pytest.raises(ValueError, match=r"missing feature block\(s\) \['x'\]"):
        est.decision_function(Xt)
    with pytest.raises(ValueError, match="X has values up to"):
        est.predict(Xt["a"] * 1e19)


@pytest.mark.parametrize("metric", ["chi2", "hellinger"])
def test_negative_histograms_through_the_annotator(rng, metric):
    X, Xt, Y = _data(rng)
    with pytest.raises(ValueError, match=rf"X\['a'\] has negative values.*{metric}"):
        MTLMAnnotator(metrics={"a": metric}).fit({**X, "a": X["a"] - 0.5}, Y)
    est = MTLMAnnotator(metrics={"a": metric}, tau=0.5).fit(X, Y)
    with pytest.raises(ValueError, match=r"X\['a'\] has negative values"):
        est.predict({**Xt, "a": Xt["a"] - 0.5})
    # signed features are fine for l1 / l2
    MTLMAnnotator(metrics="l2", tau=0.5).fit({**X, "a": X["a"] - 0.5}, Y)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda Y: np.where(Y == 1, np.nan, 0.0), "y contains NaN or inf"),
        (lambda Y: Y[:, :, None], r"y must be 2-D .* shape \(40, 4, 1\)"),
        (lambda Y: Y.astype(str), "y has dtype <U"),
        (lambda Y: Y.astype(int) - 1, r"y must hold only 0 and 1; found \[-1\]"),
        (lambda Y: Y * 0.5, r"found \[0.5\]"),
        (lambda Y: Y[:, :0], "y has no label columns"),
    ],
)
def test_fit_rejects_bad_labels(rng, make, match):
    X, _, Y = _data(rng)
    with pytest.raises(ValueError, match=match):
        MTLMAnnotator().fit(X, make(Y))


def test_score_rejects_bad_labels(fitted):
    est, _, Xt, Y = fitted
    with pytest.raises(ValueError, match="y has 2 labels, expected 4"):
        est.score(Xt, Y[:5, :2])
    with pytest.raises(ValueError, match="y has 6 rows but the features have 5"):
        est.score(Xt, Y[:6])
    with pytest.raises(ValueError, match=r"found \[2\]"):
        est.score(Xt, Y[:5] * 2)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"k": 2.5}, "k must be an int, got 2.5"),
        ({"k": True}, "k must be an int, got True"),
        ({"k": -3}, "k must be >= 1"),
        ({"n_labels": 1.0}, "n_labels must be an int"),
        ({"n_labels": -1}, "n_labels must be >= 1"),
        ({"n_tune": 0}, "n_tune must be >= 1"),
        ({"tau_select": "test"}, "tau_select must be one of"),
        ({"random_state": -1}, "random_state must be None, an int"),
        ({"random_state": "a"}, "random_state must be None, an int"),
        ({"tau": float("nan")}, "tau must be finite"),
        ({"method": None}, "method must be one of"),
        ({"method": "LMNN"}, "method must be one of"),
        ({"metrics": 3}, "metrics must be None, a metric name or a dict"),
        ({"metrics": {"z": "l1"}}, r"feature block\(s\) \['z'\] that are not in X"),
        ({"metrics": {"a": "cosine"}}, r"metrics\['a'\] must be one of"),
        ({"normalize": "l2"}, "normalize must be one of"),
        ({"n_jobs": 1.5}, "n_jobs must be an int or None"),
    ],
)
def test_bad_annotator_parameters(rng, params, match):
    X, _, Y = _data(rng)
    with pytest.raises(ValueError, match=match):
        MTLMAnnotator(**params).fit(X, Y)


@pytest.mark.parametrize("method", LEARNED)
@pytest.mark.parametrize(
    "value, match",
    [
        (0, "max_iter must be >= 1"),
        (-5, "max_iter must be >= 1"),
        (2.0, "max_iter must be an int"),
    ],
)
def test_max_iter_out_of_range_for_every_learned_method(method, value, match):
    rng = np.random.default_rng(0)  # one seed: slow per case
    X, _, Y = _data(rng)
    with pytest.raises(ValueError, match=match):
        _fast(method, max_iter=value).fit(X, Y)


def test_base_distances_entry_points(rng):
    X, Xt, _ = _data(rng)
    bd = BaseDistances().fit(X)
    with pytest.raises(ValueError, match=r"Xp\['a'\] contains NaN"):
        bd.pairwise(Xt, {**X, "a": _nan(X["a"])})
    with pytest.raises(ValueError, match=r"Xp\['a'\] has 5 features"):
        bd.pairwise(Xt, {**X, "a": X["a"][:, [0, 1, 2, 3, 0]]})
    with pytest.raises(ValueError, match=r"Xq\['a'\] has values up to"):
        bd.pairwise({**Xt, "a": Xt["a"] * 1e160})
    with pytest.raises(ValueError, match="n_jobs must be an int or None"):
        bd.pairwise(Xt, n_jobs="2")
    with pytest.raises(ValueError, match="random_state must be an int"):
        BaseDistances(random_state="x", n_pairs=10).fit(X)
    with pytest.raises(ValueError, match="metrics must be None, a metric name"):
        BaseDistances(metrics=["l1"]).fit(X)


# -- 2. edge cases with right answers --------------------------------------------------
# 1-D diagonal mode: D(q, p) = (x_q - x_p)^2 exactly, so every answer is by hand.
#   image:   0    1    2    3    4
#   x:       0    1    2    3   10
#   label A: -    -    -    -    x     carried by exactly one image
#   label B: x    x    -    -    -     carried by exactly k = 2 images
#   label C: -    -    -    -    -     carried by none
#   label D: -    -    -    x    -
#   image 2 carries no label.
X1 = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])
Y1 = np.array(
    [[0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0]], np.uint8
)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_hand_computed_vote_one_test_image(n_jobs):
    est = MTLMAnnotator(k=2, tau=1.0, n_labels=2, n_jobs=n_jobs).fit(X1, Y1)
    got = est.decision_function(np.array([[0.5]]))
    # pool = A:{4} u B:{0, 1} u C:{} u D:{3}; image 2 (no label) never votes
    e = np.exp(-np.array([0.25, 0.25, 6.25, 90.25]))  # images 0, 1, 3, 4
    want = np.array([e[3], e[0] + e[1], 0.0, e[2]]) / e.sum()
    assert got.shape == (1, 4)
    assert_allclose(got, [want], rtol=1e-12)
    assert_array_equal(est.predict(np.array([[0.5]])), [[0, 1, 0, 1]])
    assert_array_equal(est.label_counts_, [1, 2, 0, 1])


def test_training_neighbours_exclude_self_keep_duplicates():
    # image 1 duplicates image 0 but carries other labels
    X = np.array([[0.0], [0.0], [1.0], [2.0], [4.0]])
    Y = np.array([[1, 0], [0, 1], [1, 0], [0, 1], [1, 1]], np.uint8)
    bd = BaseDistances().fit(X)
    P = bd.check(X)
    groups = LabelGroups.from_labels(Y)
    idx, dist = group_neighbours(
        bd, P, P, np.ones((1, 1)), groups, 2, exclude=np.arange(5)
    )
    # query 0: A = {0, 2, 4} minus itself -> 2, 4; B = {1, 3, 4} -> 1 (d = 0), 3
    assert_array_equal(idx[0], [[2, 4], [1, 3]])
    assert_array_equal(dist[0], [[1.0, 16.0], [0.0, 4.0]])
    # query 1: A -> 0 (its duplicate, d = 0), 2; B = {3, 4}
    assert_array_equal(idx[1], [[0, 2], [3, 4]])
    assert not np.any(idx == np.arange(5)[:, None, None])
    # without exclusion the query is its own neighbour at 0, before its duplicate
    idx_all, _ = group_neighbours(bd, P, P, np.ones((1, 1)), groups, 1)
    assert_array_equal(idx_all[1], [[0], [1]])
    assert_array_equal(idx_all[0], [[0], [1]])  # tie at 0: lower index


def test_duplicate_with_other_labels_is_the_first_lmnn_impostor():
    X = np.array([[0.0], [0.0], [1.0], [2.0], [3.0], [4.0]])
    Y = np.zeros((6, 2), np.uint8)
    Y[[0, 2, 3, 4], 0] = 1
    Y[[1, 5], 1] = 1
    bd = BaseDistances().fit(X)
    ts = build_triplets(bd, bd.check(X), Y, 1, 2)
    lq, lp = ts.store.q[ts.lp_idx], ts.store.p[ts.lp_idx]
    for t, (q, target, impostors) in enumerate([(0, [2], [1, 5]), (1, [5], [0, 2])]):
        a, nt, b = ts.lp_ptr[t], ts.n_target[t], ts.lp_ptr[t + 1]
        rows_t = np.flatnonzero(lq[a : a + nt] == q) + a
        rows_i = np.flatnonzero(lq[a + nt : b] == q) + a + nt
        assert_array_equal(lp[rows_t], target)
        assert_array_equal(lp[rows_i], impostors)  # the duplicate first (d = 0)
    assert not np.any(lq == lp)


def test_duplicate_of_a_training_image_at_predict_time():
    # a test image identical to training image 1: image 1 is a neighbour at d = 0
    est = MTLMAnnotator(k=1, tau=1.0).fit(X1, Y1)
    P = est.base_distances_.check(np.array([[1.0]]))
    idx, dist = group_neighbours(
        est.base_distances_, P, est._train_blocks, np.ones((1, 1)), est._groups, 1
    )
    assert idx[0, 1, 0] == 1 and dist[0, 1, 0] == 0.0


def _tied_data(rng, n=40, M=5):
    # integer features and F = 4 (weights 1/4): every D is exact in binary, so
    # equal distances are equal bit for bit whatever the summation order
    X = rng.integers(0, 3, size=(n, 4)).astype(np.float64)
    Y = (rng.random((n, M)) < 0.4).astype(np.uint8)
    Y[0] = 1
    return X, Y


def test_ties_go_to_lower_index_any_threads_and_column_order(rng):
    X, Y = _tied_data(rng)
    Xt = X[:7] + rng.integers(0, 2, size=(7, 4))
    perm = rng.permutation(4)
    results = []
    for n_jobs in (1, 2):
        for cols in (slice(None), perm):
            bd = BaseDistances().fit(X[:, cols])
            P, Pt = bd.check(X[:, cols]), bd.check(Xt[:, cols])
            W = np.full((1, 4), 1 / 4)
            idx, _ = group_neighbours(
                bd, Pt, P, W, LabelGroups.from_labels(Y), 3, n_threads=n_jobs
            )
            est = MTLMAnnotator(k=3, tau=0.3, n_jobs=n_jobs).fit(X[:, cols], Y)
            results.append((idx, est.decision_function(Xt[:, cols])))
    d = BaseDistances().fit(X).pairwise(Xt, X).astype(np.float64)
    ref_idx, ref_dist = ref_group_knn(d, np.full((1, 4), 1 / 4), Y, 3)
    assert np.sum(np.diff(ref_dist, axis=2) == 0) > 20  # plenty of exact ties
    for idx, scores in results:
        assert_array_equal(idx, ref_idx)
        assert_array_equal(scores, results[0][1])
    pools = [np.unique(r[r >= 0]) for r in ref_idx.reshape(7, -1)]
    assert_allclose(
        results[0][1],
        ref_pool_vote(d, np.full((1, 4), 1 / 4), pools, Y, 0.3),
        rtol=1e-12,
    )


@pytest.mark.parametrize("method", LEARNED)
def test_label_on_every_image_has_no_dissimilar_pair(method):
    rng = np.random.default_rng(0)  # one seed: slow per case
    # label 0 on every image (no impostor); for the global method no pair of
    # images is dissimilar at all, so there is no triplet anywhere.
    X = {"a": rng.random((30, 3)), "b": rng.random((30, 2))}
    Y = np.ones((30, 3), np.uint8)
    if method not in ("global-lmnn",):
        Y[:, 1:] = rng.random((30, 2)) < 0.5
    est = _fast(method, max_iter=50, random_state=0)
    lmnn = method.endswith("lmnn")
    with warnings.catch_warnings():
        # LDML does not stop within 50 iterations even on ordinary data, so
        # only LMNN is held to a clean stop here (see the issue 6 report).
        warnings.simplefilter("error" if lmnn else "ignore", ConvergenceWarning)
        est.fit(X, Y)
    assert np.all(np.isfinite(est.weights_shared_))
    assert np.all(np.isfinite(est.weights_label_))
    assert np.all(np.isfinite(est.objective_)) and est.objective_.size >= 1
    if hasattr(est, "n_active_"):
        assert est.n_active_[0] == 0
    if method == "global-lmnn":
        assert est.n_triplets_ == 0
    if lmnn:  # the pull and norm terms remain: a few steps, then a clean stop
        assert est.converged_ and est.n_iter_ < 50
    assert np.all(np.isfinite(est.decision_function(X)))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("diagonal", [False, True])
def test_all_images_identical_warns_and_stays_finite(method, diagonal):
    rng = np.random.default_rng(0)  # one seed: slow per case
    row = rng.random(4)
    X = np.tile(row, (20, 1))
    X = X if diagonal else {"a": X[:, :2], "b": X[:, 2:]}
    Y = (rng.random((20, 3)) < 0.5).astype(np.uint8)
    Y[:5] = 1
    est = _fast(method, max_iter=20, random_state=0)
    with pytest.warns(UserWarning, match="identical features.*nothing can be learned"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, Y)
    for a in (est.weights_shared_, est.weights_label_, est.objective_):
        assert np.all(np.isfinite(a))
    Xt = np.tile(row + 0.1, (3, 1))
    Xt = Xt if diagonal else {"a": Xt[:, :2], "b": Xt[:, 2:]}
    s = est.decision_function(Xt)
    assert np.all(np.isfinite(s))
    assert np.all(est.predict(Xt).sum(axis=1) == min(est.n_labels, 3))


def test_single_training_image_and_single_label(rng):
    est = MTLMAnnotator(tau=1.0, n_labels=1).fit(np.ones((1, 2)), np.ones((1, 1)))
    assert_array_equal(est.predict(np.zeros((1, 2))), [[1]])
    # auto tau with one image: its only neighbour would be itself, excluded
    est = MTLMAnnotator(n_labels=1).fit(np.ones((1, 2)), np.ones((1, 1)))
    assert np.isfinite(est.tau_)


@pytest.fixture(scope="module")
def corel_jec():
    out = {}
    for dtype in (np.float32, np.float64):
        ds = mtlm.load_dataset("corel5k", dtype=dtype)
        Xt = {k: v[:50] for k, v in ds.X_test.items()}  # 50 test images: speed
        est = MTLMAnnotator(tau=0.04, n_jobs=2).fit(ds.X_train, ds.Y_train)
        out[dtype] = (est, est.decision_function(Xt))
    return out


def test_float32_and_float64_same_annotations_on_corel5k(corel_jec):
    (e32, s32), (e64, s64) = corel_jec[np.float32], corel_jec[np.float64]
    assert e32._train_blocks[0].dtype == np.float32
    assert e64._train_blocks[0].dtype == np.float64
    assert_allclose(e32.base_distances_.scales_, e64.base_distances_.scales_, rtol=1e-7)
    assert_allclose(s32, s64, atol=1e-5)
    assert_array_equal(
        mtlm.metrics.top_k_annotation(s32, 5), mtlm.metrics.top_k_annotation(s64, 5)
    )


# -- 3. determinism --------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_bit_identical_for_thread_counts_and_runs(method):
    rng = np.random.default_rng(0)  # one seed: slow per case
    X, Xt, Y = _data(rng)
    fits = []
    for n_jobs in (1, 2, 2, 1):
        est = _fast(method, max_iter=15, n_jobs=n_jobs, random_state=3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, Y)
        fits.append(est)
    ref = fits[0]
    for est in fits[1:]:
        assert_array_equal(est.weights_shared_, ref.weights_shared_)
        assert_array_equal(est.weights_label_, ref.weights_label_)
        assert_array_equal(est.bias_, ref.bias_)
        assert_array_equal(est.objective_, ref.objective_)
        assert est.n_iter_ == ref.n_iter_ and est.tau_ == ref.tau_
        assert_array_equal(est.decision_function(Xt), ref.decision_function(Xt))


# -- 4. convergence reporting ----------------------------------------------------------
@pytest.mark.parametrize("method", LEARNED)
def test_max_iter_warns_and_keeps_trace(method):
    rng = np.random.default_rng(0)  # one seed: slow per case
    X, _, Y = _data(rng)
    est = _fast(method, max_iter=1, tol=0.0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "always" even under an ignore filter
        warnings.simplefilter("always", ConvergenceWarning)
        with pytest.warns(ConvergenceWarning, match="max_iter=1"):
            est.fit(X, Y)
    assert est.n_iter_ == 1
    assert est.objective_.ndim == 1 and 1 <= est.objective_.size <= 2
    assert np.all(np.isfinite(est.objective_))
    # the warning is not only for the first fit
    with pytest.warns(ConvergenceWarning):
        _fast(method, max_iter=1, tol=0.0, random_state=0).fit(X, Y)


# -- 7. memory guard -------------------------------------------------------------------
def test_huge_pairwise_raises_before_allocating():
    X = {"a": np.arange(1_000_000, dtype=np.float32)[:, None]}
    bd = BaseDistances(normalize="none").fit({"a": X["a"][:2]})
    tracemalloc.start()
    try:
        with pytest.raises(
            MemoryError,
            match=(
                r"base-distance tensor \(1000000 x 1000000 x 1 float32\) would need "
                r"3725\.29 GiB .* pass fewer query rows at a time"
            ),
        ):
            bd.pairwise(X, X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20


def test_small_available_memory_guards_every_stage(rng, monkeypatch):
    X, Xt, Y = _data(rng)
    est = MTLMAnnotator(tau=0.5).fit(X, Y)
    lmnn = MTLMAnnotator("mtlm-lmnn")
    monkeypatch.setattr(mtlm._memory, "available_memory", lambda: 1000)
    with pytest.raises(
        MemoryError,
        match=r"one block of base distances would need "
        r"0\.00 GiB .*reduce the number of training images",
    ):
        est.predict(Xt)
    with pytest.raises(MemoryError, match=r"base-distance tensor .*fewer query rows"):
        est.base_distances_.pairwise(Xt, X)
    with pytest.raises(MemoryError, match=r"(pair store|block of base).*reduce"):
        lmnn.fit(X, Y)
    monkeypatch.setattr(mtlm._memory, "available_memory", lambda: None)
    est.predict(Xt)  # unknown available memory: no guard


@pytest.mark.parametrize("method", METHODS)
def test_huge_neighbour_counts_equal_the_largest_useful_ones(rng, method):
    # k beyond the largest label group (and k_pos / k_neg beyond the images)
    # can only add padding: same fit and scores, no (n, M, 10**7) buffers.
    X, Xt, Y = _data(rng)
    n, largest = Y.shape[0], int(Y.sum(axis=0).max())
    huge = dict(k=10**7, k_pos=10**7, k_neg=10**7)
    targets = n - 1 if method.startswith("global") else largest  # any shared label
    exact = dict(k=largest, k_pos=targets, k_neg=n - 1)
    kw = dict(tau=0.5, max_iter=5, constraints="label")
    a = MTLMAnnotator(method, **kw, **huge).fit(X, Y)
    b = MTLMAnnotator(method, **kw, **exact).fit(X, Y)
    assert_array_equal(a.weights_shared_, b.weights_shared_)
    assert_array_equal(a.weights_label_, b.weights_label_)
    assert_array_equal(a.decision_function(Xt), b.decision_function(Xt))


def test_neighbour_arrays_are_capped_at_the_largest_group(rng):
    X, Xt, Y = _data(rng)
    bd = BaseDistances().fit(X)
    groups = LabelGroups.from_labels(Y)
    W = np.full((1, bd.n_base_), 0.5)
    idx, dist = group_neighbours(bd, bd.check(Xt), bd.check(X), W, groups, 10**9)
    width = int(Y.sum(axis=0).max())
    assert idx.shape == (Xt["a"].shape[0], Y.shape[1], width)
    small, _ = group_neighbours(bd, bd.check(Xt), bd.check(X), W, groups, width)
    assert_array_equal(idx, small)


def test_too_many_triplets_raise_memory_error_naming_the_knobs(rng, monkeypatch):
    X, _, Y = _data(rng)
    bd = BaseDistances().fit(X)
    P = bd.check(X)
    real = mtlm._memory.available_memory
    ts = build_triplets(bd, P, Y, 3, 39)
    assert ts.n_triplets * 32 > 100_000
    # enough for the distances and neighbour lists, not for the triplets
    monkeypatch.setattr(mtlm._memory, "available_memory", lambda: 100_000)
    with pytest.raises(MemoryError, match=r"triplets .*reduce k_pos or k_neg"):
        build_triplets(bd, P, Y, 3, 39)
    monkeypatch.setattr(mtlm._memory, "available_memory", real)


def test_huge_n_jobs_is_capped_at_the_cpus(rng):
    from mtlm_fast import effective_n_threads, openmp_enabled

    cpus = effective_n_threads(-1)
    assert effective_n_threads(10**5) == effective_n_threads(10**30) == cpus
    assert effective_n_threads(1) == 1
    assert cpus == (len(os.sched_getaffinity(0)) if openmp_enabled() else 1)
    X, Xt, Y = _data(rng)
    a = MTLMAnnotator(tau=0.5, n_jobs=10**5).fit(X, Y)  # crashed in OpenMP before
    b = MTLMAnnotator(tau=0.5, n_jobs=1).fit(X, Y)
    assert_array_equal(a.decision_function(Xt), b.decision_function(Xt))


def test_a_huge_runtime_thread_count_is_capped_at_the_cpus(rng, tmp_path):
    # n_jobs=None follows OMP_NUM_THREADS / threadpoolctl: those are capped
    # too (libgomp segfaulted when asked for 10^5 threads); in a child
    # interpreter, since the variable is read when the runtime starts
    code = (
        "import numpy as np, mtlm\n"
        "from mtlm_fast import effective_n_threads\n"
        "from threadpoolctl import threadpool_limits\n"
        "rng = np.random.default_rng(0)\n"
        "X, Y = rng.random((40, 6)), (rng.random((40, 4)) < 0.4).astype(np.uint8)\n"
        "print(effective_n_threads(None), effective_n_threads(-1))\n"
        "with threadpool_limits(100000):\n"
        "    print(effective_n_threads(None))\n"
        "    mtlm.MTLMAnnotator(tau=0.5).fit(X, Y)\n"
        "print('ok')\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "100000"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    first, second, last = out.stdout.split("\n")[:3]
    none, cpus = map(int, first.split())
    assert none == cpus and int(second) == cpus and last == "ok"


@pytest.mark.parametrize(
    "param, value, match",
    [
        ("mu", -1, "mu must be >= 0"),
        ("mu", "a", "mu must be"),
        ("label_budget", "x", "label_budget"),
        ("full_check_every", 2.5, "full_check_every"),
        ("label_sum", "x", "label_sum must be one of"),
        ("margin", np.nan, "margin"),
    ],
)
@pytest.mark.parametrize("method", ["jec", "mtlm-ldml", "mtlm-lmnn"])
def test_every_parameter_is_checked_whatever_the_method(
    rng, method, param, value, match
):
    X, _, Y = _data(rng)
    with pytest.raises(ValueError, match=match):
        MTLMAnnotator(method, **{param: value}).fit(X, Y)


def test_a_failed_refit_leaves_no_half_replaced_model(rng, monkeypatch):
    X, Xt, Y = _data(rng)
    est = MTLMAnnotator("mtlm-ldml", tau=0.5, max_iter=5).fit(X, Y)
    X2 = {"g": rng.random((30, 3))}
    Y2 = (rng.random((30, 8)) < 0.5).astype(np.uint8)

    def boom(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(mtlm._annotator, "_run_learner", boom)
    with pytest.raises(RuntimeError, match="interrupted"):
        est.fit(X2, Y2)
    # unfitted, not new training data with the old weights
    with pytest.raises(NotFittedError):
        est.decision_function(X2)
    assert not [a for a in vars(est) if a.endswith("_") or a == "_train_blocks"]
    monkeypatch.undo()
    est.fit(X2, Y2)  # and it fits again
    assert est.decision_function(X2).shape == (30, 8)


@pytest.mark.parametrize("normalize", ["none", "max"])
def test_tau_grid_follows_the_scale_of_unnormalised_distances(rng, normalize):
    # 1e4 times the features: the tau grid scales with the distances, so the
    # annotation is the same (raw votes underflowed to 0 before)
    X, Xt, Y = _data(rng, n=80, M=6)
    kw = dict(normalize=normalize, vote="raw", n_labels=3, random_state=0)
    a = MTLMAnnotator(**kw).fit(X, Y)
    big = {f: 1e4 * v for f, v in X.items()}
    b = MTLMAnnotator(**kw).fit(big, Y)
    bt = {f: 1e4 * v for f, v in Xt.items()}
    if normalize == "none":
        assert b.tau_ == pytest.approx(1e4 * a.tau_, rel=1e-5)
    assert (b.decision_function(bt).max(axis=1) > 0).all()
    assert_array_equal(b.predict(bt), a.predict(Xt))


def test_base_means_are_measured_on_the_pair_sample(rng):
    X, _, _ = _data(rng)
    X = {f: v.astype(np.float64) for f, v in X.items()}
    assert_array_equal(BaseDistances().fit(X).base_means_, [1.0, 1.0])
    bd = BaseDistances(normalize="none").fit(X)
    n = X["a"].shape[0]
    q, p = np.triu_indices(n, k=1)  # few images: every pair is in the sample
    want = [np.abs(v[q] - v[p]).sum(axis=1).mean() for v in X.values()]
    assert_allclose(bd.base_means_, want, rtol=1e-5)
    diag = BaseDistances().fit(X["a"])
    assert_allclose(diag.base_means_, ((X["a"][q] - X["a"][p]) ** 2).mean(axis=0))


def test_raw_votes_that_underflow_warn(rng):
    X, Xt, Y = _data(rng)
    est = MTLMAnnotator(vote="raw", tau=1e-6).fit(X, Y)
    with pytest.warns(RuntimeWarning, match="underflowed to 0 at tau=1e-06"):
        est.decision_function(Xt)


@pytest.mark.parametrize(
    "method, kw, match",
    [
        (
            "mtlm-lmnn",
            dict(k_pos=30, label_sum="at_most"),  # "equal" scales w_* by 2
            "no candidate triplet.*lower k_pos",
        ),
        (
            "local-lmnn",
            dict(k=30, constraints="2pknn"),
            "no candidate triplet.*lower k",
        ),
        ("mtlm-ldml", dict(k=30), "no constraint to learn from.*more than k=30"),
        ("global-ldml", dict(k=30), "no constraint to learn from"),
    ],
)
def test_a_fit_with_nothing_to_learn_warns_and_keeps_the_initial_metric(
    rng, method, kw, match
):
    X, Xt, Y = _data(rng)  # largest label: about 16 of 40 images
    with pytest.warns(UserWarning, match=match):
        est = MTLMAnnotator(method, tau=0.5, **kw).fit(X, Y)
    assert est.n_iter_ == 0
    W = est.weights_shared_[None, :] + est.weights_label_
    jec = MTLMAnnotator(tau=0.5, k=est.k).fit(X, Y)
    assert_allclose(W, jec.weights_shared_[None, :] + jec.weights_label_)
    assert_allclose(est.decision_function(Xt), jec.decision_function(Xt))


def test_warnings_point_at_the_calling_line(rng):
    X, Xt, Y = _data(rng)
    calls = {
        "fit": lambda: MTLMAnnotator("mtlm-ldml", max_iter=2).fit(X, Y),
        "tune": lambda: MTLMAnnotator("mtlm-ldml", max_iter=2).tune(X, Y, {"k": [2]}),
        "lmnn": lambda: MTLMAnnotator("global-lmnn", max_iter=2).fit(X, Y),
        "raw": lambda: MTLMAnnotator(vote="raw", tau=1e-6).fit(X, Y).predict(Xt),
    }
    for name, call in calls.items():
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            call()
        assert record, name
        # the lambda's line in this file, not a line inside mtlm
        assert {w.filename for w in record} == {__file__}, name


@pytest.mark.parametrize(
    "method, match",
    [
        ("mtlm-ldml", "none of its pairs is dissimilar"),
        ("global-ldml", "none of its pairs is dissimilar"),
        ("mtlm-lmnn", "carried by every image, so no image can be an impostor"),
        ("global-lmnn", "label 0 is carried by every image, so every two images"),
    ],
)
def test_a_label_on_every_image_gives_the_real_cause(rng, method, match):
    X = rng.random((30, 4))
    Y = np.ones((30, 2), dtype=np.uint8)
    Y[2:, 1] = 0  # two images: too few for k_pos + 1 or k + 1
    with pytest.warns(Warning, match=match) as record:
        est = MTLMAnnotator(method, vote="raw", random_state=0).fit(X, Y)
    assert not any("lower" in str(w.message) for w in record)
    if method.endswith("lmnn"):  # target pairs are still pulled, on the simplex
        assert "only the pull term" in str(record[-1].message)
        assert_allclose(est.weights_shared_.sum(), 1.0)
    else:
        assert_array_equal(est.weights_shared_, 0.0)


@pytest.mark.parametrize(
    "metric, scale",
    [("sqeuclidean", 1e20), ("l1", 1e140), ("l2", 1e38), ("chi2", 1e38)],
)
def test_unscaled_distances_beyond_float32_raise(rng, metric, scale):
    X = {"a": rng.random((30, 5))}
    Y = (rng.random((30, 3)) < 0.4).astype(np.uint8)
    kw = dict(metrics=metric, normalize="none", tau=1.0)
    with pytest.raises(ValueError, match=r"X\['a'\].*beyond float32"):
        MTLMAnnotator(**kw).fit({"a": X["a"] * scale}, Y)
    est = MTLMAnnotator(**kw).fit(X, Y)
    with pytest.raises(ValueError, match=r"X\['a'\].*beyond float32"):
        est.predict({"a": X["a"][:2] * scale})
    # normalised, the same features are fine; unnormalised, 1e30 is too
    big = {"a": X["a"] * (scale if metric != "sqeuclidean" else 1e18)}
    ok = MTLMAnnotator(metrics=metric, tau=1.0).fit(big, Y)
    assert np.isfinite(ok.decision_function(big)).all()
    small = {"a": X["a"] * 1e15}
    assert np.isfinite(MTLMAnnotator(**kw).fit(small, Y).decision_function(small)).all()


def test_dataframe_columns_are_checked_against_fit(rng, tmp_path):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(rng.random((40, 4)), columns=list("abcd"))
    Y = (rng.random((40, 3)) < 0.4).astype(np.uint8)
    for X, wrap, label in (
        ({"f0": df}, lambda d: {"f0": d}, r"X\['f0'\]"),
        (df, lambda d: d, "X"),
    ):
        est = MTLMAnnotator(tau=1.0).fit(X, Y)
        want = est.decision_function(wrap(df))
        assert_array_equal(est.decision_function(wrap(df.to_numpy())), want)
        with pytest.raises(ValueError, match=label + r" has columns \['d', 'c'"):
            est.decision_function(wrap(df[list("dcba")]))
        renamed = df.rename(columns={"a": "z"})
        with pytest.raises(ValueError, match="but fit saw"):
            est.predict(wrap(renamed))
        loaded = mtlm.load_model(est.save(tmp_path / "m.npz"))
        with pytest.raises(ValueError, match="reorder or rename"):
            loaded.predict(wrap(df[list("dcba")]))
        assert_array_equal(loaded.decision_function(wrap(df)), want)


def test_object_and_nullable_labels_and_masked_features(rng):
    X, Xt, Y = _data(rng)
    ref = MTLMAnnotator(tau=0.5).fit(X, Y)
    est = MTLMAnnotator(tau=0.5).fit(X, Y.astype(object))
    assert_array_equal(est.decision_function(Xt), ref.decision_function(Xt))
    words = Y.astype(object)
    words[0, 0] = "yes"
    with pytest.raises(ValueError, match="y has dtype object with non-numeric"):
        MTLMAnnotator().fit(X, words)
    pd = pytest.importorskip("pandas")
    Yd = pd.DataFrame(Y).astype("Int64")
    est = MTLMAnnotator(tau=0.5).fit(X, Yd)
    assert_array_equal(est.decision_function(Xt), ref.decision_function(Xt))
    Yd.iloc[0, 0] = pd.NA
    with pytest.raises(ValueError, match="y has dtype object with non-numeric"):
        MTLMAnnotator().fit(X, Yd)
    masked = np.ma.masked_array(X["a"], mask=np.zeros_like(X["a"], dtype=bool))
    est = MTLMAnnotator(tau=0.5).fit({**X, "a": masked}, Y)  # nothing masked: fine
    assert_array_equal(est.decision_function(Xt), ref.decision_function(Xt))
    masked.mask[3, 1] = True
    with pytest.raises(ValueError, match=r"X\['a'\] is a masked array with masked"):
        MTLMAnnotator().fit({**X, "a": masked}, Y)


@pytest.mark.parametrize(
    "kw, scale, match",
    [
        (
            dict(metrics="sqeuclidean", normalize="max"),
            1e20,
            "normalize='max'.*float32",
        ),
        (dict(metrics="l1", normalize="max"), 1e100, "beyond float32"),
        (dict(metrics="sqeuclidean", normalize="max"), 1e-30, "vanish in float32"),
        (dict(metrics="sqeuclidean", normalize="none"), 1e-30, "vanish in float32"),
        (dict(metrics="l1", normalize="none"), 1e-300, "vanish in float32"),
        (None, 1e-30, r"X: the squared differences of 5 dimension"),  # diagonal
    ],
)
def test_distances_that_leave_float32_raise(rng, kw, scale, match):
    X = rng.random((40, 5))
    Y = (rng.random((40, 3)) < 0.4).astype(np.uint8)
    Xs = X * scale if kw is None else {"a": X * scale}
    with pytest.raises(ValueError, match=match):
        MTLMAnnotator(**(kw or {})).fit(Xs, Y)
    # mean normalisation computes in float64 and scales before storing
    if kw is not None:
        metric = kw["metrics"]
        ok = MTLMAnnotator(metrics=metric, tau=1.0).fit(Xs, Y)
        ref = MTLMAnnotator(metrics=metric, tau=1.0).fit({"a": X}, Y)
        assert_array_equal(ok.predict(Xs), ref.predict({"a": X}))


def test_a_huge_label_budget_is_rejected(rng):
    X, _, Y = _data(rng)
    with pytest.raises(ValueError, match=r"label_budget must be <= 1000000"):
        MTLMAnnotator("mtlm-lmnn", label_budget=1e300).fit(X, Y)


def test_a_refit_forgets_what_an_earlier_fit_left(rng):
    X, Xt, Y = _data(rng)
    est = MTLMAnnotator("mtlm-lmnn", probability=True, tau=0.5, max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, Y)
    assert hasattr(est, "n_active_") and hasattr(est, "proba_coef_")
    est.set_params(method="jec", probability=False).fit(X, Y)
    assert not hasattr(est, "n_active_") and not hasattr(est, "proba_coef_")


# -- 8. interrupts ---------------------------------------------------------------------
# A shell that starts jobs in the background (nohup, `&`, some CI runners) makes
# its children ignore SIGINT; the scripts restore Python's Ctrl-C handler so the
# test sees what a user at a terminal sees.
_CTRL_C = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"

_LONG_FIT = (
    _CTRL_C
    + """
import sys, time, warnings, numpy as np
import mtlm._lmnn
from mtlm import MTLMAnnotator
warnings.simplefilter("ignore")
# Make every solver iteration take >= 0.2 s so that the fit surely runs for
# longer than the test waits, however fast the kernels or the machine are
# (the solver may stop by its step-size rule after ~70 iterations).
_update = mtlm._lmnn._ActiveState.update
def slow_update(self, W, full):
    time.sleep(0.2)
    return _update(self, W, full)
mtlm._lmnn._ActiveState.update = slow_update
rng = np.random.default_rng(0)
X = {"a": rng.random((1500, 20)), "b": rng.random((1500, 10))}
Y = (rng.random((1500, 30)) < 0.1).astype(np.uint8)
est = MTLMAnnotator("mtlm-lmnn", k_pos=3, k_neg=20, max_iter=10**6, tol=0.0,
                    margin=1.0, n_jobs=2)
print("start", flush=True)
try:
    est.fit(X, Y)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(3)
print("finished", flush=True)
"""
)


def _run_and_interrupt(code, after, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert proc.stdout.readline().strip() == "start"
    time.sleep(after)
    assert proc.poll() is None, proc.communicate()
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    return proc.returncode, out, err, time.perf_counter() - t0


def test_ctrl_c_stops_a_long_fit_quickly(tmp_path):
    rc, out, err, waited = _run_and_interrupt(_LONG_FIT, 1.5, tmp_path)
    assert rc == 3 and "interrupted" in out, (rc, out, err)
    assert waited < 2.0


_LONG_SAVE = (
    _CTRL_C
    + """
import numpy as np
import mtlm._persistence as P
from mtlm import MTLMAnnotator
rng = np.random.default_rng(0)
X = rng.random((50, 3))
est = MTLMAnnotator(tau=0.5).fit(X, (rng.random((50, 2)) < 0.5).astype(np.uint8))
real = np.savez_compressed
def slow(fh, **arrays):
    fh.write(b"PK partial")
    fh.flush()
    print("start", flush=True)
    import time
    time.sleep(30)
    real(fh, **arrays)
P.np.savez_compressed = slow
est.save("model.npz")
"""
)


def test_ctrl_c_during_save_leaves_no_file(tmp_path):
    rc, out, err, waited = _run_and_interrupt(_LONG_SAVE, 0.3, tmp_path)
    assert rc != 0 and "KeyboardInterrupt" in err and waited < 2.0
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("method", LEARNED)
def test_learned_method_with_no_task_at_all(method):
    # two images, one label each: no label has k_pos + 1 images, no triplet
    X = np.array([[0.0, 1.0], [1.0, 0.0]])
    Y = np.array([[1, 0], [0, 1]], np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est = _fast(method, tau=1.0).fit(X, Y)
    assert np.all(np.isfinite(est.weights_shared_))
    assert np.all(np.isfinite(est.weights_label_))
    assert est.predict(X).sum() == 2 * min(est.n_labels, 2)

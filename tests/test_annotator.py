"""MTLMAnnotator with JEC weights, end to end on small data."""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from mtlm import BaseDistances, MTLMAnnotator
from mtlm._reference_core import group_knn, pool_vote


def _data(rng, n=80, nt=7, M=5):
    X = {"a": rng.random((n, 6)).astype(np.float32), "b": rng.random((n, 3))}
    Xt = {"a": rng.random((nt, 6)).astype(np.float32), "b": rng.random((nt, 3))}
    Y = (rng.random((n, M)) < 0.3).astype(np.uint8)
    Y[:, -1] = 0  # a label no training image carries
    Y[0] = 0  # an image with no label
    Y[1:, 1], Y[1, 1] = 0, 1  # a label with exactly one image
    return X, Xt, Y


def test_jec_scores_match_reference(rng):
    X, Xt, Y = _data(rng)
    est = MTLMAnnotator(k=3, tau=0.3).fit(X, Y)
    bd = BaseDistances().fit(X)
    d = bd.pairwise(Xt, X).astype(np.float64)
    W = np.full((1, 2), 0.5)
    idx, _ = group_knn(d, W, Y, 3)
    pools = [np.unique(r[r >= 0]) for r in idx.reshape(len(d), -1)]
    ref = pool_vote(d, W, pools, Y, 0.3)
    assert_allclose(est.decision_function(Xt), ref, rtol=1e-6)
    assert np.all(est.decision_function(Xt)[:, -1] == 0.0)
    assert_allclose(est.weights_shared_, [0.5, 0.5])
    assert est.n_iter_ == 0 and est.weights_label_.shape == (5, 2)


def test_predict_gives_n_labels_per_image_and_ties_to_lower_label(rng):
    X, Xt, Y = _data(rng)
    est = MTLMAnnotator(n_labels=2).fit(X, Y)
    P = est.predict(Xt)
    assert P.dtype == np.uint8 and np.all(P.sum(axis=1) == 2)
    # one test image, every score tied at 0 except none: lower labels win
    Yz = np.zeros_like(Y)
    Yz[:, 2] = 1
    P1 = MTLMAnnotator(n_labels=2).fit(X, Yz).predict({k: v[:1] for k, v in Xt.items()})
    assert_array_equal(P1, [[1, 0, 1, 0, 0]])


def test_thread_count_and_runs_bitwise_identical(rng):
    X, Xt, Y = _data(rng)
    s1 = MTLMAnnotator(n_jobs=1, random_state=0).fit(X, Y).decision_function(Xt)
    s2 = MTLMAnnotator(n_jobs=2, random_state=0).fit(X, Y).decision_function(Xt)
    s3 = MTLMAnnotator(n_jobs=2, random_state=0).fit(X, Y).decision_function(Xt)
    assert_array_equal(s1, s2)
    assert_array_equal(s2, s3)


def test_auto_tau_is_chosen_on_training_data(rng):
    X, _, Y = _data(rng)
    est = MTLMAnnotator(random_state=0).fit(X, Y)
    assert est.tau_ in est.tau_grid_
    assert est.tau_scores_[list(est.tau_grid_).index(est.tau_)] == est.tau_scores_.max()


def test_sparse_labels_and_diagonal_mode(rng):
    X, Xt, Y = _data(rng)
    a = MTLMAnnotator(tau=1.0).fit(X, Y).decision_function(Xt)
    b = MTLMAnnotator(tau=1.0).fit(X, sp.csr_matrix(Y)).decision_function(Xt)
    assert_array_equal(a, b)
    est = MTLMAnnotator(tau=1.0).fit(X["b"], Y)
    assert est.base_distances_.diagonal_ and est.weights_shared_.shape == (3,)
    assert est.predict(Xt["b"]).shape == (7, 5)


def test_score_is_f1(rng):
    X, _, Y = _data(rng)
    est = MTLMAnnotator(tau=0.2).fit(X, Y)
    assert 0.0 < est.score(X, Y) <= 1.0


def test_sklearn_params_and_clone():
    est = MTLMAnnotator("jec", n_labels=3, k=2, tau=0.5)
    params = est.get_params()
    assert params["n_labels"] == 3 and params["tau"] == 0.5
    est2 = clone(est).set_params(k=7)
    assert est2.k == 7 and est.k == 2


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_labels": 0}, "n_labels must be >= 1"),
        ({"k": 0}, "k must be >= 1"),
        ({"method": "svm"}, "method must be one of"),
        ({"tau": -1.0}, "tau must be > 0"),
        ({"tau": "best"}, "tau must be a real number"),
        ({"vote": "mean"}, "vote must be one of"),
        ({"metrics": "cosine"}, "metrics must be one of"),
        ({"n_jobs": 0}, "n_jobs"),
    ],
)
def test_bad_parameters_raise(rng, params, match):
    X, _, Y = _data(rng)
    with pytest.raises(ValueError, match=match):
        MTLMAnnotator(**params).fit(X, Y)


def test_bad_labels_raise(rng):
    X, _, Y = _data(rng)
    with pytest.raises(ValueError, match="y must hold only 0 and 1"):
        MTLMAnnotator().fit(X, Y * 2)
    with pytest.raises(ValueError, match="y has 79 rows but the features have 80"):
        MTLMAnnotator().fit(X, Y[1:])
    with pytest.raises(ValueError, match="y has no positive entry"):
        MTLMAnnotator().fit(X, np.zeros_like(Y))
    with pytest.raises(ValueError, match="y must be 2-D"):
        MTLMAnnotator().fit(X, Y[:, 0])


def test_predict_checks(rng):
    X, Xt, Y = _data(rng)
    with pytest.raises(NotFittedError):
        MTLMAnnotator().predict(Xt)
    est = MTLMAnnotator().fit(X, Y)
    with pytest.raises(ValueError, match=r"missing feature block\(s\) \['b'\]"):
        est.predict({"a": Xt["a"]})
    with pytest.raises(
        ValueError, match=r"X\['a'\] has 5 features, but mtlm is expecting 6"
    ):
        est.predict({"a": Xt["a"][:, :5], "b": Xt["b"]})
    with pytest.raises(ValueError, match=r"X\['b'\] contains NaN"):
        est.predict({"a": Xt["a"], "b": np.full((7, 3), np.nan)})


@pytest.mark.parametrize(
    "param, value",
    [("k", -1), ("k", 0), ("n_labels", 0), ("vote", "bogus"), ("vote_scale", "x")]
    + [("backend", "bogus"), ("n_jobs", 0)],
)
def test_parameters_set_after_fit_are_checked_at_prediction(rng, param, value):
    X, Xt, Y = _data(rng)
    est = MTLMAnnotator("mtlm-ldml", max_iter=5, random_state=0).fit(X, Y)
    before = est.decision_function(Xt)
    est.set_params(**{param: value})
    for predict in (est.decision_function, est.predict):
        with pytest.raises(ValueError, match=param):
            predict(Xt)
    est.set_params(**{param: MTLMAnnotator().get_params()[param]})
    assert_array_equal(est.decision_function(Xt), before)


def test_predict_proba_of_a_model_fitted_without_probabilities(rng):
    X, Xt, Y = _data(rng)
    est = MTLMAnnotator().fit(X, Y).set_params(probability=True)
    with pytest.raises(NotFittedError, match="fitted with probability=False"):
        est.predict_proba(Xt)
    with pytest.raises(NotFittedError, match="is not fitted yet"):
        MTLMAnnotator(probability=True).predict_proba(Xt)


def test_a_single_label_warns_that_normalised_votes_are_flat(rng):
    X, Xt, Y = _data(rng)
    Y1 = Y[:, :1]
    with pytest.warns(UserWarning, match='single label.*vote="raw"'):
        est = MTLMAnnotator(tau=0.3).fit(X, Y1)
    assert_allclose(est.decision_function(Xt), 1.0, rtol=1e-12)  # why it warns
    raw = MTLMAnnotator(tau=0.3, vote="raw").fit(X, Y1).decision_function(Xt)
    assert np.unique(raw).size > 1  # raw votes rank the images

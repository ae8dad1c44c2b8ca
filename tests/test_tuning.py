"""MTLMAnnotator.tune: hold-out grid search, shared work, refit, validation."""

import itertools
import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.exceptions import ConvergenceWarning

import mtlm
import mtlm._ldml
import mtlm._lmnn
from mtlm import BaseDistances, MTLMAnnotator
from mtlm.metrics import annotation_scores


def _data(seed=0, n=90, nt=12, M=8):
    """Three feature blocks; labels follow a hidden cluster seen through noise."""
    rng = np.random.default_rng(seed)
    centre = rng.random((M, 5))

    def draw(size):
        c = rng.integers(0, M, size)
        Y = np.zeros((size, M), dtype=np.uint8)
        Y[np.arange(size), c] = 1
        Y[np.arange(size), rng.integers(0, M, size)] = rng.random(size) < 0.5
        X = {
            "a": (centre[c] + 1.0 * rng.random((size, 5))).astype(np.float32),
            "b": centre[c, :3] + 2.0 * rng.random((size, 3)),
            "noise": rng.random((size, 4)),
        }
        return X, Y

    (X, Y), (Xt, Yt) = draw(n), draw(nt)
    return X, Y, Xt, Yt


def _rows(X, rows):
    return {f: b[rows] for f, b in X.items()}


@pytest.fixture(autouse=True)
def _quiet_convergence():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def test_results_follow_the_grid_and_best_is_the_argmax():
    X, Y, _, _ = _data()
    grid = {"gamma_label": [1.0, 100.0], "k": [2, 4]}
    est = MTLMAnnotator("mtlm-ldml", max_iter=30, random_state=0)
    assert est.tune(X, Y, grid) is est
    res = est.tune_results_
    points = [dict(gamma_label=g, k=k) for g, k in itertools.product(*grid.values())]
    assert res["params"] == points
    assert res["param_gamma_label"] == [1.0, 1.0, 100.0, 100.0]
    assert res["param_k"] == [2, 4, 2, 4]
    for key in ("score", "rank", "f1", "miap", "n_plus", "tau", "n_iter", "fit_time"):
        assert len(res[key]) == 4, key
    assert_array_equal(res["score"], res["f1"])  # scoring="f1"
    assert np.all((res["f1"] > 0) & (res["f1"] <= 1))
    assert np.all((res["miap"] > 0) & (res["miap"] <= 1))
    assert np.all(res["n_iter"] > 0) and np.all(res["fit_time"] > 0)
    best = int(np.argmax(res["score"]))  # first maximum
    assert est.best_index_ == best
    assert est.best_params_ == points[best]
    assert est.best_score_ == res["score"][best] == res["score"].max()
    assert res["rank"][best] == 1
    # rank: 1 + the number of strictly better points (ties share a rank)
    expected = [1 + int(np.sum(res["score"] > v)) for v in res["score"]]
    assert_array_equal(res["rank"], expected)
    assert est.get_params()["gamma_label"] == points[best]["gamma_label"]
    assert est.get_params()["k"] == points[best]["k"]
    assert est.tune_scoring_ == "f1" and est.tune_time_ > 0


@pytest.mark.parametrize(
    "method, grid",
    [
        ("mtlm-ldml", {"gamma_label": [1.0, 100.0]}),
        ("mtlm-lmnn", {"mu": [0.5, 2.0], "k": [2, 4]}),
        ("jec", {"k": [2, 3]}),
    ],
)
def test_each_point_scores_as_a_plain_fit_on_the_fit_part(method, grid):
    X, Y, _, _ = _data(1)
    common = dict(max_iter=25, random_state=0)
    est = MTLMAnnotator(method, **common).tune(X, Y, grid, holdout=0.2)
    hold = est.tune_holdout_indices_
    assert hold.size == 18 and np.all(np.diff(hold) > 0)
    fit_rows = np.setdiff1d(np.arange(len(Y)), hold)
    for i, params in enumerate(est.tune_results_["params"]):
        ref = MTLMAnnotator(method, **common, **params)
        ref.fit(_rows(X, fit_rows), Y[fit_rows])
        s = annotation_scores(Y[hold], ref.predict(_rows(X, hold)))
        assert est.tune_results_["f1"][i] == pytest.approx(s["F1"], abs=1e-12)
        assert est.tune_results_["tau"][i] == pytest.approx(ref.tau_)
        assert est.tune_results_["n_iter"][i] == ref.n_iter_


def test_refit_equals_a_plain_fit_with_the_best_parameters():
    X, Y, Xt, _ = _data(2)
    est = MTLMAnnotator("mtlm-ldml", max_iter=30, random_state=0)
    est.tune(X, Y, {"gamma_label": [1.0, 30.0, 1000.0], "k": [2, 4]})
    ref = MTLMAnnotator("mtlm-ldml", max_iter=30, random_state=0, **est.best_params_)
    ref.fit(X, Y)
    assert_array_equal(est.weights_shared_, ref.weights_shared_)
    assert_array_equal(est.weights_label_, ref.weights_label_)
    assert est.tau_ == ref.tau_
    assert_array_equal(est.decision_function(Xt), ref.decision_function(Xt))
    # a later plain fit forgets the search
    est.fit(X, Y)
    assert not hasattr(est, "tune_results_") and not hasattr(est, "best_params_")


def _counting(monkeypatch, owner, name, counts):
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        counts[name] = counts.get(name, 0) + 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)


def test_base_distances_and_constraints_are_built_once_per_split(monkeypatch):
    X, Y, _, _ = _data(3)
    counts = {}
    _counting(monkeypatch, BaseDistances, "_fit_blocks", counts)
    _counting(monkeypatch, mtlm._ldml, "ldml_constraints", counts)
    _counting(monkeypatch, mtlm._ldml, "learn_ldml", counts)
    est = MTLMAnnotator("mtlm-ldml", max_iter=20, random_state=0)
    est.tune(X, Y, {"gamma_label": [1.0, 10.0, 100.0], "gamma_shared": [1.0, 3.0]})
    # search: 1 each for the split, 6 solves; refit: 1 of each
    assert counts == {"_fit_blocks": 2, "ldml_constraints": 2, "learn_ldml": 7}

    counts.clear()  # "2pknn" constraints depend on k: one set per k
    est.tune(X, Y, {"k": [2, 3], "gamma_label": [1.0, 10.0]})
    assert counts == {"_fit_blocks": 2, "ldml_constraints": 3, "learn_ldml": 5}

    counts.clear()  # the metric searched: base distances once per value
    est.tune(X, Y, {"metrics": ["l1", "l2"], "gamma_label": [1.0, 10.0]})
    assert counts == {"_fit_blocks": 3, "ldml_constraints": 3, "learn_ldml": 5}


def test_held_out_tau_learns_one_more_metric_per_tau_choice(monkeypatch):
    X, Y, _, _ = _data(3)
    counts = {}
    _counting(monkeypatch, mtlm._ldml, "ldml_constraints", counts)
    _counting(monkeypatch, mtlm._ldml, "learn_ldml", counts)
    est = MTLMAnnotator("mtlm-ldml", max_iter=20, random_state=0, tau_select="held-out")
    est.tune(X, Y, {"gamma_label": [1.0, 10.0]})
    # search: 1 set + 2 solves, and per point 1 set + 1 solve for its tau;
    # refit: the same again
    assert counts == {"ldml_constraints": 1 + 2 + 2, "learn_ldml": 2 + 2 + 2}


def test_lmnn_reuses_triplets_and_metrics_across_vote_parameters(monkeypatch):
    X, Y, _, _ = _data(4)
    counts = {}
    _counting(monkeypatch, mtlm._lmnn, "lmnn_constraints", counts)
    _counting(monkeypatch, mtlm._lmnn, "learn_lmnn", counts)
    est = MTLMAnnotator("mtlm-lmnn", max_iter=20, random_state=0)
    est.tune(X, Y, {"mu": [0.5, 1.0, 2.0], "k": [2, 4]})
    # triplets do not depend on mu or k, the learned metric not on k
    assert counts == {"lmnn_constraints": 2, "learn_lmnn": 4}
    res = est.tune_results_
    assert_array_equal(res["n_iter"][0::2], res["n_iter"][1::2])

    counts.clear()  # k_pos changes the triplets
    est.tune(X, Y, {"k_pos": [2, 3], "mu": [1.0, 2.0]})
    assert counts == {"lmnn_constraints": 3, "learn_lmnn": 5}

    counts.clear()  # "2pknn" triplets depend on k (and no longer on k_pos)
    est.set_params(constraints="2pknn")
    est.tune(X, Y, {"k": [2, 3], "k_pos": [2, 3], "mu": [1.0, 2.0]})
    assert counts == {"lmnn_constraints": 3, "learn_lmnn": 5}


def test_default_grids_and_scoring_miap():
    X, Y, _, _ = _data(5)
    est = MTLMAnnotator(random_state=0).tune(X, Y)  # JEC: k only
    assert est.tune_results_["params"] == [{"k": 2}, {"k": 4}, {"k": 8}]
    assert mtlm.default_grid("mtlm-ldml") == {
        "gamma_label": [1.0, 30.0, 1000.0],
        "k": [4, 8],
    }
    assert set(mtlm.default_grid("global-lmnn")) == {"gamma_shared", "k"}
    g = mtlm.default_grid("jec")
    g["k"].append(99)  # a copy
    assert mtlm.default_grid("jec") == {"k": [2, 4, 8]}
    est.tune(X, Y, {"k": [2, 3, 5]}, scoring="miap")
    res = est.tune_results_
    assert_array_equal(res["score"], res["miap"])
    assert est.best_index_ == int(np.argmax(res["miap"]))
    assert est.tune_scoring_ == "miap"


def test_list_of_grids_and_holdout_as_a_count():
    X, Y, _, _ = _data(6)
    est = MTLMAnnotator(random_state=0)
    est.tune(X, Y, [{"k": [2, 3]}, {"k": [4], "vote": ["raw"]}], holdout=15)
    res = est.tune_results_
    assert res["params"] == [{"k": 2}, {"k": 3}, {"k": 4, "vote": "raw"}]
    assert res["param_vote"] == ["normalized", "normalized", "raw"]
    assert est.tune_holdout_indices_.size == 15


def test_split_is_deterministic_given_random_state():
    X, Y, _, _ = _data(7)
    grid = {"k": [2, 3, 4]}
    a = MTLMAnnotator().tune(X, Y, grid, random_state=3)
    b = MTLMAnnotator().tune(X, Y, grid, random_state=3)
    c = MTLMAnnotator().tune(X, Y, grid, random_state=4)
    d = MTLMAnnotator(random_state=3).tune(X, Y, grid)  # falls back on random_state
    assert_array_equal(a.tune_holdout_indices_, b.tune_holdout_indices_)
    assert_array_equal(a.tune_results_["score"], b.tune_results_["score"])
    assert not np.array_equal(a.tune_holdout_indices_, c.tune_holdout_indices_)
    assert_array_equal(a.tune_holdout_indices_, d.tune_holdout_indices_)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(param_grid={"nope": [1]}), "param_grid: 'nope' is not a parameter"),
        (dict(param_grid={}), "param_grid is empty"),
        (dict(param_grid=[]), "param_grid is empty"),
        (dict(param_grid=[{"k": [2]}, {}]), "param_grid is empty"),
        (dict(param_grid={"k": []}), r"param_grid\['k'\] must be a non-empty list"),
        (dict(param_grid={"k": 4}), r"param_grid\['k'\] must be a non-empty list"),
        (dict(param_grid={"vote": "raw"}), r"param_grid\['vote'\] must be"),
        (dict(param_grid={"method": ["jec"]}), "cannot search 'method'"),
        (dict(param_grid={"n_jobs": [1]}), "cannot search 'n_jobs'"),
        (dict(param_grid="k"), "param_grid must be"),
        (dict(param_grid=[["k"]]), "param_grid must be"),
        (dict(param_grid={"k": [4, 0]}), r"param_grid point \{'k': 0\}: k"),
        (dict(param_grid={"mu": [-1.0]}), "param_grid point .*mu"),
        (dict(holdout=0.0), r"= \[1, 89\]; got 0.0"),  # no 1.0 hint
        (dict(holdout=1.0), r"\(1.0 is read as neither: give 1 for one image\)"),
        (dict(holdout=1.0), "holdout must be a fraction"),
        (dict(holdout=-0.2), "holdout must be a fraction"),
        (dict(holdout=90), "holdout must be a fraction"),
        (dict(holdout=True), "holdout must be a fraction"),
        (dict(holdout=float("nan")), "holdout must be a fraction"),
        (dict(holdout=float("inf")), "holdout must be a fraction"),
        (dict(holdout="10%"), "holdout must be a fraction"),
        (dict(scoring="auc"), "scoring"),
        (dict(random_state="x"), "random_state must be None, an int"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    X, Y, _, _ = _data(8)
    method = "mtlm-lmnn" if "mu" in str(kwargs) else "jec"
    kwargs.setdefault("param_grid", {"k": [2]})
    with pytest.raises(ValueError, match=match):
        MTLMAnnotator(method).tune(X, Y, **kwargs)


def test_one_training_image_cannot_be_split():
    X, Y, _, _ = _data(11)
    with pytest.raises(ValueError, match="needs at least 2 training images, got 1"):
        X1 = {name: block[:1] for name, block in X.items()}
        MTLMAnnotator().tune(X1, np.ones((1, Y.shape[1])), {"k": [2]})


def test_a_split_part_without_labels_raises():
    X, Y, _, _ = _data(9)
    Y = np.zeros_like(Y)
    Y[:3, 0] = 1  # only three labelled images
    with pytest.raises(ValueError, match=r"holdout=0\.5: the (hold-out|fit) part"):
        for seed in range(20):  # some split leaves one part without a label
            MTLMAnnotator().tune(X, Y, {"k": [2]}, holdout=0.5, random_state=seed)


def test_searched_points_that_stop_at_max_iter_are_recorded():
    X, Y, _, _ = _data(10)
    est = MTLMAnnotator("mtlm-ldml", max_iter=2, tol=0.0, random_state=0)
    with pytest.warns(ConvergenceWarning, match="2 of 2 grid point"):
        est.tune(X, Y, {"gamma_label": [1.0, 10.0]})
    assert not est.tune_results_["converged"].any()
    assert_array_equal(est.tune_results_["n_iter"], [2, 2])


def test_refit_false_records_the_search_and_leaves_the_estimator_unfitted():
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    X, Y, Xt, _ = _data(2)
    grid = {"gamma_label": [1.0, 1000.0], "k": [2, 4]}
    full = MTLMAnnotator("mtlm-ldml", max_iter=30, random_state=0).tune(X, Y, grid)
    est = MTLMAnnotator("mtlm-ldml", max_iter=30, random_state=0).fit(X, Y)
    assert est.tune(X, Y, grid, refit=False) is est
    assert_array_equal(est.tune_results_["score"], full.tune_results_["score"])
    assert est.best_params_ == full.best_params_
    assert est.get_params()["k"] == full.best_params_["k"]
    # the earlier fit is forgotten: its weights belong to other parameters
    assert not hasattr(est, "weights_shared_") and not hasattr(est, "_groups")
    with pytest.raises(NotFittedError):
        est.predict(Xt)
    with pytest.raises(NotFittedError):  # the search's attributes are not a fit
        check_is_fitted(est)
    with pytest.raises(ValueError, match="refit must be a bool"):
        est.tune(X, Y, grid, refit="yes")


def test_an_integral_float_holdout_is_a_count():
    X, Y, _, _ = _data(8)
    a = MTLMAnnotator(random_state=0).tune(X, Y, {"k": [2]}, holdout=30, refit=False)
    b = MTLMAnnotator(random_state=0).tune(X, Y, {"k": [2]}, holdout=30.0, refit=False)
    assert a.tune_holdout_indices_.size == 30
    assert_array_equal(a.tune_holdout_indices_, b.tune_holdout_indices_)

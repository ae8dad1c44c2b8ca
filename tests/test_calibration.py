"""Word-specific sigmoids (predict_proba) and thresholded annotation."""

import json
from fractions import Fraction

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.optimize import minimize
from scipy.special import expit, logit
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

from mtlm import MTLMAnnotator, load_model
from mtlm._calibration import fit_label_sigmoids, label_probabilities
from mtlm.metrics import threshold_annotation


def _penalised_fit(s, y, C):
    """sklearn's objective, minimised directly: a^2 / 2 + C * sum(log-loss)."""

    def f(theta):
        z = theta[0] * s + theta[1]
        return 0.5 * theta[0] ** 2 + C * np.sum(np.logaddexp(0, z) - y * z)

    return minimize(f, np.zeros(2), method="BFGS", options={"gtol": 1e-10}).x


@pytest.mark.parametrize("C", [1.0, 100.0])
def test_label_sigmoids_equal_sklearn_logistic_regression(rng, C):
    n, M = 200, 3
    S = rng.random((n, M))
    Y = (rng.random((n, M)) < 0.2 + 0.6 * S).astype(np.uint8)
    coef, intercept = fit_label_sigmoids(S, Y, C=C)
    for m in range(M):
        lr = LogisticRegression(C=C, tol=1e-12, max_iter=10_000)
        lr.fit(S[:, m : m + 1], Y[:, m])
        assert coef[m] > 0  # the label is more frequent at high scores
        assert_allclose(
            [coef[m], intercept[m]],
            [lr.coef_[0, 0], lr.intercept_[0]],
            rtol=1e-6,
            atol=1e-8,
        )
        # and both minimise a^2 / 2 + C * sum(log-loss)
        assert_allclose(coef[m], _penalised_fit(S[:, m], Y[:, m], C)[0], rtol=1e-4)


def test_score_scale_makes_the_fit_scale_free(rng):
    n, M = 200, 3
    S = rng.random((n, M))
    Y = (rng.random((n, M)) < 0.2 + 0.6 * S).astype(np.uint8)
    coef, intercept = fit_label_sigmoids(S, Y, score_scale=S.max(axis=0))
    tiny = S * 1e-16  # raw votes at a small tau
    coef_t, intercept_t = fit_label_sigmoids(tiny, Y, score_scale=tiny.max(axis=0))
    assert_allclose(coef_t * 1e-16, coef, rtol=1e-6)  # L-BFGS-B tolerance
    assert_allclose(intercept_t, intercept, rtol=1e-6)
    assert (coef > 0).all()
    # unscaled, the penalty on a flattens every sigmoid
    assert_array_equal(fit_label_sigmoids(tiny, Y)[0], 0.0)


def test_raw_votes_get_image_dependent_probabilities(rng):
    _, Y = _data(rng)
    centres = rng.random((Y.shape[1], 5))
    X = {"a": Y @ centres + 0.3 * rng.random((Y.shape[0], 5))}  # labels show
    est = MTLMAnnotator(vote="raw", tau=0.001, probability=True, k=3).fit(X, Y)
    n = Y.shape[0]
    S = est._scores(est._train_blocks, [est.tau_], 1, exclude=np.arange(n))[0]
    assert np.median(S[S > 0]) < 1e-6  # small raw votes
    coef, intercept = fit_label_sigmoids(S, Y, score_scale=S.max(axis=0))
    assert_array_equal(est.proba_coef_, coef)
    assert (coef > 0).any()
    P = est.predict_proba({f: v[:10] for f, v in X.items()})
    assert np.unique(P.round(12), axis=0).shape[0] > 1


def test_a_score_that_falls_with_the_label_gets_slope_zero(rng):
    n = 300
    s = rng.random(n)
    y = (rng.random(n) < 0.8 - 0.6 * s).astype(np.uint8)  # frequent at LOW scores
    coef, intercept = fit_label_sigmoids(s[:, None], y[:, None])
    assert coef[0] == 0.0  # the bound a >= 0 is active: the ranking never flips
    assert_allclose(intercept[0], logit(y.mean()), rtol=1e-6)


def test_constant_labels_get_their_smoothed_frequency(rng):
    S = rng.random((10, 3))
    Y = np.zeros((10, 3), dtype=np.uint8)
    Y[:, 1] = 1
    Y[:4, 2] = 1
    coef, intercept = fit_label_sigmoids(S, Y)
    assert coef[0] == 0 and coef[1] == 0
    assert_allclose(intercept[:2], logit([0.5 / 11, 10.5 / 11]))
    assert np.isfinite(label_probabilities(S, coef, intercept)).all()


def _data(rng, n=50, M=4):
    X = {"a": rng.random((n, 5)), "b": rng.random((n, 3))}
    Y = (rng.random((n, M)) < 0.35).astype(np.uint8)
    return X, Y


def test_predict_proba_is_the_sigmoid_of_leave_self_out_fits(rng):
    X, Y = _data(rng)
    kw = dict(tau=0.3, normalize="none", k=3)
    est = MTLMAnnotator(probability=True, **kw).fit(X, Y)
    # the leave-self-out scores equal those of a model fitted without the image
    n = Y.shape[0]
    S = est._scores(est._train_blocks, [est.tau_], 1, exclude=np.arange(n))[0]
    for i in (0, 17, n - 1):
        rest = np.delete(np.arange(n), i)
        sub = MTLMAnnotator(**kw).fit({f: v[rest] for f, v in X.items()}, Y[rest])
        assert_allclose(
            sub.decision_function({f: v[i : i + 1] for f, v in X.items()})[0],
            S[i],
            rtol=1e-12,
        )
    coef, intercept = fit_label_sigmoids(S, Y)
    assert_array_equal(est.proba_coef_, coef)
    assert_array_equal(est.proba_intercept_, intercept)
    Xq = {f: v[:7] for f, v in X.items()}
    assert_allclose(
        est.predict_proba(Xq), expit(coef * est.decision_function(Xq) + intercept)
    )


def test_predict_proba_exists_only_with_probability(rng):
    X, Y = _data(rng)
    est = MTLMAnnotator(tau=0.3).fit(X, Y)
    assert not hasattr(est, "predict_proba") and not hasattr(est, "proba_coef_")
    assert clone(MTLMAnnotator(probability=True)).probability is True
    est.set_params(probability=True).fit(X, Y)
    assert est.predict_proba(X).shape == Y.shape
    est.set_params(probability=False).fit(X, Y)  # a refit drops the sigmoids
    assert not hasattr(est, "proba_coef_")
    with pytest.raises(ValueError, match="probability must be a bool"):
        MTLMAnnotator(probability="yes").fit(X, Y)


def test_learned_methods_calibrate_too(rng):
    X, Y = _data(rng)
    est = MTLMAnnotator(
        "mtlm-ldml", probability=True, gamma_shared=0.01, gamma_label=0.01, tol=1e-3
    ).fit(X, Y)
    assert est.weights_shared_.sum() > 0
    P = est.predict_proba(X)
    assert ((P > 0) & (P < 1)).all()


def test_threshold_annotation_hand_cases():
    P = np.array([[0.7, 0.2, 0.6], [0.1, 0.3, 0.3], [0.5, 0.5, 0.0]])
    assert_array_equal(
        threshold_annotation(P), [[1, 0, 1], [0, 1, 0], [1, 1, 0]]
    )  # row 2: no label passes, the first most probable is kept
    assert_array_equal(threshold_annotation(P, 0.65), [[1, 0, 0], [0, 1, 0], [1, 0, 0]])
    assert_array_equal(threshold_annotation(P, 0.0), np.ones((3, 3)))
    # threshold 1: no label passes, so each row keeps its first most probable one
    assert_array_equal(threshold_annotation(P, 1.0), [[1, 0, 0], [0, 1, 0], [1, 0, 0]])
    assert_array_equal(threshold_annotation(P, Fraction(1, 2)), threshold_annotation(P))


@pytest.mark.parametrize(
    "proba, threshold, match",
    [
        ([[0.1, np.nan]], 0.5, "proba contains NaN"),
        ([0.1, 0.2], 0.5, "proba"),
        ([[0.1, 0.2]], np.nan, "threshold must be a real number in"),
        ([[0.1, 0.2]], "0.5", "threshold must be a real number in"),
        ([[0.1, 0.2]], True, "threshold must be a real number in"),
        ([[0.1, 0.2]], -0.1, r"threshold must be a real number in \[0, 1\]"),
        ([[0.1, 0.2]], 1.5, r"threshold must be a real number in \[0, 1\]"),
        ([[0.1, 1.2]], 0.5, r"proba must hold probabilities in \[0, 1\]"),
        ([[-0.1, 0.2]], 0.5, r"proba must hold probabilities in \[0, 1\]"),
        (np.ma.masked_array([[0.1, 0.2]], mask=[[0, 1]]), 0.5, "masked entries"),
    ],
)
def test_threshold_annotation_bad_input(proba, threshold, match):
    with pytest.raises(ValueError, match=match):
        threshold_annotation(proba, threshold)


def test_model_files_keep_the_sigmoids(rng, tmp_path):
    X, Y = _data(rng)
    est = MTLMAnnotator(tau=0.3, probability=True).fit(X, Y)
    loaded = load_model(est.save(tmp_path / "m.npz"))
    assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))

    def edited(edit):
        with np.load(tmp_path / "m.npz") as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays["meta"]))
        edit(arrays, meta)
        arrays["meta"] = np.array(json.dumps(meta))
        np.savez(tmp_path / "bad.npz", **arrays)
        return tmp_path / "bad.npz"

    cases = [
        (lambda a, m: a.pop("proba_intercept"), "not both saved"),
        (lambda a, m: m["params"].update(probability=False), "'probability' is false"),
        (lambda a, m: a.update(proba_coef=np.full(4, np.inf)), "proba_coef contains"),
        (lambda a, m: a.update(proba_coef=np.ones(2)), r"proba_coef must be of shape"),
    ]
    for edit, match in cases:
        with pytest.raises(ValueError, match=match):
            load_model(edited(edit))

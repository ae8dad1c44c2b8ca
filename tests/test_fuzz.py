"""Issue 6: property tests over small random inputs.

The only outcomes allowed are a result that matches the numpy reference (or,
for fit/predict, a valid output) or a ValueError.  Shapes are tiny and the
example counts small so that the suite stays fast; the derandomised profile of
conftest.py makes every run see the same examples (``MTLM_HYPOTHESIS_PROFILE=
thorough`` explores more).
"""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose
from sklearn.exceptions import ConvergenceWarning

from mtlm import BaseDistances, MTLMAnnotator
from mtlm._annotator import METHODS
from mtlm._reference_core import base_distance, group_knn, pool_vote
from mtlm.metrics import annotation_scores, per_label_scores, top_k_annotation

METRICS = ["l1", "chi2", "l2", "sqeuclidean", "hellinger"]
FAST = settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow])

# Values: mostly ordinary (with zeros and duplicates); about one array in
# eight gets a NaN, inf or huge entry, one in ten a zero size, one label
# matrix in ten a value other than 0/1, so errors are reached as well as results.
finite = st.one_of(
    st.sampled_from([0.0, 1.0, 0.5]), st.floats(-10, 10, allow_nan=False, width=32)
)
WILD = [np.nan, np.inf, -np.inf, 1e30, 1e200]


@st.composite
def arrays(draw, shape, elements=finite, corrupt=True):
    a = draw(hnp.arrays(np.float64, shape, elements=elements))
    if corrupt and a.size and draw(st.integers(0, 7)) == 0:
        a.flat[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from(WILD))
    return a


@st.composite
def feature_blocks(draw, n=None, dims=None, corrupt=True):
    n = draw(st.sampled_from([1, 2, 3, 4, 5, 6, 1, 2, 7, 0])) if n is None else n
    if dims is None:
        dims = draw(
            st.lists(
                st.sampled_from([1, 2, 3, 1, 2, 3, 1, 2, 3, 0]), min_size=1, max_size=3
            )
        )
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int64]))
    blocks = {}
    for i, d in enumerate(dims):
        a = draw(arrays((n, d), corrupt=corrupt))
        if dtype == np.int64:
            a = np.round(np.clip(np.nan_to_num(a, posinf=1, neginf=-1), -1e9, 1e9))
        with np.errstate(over="ignore"):  # 1e200 -> inf in float32: also wild
            blocks[f"f{i}"] = a.astype(dtype)
    return blocks


@st.composite
def label_matrices(draw, n, M=None):
    M = draw(st.integers(1, 4)) if M is None else M
    bad = draw(st.integers(0, 9)) == 0
    values = st.sampled_from([0, 1, 2, -1] if bad else [0, 1])
    return draw(hnp.arrays(np.int64, (n, M), elements=values))


# -- BaseDistances.pairwise -------------------------------------------------------
@FAST
@given(
    data=st.data(),
    metric=st.sampled_from(METRICS),
    normalize=st.sampled_from(["mean", "max", "none"]),
    n_jobs=st.sampled_from([1, 2]),
)
def test_pairwise_matches_reference_or_value_error(data, metric, normalize, n_jobs):
    Xp = data.draw(feature_blocks(), label="Xp")
    try:
        bd = BaseDistances(metrics=metric, normalize=normalize).fit(Xp)
    except ValueError:
        event("fit: ValueError")
        return
    dims = bd.dims_
    nq = data.draw(st.integers(0, 4), label="nq")
    Xq = data.draw(
        feature_blocks(
            n=nq,
            dims=dims,
        ),
        label="Xq",
    )
    try:
        got = bd.pairwise(Xq, Xp, n_jobs=n_jobs)
    except ValueError:
        event("pairwise: ValueError")
        return
    event("result")
    assert got.shape == (nq, len(next(iter(Xp.values()))), len(dims))
    assert got.dtype == np.float32 and np.all(np.isfinite(got))
    for f, name in enumerate(bd.feature_names_):
        ref = base_distance(Xq[name], Xp[name], metric) * bd.scales_[f]
        assert_allclose(
            got[..., f], ref, rtol=1e-4, atol=1e-5 * (1 + np.abs(ref).max(initial=0))
        )


@FAST
@given(
    X=hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=4).flatmap(arrays),
    n_jobs=st.sampled_from([1, 2]),
)
def test_diagonal_pairwise_matches_reference_or_value_error(X, n_jobs):
    try:
        bd = BaseDistances().fit(X)
        got = bd.pairwise(X, n_jobs=n_jobs)
    except ValueError:
        event("ValueError")
        return
    event("result")
    assert X.ndim == 2 and np.all(np.isfinite(got))
    assert_allclose(got, (X[:, None, :] - X[None, :, :]) ** 2, rtol=1e-6)


# -- MTLMAnnotator.fit / predict ---------------------------------------------------
def _fit_or_value_error(est, X, Y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)  # LMNN: metric driven to 0
        try:
            return est.fit(X, Y)
        except ValueError:
            event("fit: ValueError")
            return None


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    method=st.sampled_from(METHODS),
    k=st.integers(1, 7),
    n_labels=st.integers(1, 5),
    tau=st.sampled_from(["auto", 0.05, 1.0]),
    vote=st.sampled_from(["normalized", "raw"]),
    n_jobs=st.sampled_from([1, 2]),
)
def test_fit_predict_valid_output_or_value_error(
    data, method, k, n_labels, tau, vote, n_jobs
):
    diagonal = data.draw(st.booleans(), label="diagonal")
    n = data.draw(st.integers(1, 8), label="n")
    X = data.draw(feature_blocks(n=n), label="X")
    if diagonal:
        X = X["f0"]
    Y = data.draw(label_matrices(n), label="Y")
    est = MTLMAnnotator(
        method,
        k=k,
        n_labels=n_labels,
        tau=tau,
        vote=vote,
        n_jobs=n_jobs,
        max_iter=5,
        random_state=0,
    )
    params = est.get_params()
    est.set_params(**{p: v for p, v in (("k_pos", 2), ("k_neg", 3)) if p in params})
    if _fit_or_value_error(est, X, Y) is None:
        return
    M = Y.shape[1]
    nt = data.draw(st.integers(1, 4), label="nt")
    if diagonal:
        Xt = data.draw(feature_blocks(n=nt, dims=[X.shape[1]]))["f0"]
    else:
        Xt = data.draw(feature_blocks(n=nt, dims=est.base_distances_.dims_), label="Xt")
    try:
        scores = est.decision_function(Xt)
    except ValueError:
        event("predict: ValueError")
        return
    event("result")
    assert scores.shape == (nt, M) and np.all(np.isfinite(scores))
    if vote == "normalized":
        assert np.all((scores >= 0) & (scores <= 1 + 1e-12))
    pred = est.predict(Xt)
    assert pred.dtype == np.uint8 and pred.shape == (nt, M)
    assert np.all(pred.sum(axis=1) == min(n_labels, M))
    assert np.all(np.isfinite(est.weights_shared_))
    assert np.all(np.isfinite(est.weights_label_))


@settings(max_examples=15)
@given(
    data=st.data(),
    k=st.integers(1, 5),
    tau=st.floats(0.01, 10),
    n_jobs=st.sampled_from([1, 2]),
)
def test_jec_scores_match_reference(data, k, tau, n_jobs):
    n = data.draw(st.integers(1, 8), label="n")
    X = data.draw(feature_blocks(n=n, dims=[2, 1], corrupt=False), label="X")
    Y = data.draw(hnp.arrays(np.uint8, (n, 3), elements=st.sampled_from([0, 1])))
    est = MTLMAnnotator(k=k, tau=tau, n_jobs=n_jobs)
    if _fit_or_value_error(est, X, Y) is None:
        assert not Y.any()  # the only reason left: no positive label
        return
    Xt = data.draw(feature_blocks(n=3, dims=[2, 1], corrupt=False), label="Xt")
    got = est.decision_function(Xt)
    d = est.base_distances_.pairwise(Xt, X).astype(np.float64)
    W = np.full((1, 2), 0.5)
    idx, _ = group_knn(d, W, Y, k)
    pools = [np.unique(r[r >= 0]) for r in idx.reshape(3, -1)]
    assert_allclose(got, pool_vote(d, W, pools, Y, tau), rtol=1e-9, atol=1e-300)


# -- annotation_scores ---------------------------------------------------------------
@settings(max_examples=60)
@given(data=st.data())
def test_annotation_scores_match_reference_or_value_error(data):
    n = data.draw(st.sampled_from([1, 2, 3, 4, 5, 6, 0]), label="n")
    M = data.draw(st.sampled_from([1, 2, 3, 4, 0]), label="M")
    Yt = data.draw(label_matrices(n, M) if M else st.just(np.zeros((n, 0), int)))
    Yp = data.draw(label_matrices(n, M) if M else st.just(np.zeros((n, 0), int)))
    with_scores = data.draw(st.booleans())
    scores = data.draw(arrays((n, M))) if with_scores else None
    labels = data.draw(st.sampled_from(["present", "all"]))
    try:
        got = annotation_scores(Yt, Yp, scores, labels=labels)
    except ValueError:
        event("ValueError")
        return
    event("result")
    # valid inputs: 0/1, non-empty, finite scores
    assert Yt.size and np.isin(Yt, (0, 1)).all() and np.isin(Yp, (0, 1)).all()
    ngt, npred = Yt.sum(0), Yp.sum(0)
    nc = (Yt & Yp).sum(0)
    mask = ngt > 0 if labels == "present" else np.ones(M, bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        P = np.where(npred > 0, nc / np.maximum(npred, 1), 0.0)[mask].mean()
        R = np.where(ngt > 0, nc / np.maximum(ngt, 1), 0.0)[mask].mean()
    assert got["P"] == pytest.approx(P) and got["R"] == pytest.approx(R)
    assert got["F1"] == pytest.approx(0.0 if P + R == 0 else 2 * P * R / (P + R))
    assert got["n_labels"] == mask.sum()
    per = per_label_scores(Yt, Yp)
    assert got["N+"] == int(np.count_nonzero(per["R"][mask] > 0))
    if scores is not None:
        assert np.isfinite(scores).all()
        assert 0.0 <= got["MAP"] <= got["MiAP"] + 1e-12 <= 1.0 + 1e-12


@FAST
@given(
    scores=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, max_side=5),
        elements=finite,
    ),
    k=st.integers(1, 6),
)
def test_top_k_annotation_counts(scores, k):
    pred = top_k_annotation(scores, k)
    assert np.all(pred.sum(axis=1) == min(k, scores.shape[1]))

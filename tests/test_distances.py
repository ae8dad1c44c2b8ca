"""BaseDistances against the plain-numpy/scipy reference."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from mtlm import BaseDistances
from mtlm._reference_core import base_distance

METRICS = ["l1", "chi2", "l2", "sqeuclidean", "hellinger"]
RTOL = {np.float32: 2e-5, np.float64: 1e-6}


def _blocks(rng, n, dtype, dims=(7, 1, 33)):
    return {f"f{i}": rng.random((n, d)).astype(dtype) for i, d in enumerate(dims)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("metric", METRICS)
def test_pairwise_matches_reference(rng, dtype, n_jobs, metric):
    Xq, Xp = _blocks(rng, 13, dtype), _blocks(rng, 300, dtype)
    bd = BaseDistances(metrics=metric, normalize="none").fit(Xp)
    got = bd.pairwise(Xq, Xp, n_jobs=n_jobs)
    assert got.shape == (13, 300, 3) and got.dtype == np.float32
    for f, name in enumerate(Xq):
        ref = base_distance(Xq[name], Xp[name], metric)
        assert_allclose(got[..., f], ref, rtol=RTOL[dtype], atol=1e-6)


@pytest.mark.parametrize("metric", METRICS)
def test_thread_count_agnostic_bitwise(rng, metric):
    X = _blocks(rng, 257, np.float32)
    bd = BaseDistances(metrics=metric).fit(X)
    assert_array_equal(bd.pairwise(X, n_jobs=1), bd.pairwise(X, n_jobs=2))


def test_tiny_shapes_zero_rows_and_identical_rows():
    X = {"h": np.array([[0.0, 0.0], [0.0, 0.0], [0.5, 0.5]], dtype=np.float32)}
    for metric in METRICS:
        bd = BaseDistances(metrics=metric, normalize="none").fit(X)
        d = bd.pairwise(X)[..., 0]
        # zero rows: chi-square 0/0 counts as 0; identical rows are at distance 0
        assert d[0, 1] == 0.0 and np.all(np.diag(d) == 0.0)
    one = {"a": np.array([[2.0]])}
    bd = BaseDistances(metrics="l1", normalize="none").fit(one)
    assert bd.pairwise(one, {"a": np.array([[5.0]])})[0, 0, 0] == 3.0


def test_hand_computed_values():
    x = np.array([[0.2, 0.8]])
    z = np.array([[0.6, 0.4]])
    hand = {
        "l1": 0.4 + 0.4,
        "chi2": 0.16 / 0.8 + 0.16 / 1.2,
        "sqeuclidean": 0.16 + 0.16,
        "l2": np.sqrt(0.32),
        "hellinger": np.sqrt(
            ((np.sqrt(0.2) - np.sqrt(0.6)) ** 2 + (np.sqrt(0.8) - np.sqrt(0.4)) ** 2)
            / 2
        ),
    }
    for metric, value in hand.items():
        bd = BaseDistances(metrics=metric, normalize="none").fit({"a": x})
        assert_allclose(bd.pairwise({"a": x}, {"a": z})[0, 0, 0], value, rtol=1e-6)


@pytest.mark.parametrize("normalize", ["mean", "max"])
def test_normaliser_is_mean_or_max_over_distinct_training_pairs(rng, normalize):
    X = _blocks(rng, 40, np.float64, dims=(5, 9))
    bd = BaseDistances(metrics={"f0": "l1", "f1": "chi2"}, normalize=normalize).fit(X)
    iu = np.triu_indices(40, k=1)
    for f, (name, metric) in enumerate(zip(X, ["l1", "chi2"])):
        raw = base_distance(X[name], X[name], metric)[iu]
        stat = raw.mean() if normalize == "mean" else raw.max()
        assert_allclose(bd.scales_[f], 1.0 / stat, rtol=1e-5)
        assert_allclose(bd.pairwise(X)[..., f][iu].mean(), raw.mean() / stat, rtol=1e-5)


def test_normaliser_sampled_pairs_is_deterministic(rng):
    X = _blocks(rng, 200, np.float32, dims=(6,))
    a = BaseDistances(n_pairs=500).fit(X).scales_
    b = BaseDistances(n_pairs=500).fit(X).scales_
    exact = BaseDistances().fit(X).scales_
    assert_array_equal(a, b)
    assert_allclose(a, exact, rtol=0.05)  # 500 random pairs estimate the mean


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_diagonal_mode(rng, n_jobs, dtype):
    X = rng.normal(size=(20, 4)).astype(dtype)
    Z = rng.normal(size=(9, 4)).astype(dtype)
    bd = BaseDistances(metrics="chi2").fit(X)  # metrics ignored in diagonal mode
    got = bd.pairwise(X, Z, n_jobs=n_jobs)
    assert got.shape == (20, 9, 4) and bd.diagonal_ and bd.n_base_ == 4
    ref = (X[:, None, :].astype(np.float64) - Z[None, :, :]) ** 2
    assert_allclose(got, ref, rtol=1e-6)


def test_float32_and_float64_blocks_mix(rng):
    X = {"a": rng.random((10, 3)).astype(np.float32), "b": rng.random((10, 2))}
    bd = BaseDistances(normalize="none").fit(X)
    d = bd.pairwise(X)
    assert_allclose(d[..., 0], base_distance(X["a"], X["a"], "l1"), rtol=1e-5)
    assert_allclose(d[..., 1], base_distance(X["b"], X["b"], "l1"), rtol=1e-6)


@pytest.mark.parametrize("metric", ["l1", "l2", "sqeuclidean", "chi2", "hellinger"])
@pytest.mark.parametrize("scale", [1e20, 1e-22])
def test_float32_values_whose_squares_leave_float32(rng, metric, scale):
    # the float32 kernels square differences in float32: such blocks must give
    # the float64 answer (the mean normalisation cancels the scale), not inf/0
    X = rng.random((30, 70)) * scale  # 70 > 64: more than one run of columns
    X32, X64 = {"a": X[:20].astype(np.float32)}, {"a": X[:20]}
    Q32, Q64 = {"a": X[20:].astype(np.float32)}, {"a": X[20:]}
    got = BaseDistances(metrics=metric).fit(X32, n_jobs=2).pairwise(Q32)
    want = BaseDistances(metrics=metric).fit(X64).pairwise(Q64)
    assert np.isfinite(got).all()
    assert_allclose(got, want, rtol=1e-4)
    # a float32 query beyond the range against ordinary training blocks
    bd = BaseDistances(metrics=metric).fit({"a": rng.random((5, 70))})
    q = (rng.random((3, 70)) * 1e18).astype(np.float32)
    assert_allclose(
        bd.pairwise({"a": q}), bd.pairwise({"a": q.astype(np.float64)}), rtol=1e-5
    )


@pytest.mark.parametrize(
    "X, match",
    [
        ({"a": np.array([[np.nan, 1.0]])}, r"X\['a'\] contains NaN"),
        ({"a": np.array([[np.inf, 1.0]])}, r"X\['a'\] contains inf"),
        ({"a": np.ones((3, 2)), "b": np.ones((4, 2))}, "different numbers of rows"),
        ({"a": np.ones(3)}, "must be 2-D"),
        ({"a": np.ones((0, 2))}, r"0 sample\(s\)"),
        ({"a": np.ones((2, 0))}, r"0 feature\(s\)"),
        ({"a": np.array([[1.0, {}]], dtype=object)}, "non-numeric"),
        ({"a": np.array([["x", "y"]])}, "dtype"),
        ({"a": np.ones((2, 2)) * 1j}, "complex"),
        ({}, "empty dict"),
    ],
)
def test_bad_features_raise(X, match):
    with pytest.raises(ValueError, match=match):
        BaseDistances().fit(X)


@pytest.mark.parametrize("metric", ["chi2", "hellinger"])
def test_negative_histograms_raise(metric):
    X = {"h": np.array([[0.5, -0.1], [0.2, 0.3]])}
    with pytest.raises(ValueError, match=r"X\['h'\] has negative values.*" + metric):
        BaseDistances(metrics=metric).fit(X)
    bd = BaseDistances(metrics=metric).fit({"h": np.abs(X["h"])})
    with pytest.raises(ValueError, match=r"Xq\['h'\] has negative values"):
        bd.pairwise(X)


def test_layout_mismatch_at_pairwise():
    bd = BaseDistances().fit({"a": np.ones((3, 2)), "b": np.ones((3, 4))})
    with pytest.raises(ValueError, match=r"missing feature block\(s\) \['b'\]"):
        bd.pairwise({"a": np.ones((3, 2))})
    with pytest.raises(ValueError, match=r"not seen in fit"):
        bd.pairwise({"a": np.ones((3, 2)), "b": np.ones((3, 4)), "c": np.ones((3, 1))})
    with pytest.raises(
        ValueError, match=r"Xq\['b'\] has 3 features, but mtlm is expecting 4"
    ):
        bd.pairwise({"a": np.ones((3, 2)), "b": np.ones((3, 3))})
    with pytest.raises(ValueError, match="single array"):
        bd.pairwise(np.ones((3, 6)))


def test_bad_parameters():
    with pytest.raises(ValueError, match="normalize must be one of"):
        BaseDistances(normalize="sum").fit({"a": np.ones((3, 2))})
    with pytest.raises(ValueError, match=r"metrics\['a'\] must be one of"):
        BaseDistances(metrics={"a": "cosine"}).fit({"a": np.ones((3, 2))})
    with pytest.raises(ValueError, match="not in X"):
        BaseDistances(metrics={"zz": "l1"}).fit({"a": np.ones((3, 2))})
    with pytest.raises(ValueError, match="not fitted"):
        BaseDistances().pairwise({"a": np.ones((3, 2))})
    with pytest.raises(ValueError, match="n_jobs"):
        BaseDistances().fit({"a": np.ones((3, 2))}).pairwise(
            {"a": np.ones((3, 2))}, n_jobs=0
        )

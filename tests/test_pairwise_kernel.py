"""K1 kernels (mtlm_fast._pairwise) against plain numpy/scipy references.

Accuracy asserted here, against a float64 reference:

* float64 input: within 1 ulp of float32 (rtol 2**-23), i.e. the float32 output
  rounding is the only error;
* float32 input: rtol 1e-6.  Each pair's terms are summed in float32 over chunks
  of 64 dims, the chunk sums in float64; with non-negative terms the worst case
  is ~70 float32 roundings (4e-6), the largest error seen on these tests ~3.5e-7.

Every pair is computed with the same arithmetic on every code path, so results
are also checked to be bit-identical across thread counts, SIMD levels, tile and
row splits, and between pairwise_into and paired_into.
"""

import contextlib

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.spatial.distance import cdist

from mtlm_fast import _pairwise

METRICS = {
    "l1": _pairwise.L1,
    "chi2": _pairwise.CHI2,
    "sqeuclidean": _pairwise.SQEUCLIDEAN,
    "l2": _pairwise.L2,
}
RTOL = {np.float32: 1e-6, np.float64: 2.0**-23}
LEVELS = _pairwise.simd_levels()

# (nq, nz, d): 1x1, d=1, d not a multiple of any vector width, nq or nz of 1,
# sizes that are not multiples of the 4-row blocks or of the 8/16-row panels,
# d = chunk +- 1, and Z spanning several tiles (a tile is ~192 KiB of Z).
SHAPES = [
    (1, 1, 1),
    (1, 1, 9),
    (1, 7, 3),
    (6, 1, 5),
    (3, 4, 7),
    (5, 17, 1),
    (7, 9, 13),
    (17, 33, 63),
    (9, 31, 65),
    (4, 16, 64),
    (33, 18, 200),
    (6, 70, 1000),
]


@contextlib.contextmanager
def simd(level):
    old = _pairwise._set_simd_level(level)
    try:
        yield
    finally:
        _pairwise._set_simd_level(old)


def reference(X, Z, metric):
    """Plain float64 numpy: dist(X[i], Z[j]) for every i, j."""
    t = X.astype(np.float64)[:, None, :] - Z.astype(np.float64)[None, :, :]
    if metric == "l1":
        return np.abs(t).sum(-1)
    if metric in ("sqeuclidean", "l2"):
        sq = (t * t).sum(-1)
        return np.sqrt(sq) if metric == "l2" else sq
    s = X.astype(np.float64)[:, None, :] + Z.astype(np.float64)[None, :, :]
    safe = np.where(s > 0, s, 1.0)
    return np.where(s > 0, t * t / safe, 0.0).sum(-1)  # 0/0 counts 0


def make(rng, n, d, dtype, metric):
    """Random rows: non-negative histograms for chi2, signed values otherwise."""
    if metric == "chi2":
        X = rng.random((n, d)) * (rng.random((n, d)) < 0.7)  # with exact zeros
    else:
        X = rng.standard_normal((n, d))
    return X.astype(dtype)


def pairwise(X, Z, metric, scale=1.0, n_threads=1, n_slots=1, f=0):
    out = np.full((X.shape[0], Z.shape[0], n_slots), -7.0, dtype=np.float32)
    _pairwise.pairwise_into(X, Z, out, f, METRICS[metric], scale, n_threads)
    return out


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("metric", list(METRICS))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_pairwise_matches_reference(shape, metric, dtype, n_threads):
    nq, nz, d = shape
    rng = np.random.default_rng(nq * 1000 + nz * 10 + d)
    X, Z = make(rng, nq, d, dtype, metric), make(rng, nz, d, dtype, metric)
    out = pairwise(X, Z, metric, scale=0.37, n_threads=n_threads, n_slots=3, f=1)
    assert_allclose(out[:, :, 1], 0.37 * reference(X, Z, metric), rtol=RTOL[dtype])
    # The other slots are untouched.
    assert (out[:, :, [0, 2]] == -7.0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pairwise_matches_scipy(dtype):
    rng = np.random.default_rng(3)
    X, Z = rng.random((20, 150)).astype(dtype), rng.random((37, 150)).astype(dtype)
    for metric, name in [
        ("l1", "cityblock"),
        ("sqeuclidean", "sqeuclidean"),
        ("l2", "euclidean"),
    ]:
        ref = cdist(X.astype(np.float64), Z.astype(np.float64), name)
        assert_allclose(pairwise(X, Z, metric)[:, :, 0], ref, rtol=RTOL[dtype])


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("metric", list(METRICS))
def test_every_simd_level_matches_reference(level, metric, dtype, rng):
    X, Z = make(rng, 13, 77, dtype, metric), make(rng, 29, 77, dtype, metric)
    with simd(level):
        out = pairwise(X, Z, metric, n_threads=2)
    assert_allclose(out[:, :, 0], reference(X, Z, metric), rtol=RTOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("metric", list(METRICS))
@pytest.mark.parametrize(
    "shape",
    [(3, 5, 7), (45, 37, 129), (130, 1100, 48), (37, 45, 1000)],
    ids=lambda s: "x".join(map(str, s)),
)
def test_bit_identical_across_threads_levels_and_paths(shape, metric, dtype, rng):
    # (130, 1100, 48) splits Z into 2 tiles and the rows into 4 ranges;
    # (37, 45, 1000) has 2 or 3 tiles of 16 or 48 rows.
    nq, nz, d = shape
    X, Z = make(rng, nq, d, dtype, metric), make(rng, nz, d, dtype, metric)
    first = None
    for level in LEVELS:
        with simd(level):
            for n_threads in (1, 2, 3):
                out = pairwise(X, Z, metric, scale=1.7, n_threads=n_threads)
                if first is None:
                    first = out
                assert_array_equal(out, first, err_msg=f"{level}, {n_threads} threads")
    # Fewer than 4 query rows are not packed: same bits all the same.
    for level in LEVELS:
        with simd(level):
            few = pairwise(X[:3], Z, metric, scale=1.7, n_threads=2)
        assert_array_equal(few, first[:3], err_msg=level)
    # Listed pairs give the same bits as the full matrix.
    qidx, pidx = np.divmod(np.arange(nq * nz, dtype=np.intp), nz)
    for level in LEVELS:
        with simd(level):
            for n_threads in (1, 2):
                got = np.full((nq * nz, 2), -7.0, dtype=np.float32)
                _pairwise.paired_into(
                    X, Z, qidx, pidx, got, 1, METRICS[metric], 1.7, n_threads
                )
                assert_array_equal(got[:, 1], first[:, :, 0].ravel(), err_msg=level)
                assert (got[:, 0] == -7.0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("metric", list(METRICS))
def test_identical_rows_give_exactly_zero(metric, dtype):
    rng = np.random.default_rng(2)
    X = make(rng, 23, 101, dtype, metric)
    for level in LEVELS:
        with simd(level):
            out = pairwise(X, X, metric, n_threads=2)[:, :, 0]
        assert (np.diag(out) == 0).all()
        off = out[~np.eye(len(X), dtype=bool)]
        assert (off > 0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chi2_zero_rows_and_zero_bins(dtype):
    rng = np.random.default_rng(4)
    X = rng.random((9, 70)).astype(dtype)
    Z = rng.random((11, 70)).astype(dtype)
    X[[0, 5]] = 0  # zero histograms
    Z[[3, 10]] = 0
    X[:, :20] = 0  # bins empty on both sides: 0/0 terms
    Z[:, :20] = 0
    X[1, 20:40] = 0  # one side only: t^2/s = s
    for level in LEVELS:
        with simd(level):
            out = pairwise(X, Z, "chi2", n_threads=2)[:, :, 0]
        assert np.isfinite(out).all()
        assert_allclose(out, reference(X, Z, "chi2"), rtol=RTOL[dtype])
        assert out[0, 3] == 0 and out[5, 10] == 0  # 0 vs 0 is exactly 0
        # 0 vs z is sum(z) (each term z^2 / z), up to rounding.
        assert_allclose(out[0, 1], Z[1].astype(np.float64).sum(), rtol=RTOL[dtype])


def test_subnormal_and_tiny_chi2_terms_are_finite():
    X = np.array([[0.0, 1e-40, 1e-39, 2.0]], dtype=np.float32)
    Z = np.array([[0.0, 0.0, 1e-39, 1.0]], dtype=np.float32)
    out = pairwise(X, Z, "chi2")[0, 0, 0]
    assert_allclose(out, 1.0 / 3.0, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empty_inputs(dtype):
    Z = np.ones((4, 3), dtype=dtype)
    out = np.empty((0, 4, 1), dtype=np.float32)
    _pairwise.pairwise_into(np.ones((0, 3), dtype=dtype), Z, out, 0, 0, 1.0, 2)
    out = np.empty((4, 0, 1), dtype=np.float32)
    _pairwise.pairwise_into(Z, np.ones((0, 3), dtype=dtype), out, 0, 0, 1.0, 2)
    # d == 0: every distance is 0; the other slot is untouched.
    E = np.ones((3, 0), dtype=dtype)
    for metric in METRICS:
        got = pairwise(E, E[:2], metric, n_slots=2, f=1)
        assert (got[:, :, 1] == 0).all() and (got[:, :, 0] == -7.0).all()


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("metric", list(METRICS))
def test_paired_into_and_mean(metric, dtype, n_threads, level):
    rng = np.random.default_rng(8)
    X = make(rng, 40, 130, dtype, metric)
    qidx = rng.integers(0, 40, 1001).astype(np.intp)  # not a multiple of 8 or 256
    pidx = rng.integers(0, 40, 1001).astype(np.intp)
    ref = reference(X, X, metric)[qidx, pidx]
    out = np.full((1001, 3), -7.0, dtype=np.float32)
    with simd(level):
        _pairwise.paired_into(X, X, qidx, pidx, out, 2, METRICS[metric], 0.5, n_threads)
        mean = _pairwise.paired_mean(X, qidx, pidx, METRICS[metric], n_threads)
        mean1 = _pairwise.paired_mean(X, qidx, pidx, METRICS[metric], 1)
    assert_allclose(out[:, 2], 0.5 * ref, rtol=RTOL[dtype])
    assert (out[:, :2] == -7.0).all()
    assert_allclose(mean, ref.mean(), rtol=1e-6 if dtype == np.float32 else 1e-12)
    assert mean == mean1


def test_paired_empty():
    X = np.ones((3, 4), dtype=np.float32)
    empty = np.empty(0, dtype=np.intp)
    out = np.empty((0, 1), dtype=np.float32)
    _pairwise.paired_into(X, X, empty, empty, out, 0, 0, 1.0, 2)
    assert _pairwise.paired_mean(X, empty, empty, 0, 2) == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_diagonal_into(dtype):
    rng = np.random.default_rng(9)
    X, Z = rng.random((5, 7)).astype(dtype), rng.random((3, 7)).astype(dtype)
    out = np.empty((5, 3, 7), dtype=np.float32)
    _pairwise.diagonal_into(X, Z, out, 2)
    diff = X.astype(np.float64)[:, None] - Z.astype(np.float64)[None]
    assert_allclose(out, diff * diff, rtol=2.0**-23)


def test_simd_level_switch():
    assert _pairwise.simd_level() == LEVELS[-1]  # the best one by default
    assert LEVELS[0] == "scalar"
    with pytest.raises(ValueError, match="not available"):
        _pairwise._set_simd_level("avx512")

"""K2/K5 group k-NN and K6 vote kernels against their numpy twins."""

import numpy as np
import pytest
from _simd import simd
from numpy.testing import assert_allclose, assert_array_equal

from mtlm._neighbourhoods import LabelGroups, union_pool
from mtlm._reference_core import group_knn as ref_group_knn
from mtlm._reference_core import pool_vote as ref_pool_vote
from mtlm_fast import _neighbours, _vote

VOTE_LEVELS = _vote.simd_levels()
VOTE_VECTOR_LEVELS = [lv for lv in VOTE_LEVELS if lv != "scalar"]


def _problem(rng, b=9, n=60, F=4, M=6, dtype=np.float32, quantise=False):
    d = rng.random((b, n, F)).astype(np.float32)
    if quantise:  # many exact ties
        d = np.round(d * 3) / 3
    Y = (rng.random((n, M)) < 0.25).astype(np.uint8)
    Y[:, 0] = 0  # a label with no image
    Y[:3, 1], Y[3:, 1] = 1, 0  # a label with fewer than k images
    return d.astype(np.float32), Y


def _run_group_knn(d, W, Y, k, exclude, n_threads):
    groups = LabelGroups.from_labels(Y)
    b, M = d.shape[0], Y.shape[1]
    idx = np.empty((b, M, k), np.int32)
    dist = np.empty((b, M, k))
    _neighbours.group_knn(
        d,
        np.ascontiguousarray(W),
        groups.ptr,
        groups.idx,
        np.asarray(exclude, np.intp),
        idx,
        dist,
        n_threads,
    )
    return idx, dist


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("quantise", [False, True])
def test_group_knn_matches_reference(rng, n_threads, shared, quantise):
    d, Y = _problem(rng, quantise=quantise)
    W = rng.random((1 if shared else Y.shape[1], d.shape[2]))
    if quantise:
        W[:] = 1.0  # exact ties in D: the lower training index must win
    exclude = rng.integers(-1, d.shape[1], size=d.shape[0])
    idx, dist = _run_group_knn(d, W, Y, 4, exclude, n_threads)
    ref_idx, ref_dist = ref_group_knn(d, W, Y, 4, exclude)
    assert_array_equal(idx, ref_idx)
    assert_allclose(dist, ref_dist, rtol=1e-12)
    assert not np.any(idx == exclude[:, None, None])


def test_group_knn_duplicates_are_neighbours_self_is_not():
    # images 0 and 1 are identical (distance 0), both carry label 0
    d = np.array([[[0.0], [0.0], [0.5]], [[0.0], [0.0], [0.5]]], np.float32)
    Y = np.array([[1], [1], [1]], np.uint8)
    idx, _ = _run_group_knn(d, np.ones((1, 1)), Y, 2, [0, 1], 1)
    assert_array_equal(idx[:, 0], [[1, 2], [0, 2]])


def test_union_pool():
    idx = np.array([[[3, 1], [1, -1]], [[-1, -1], [-1, -1]]], np.int32)
    pool, size = union_pool(idx)
    assert_array_equal(size, [2, 0])
    assert_array_equal(pool[0, :2], [1, 3])


def _run_vote(rng, shared, raw, F, n_threads, taus, k=3):
    d, Y = _problem(rng, F=F)
    M = Y.shape[1]
    W = rng.random((1 if shared else M, d.shape[2]))
    idx, _ = _run_group_knn(d, W, Y, k, np.full(d.shape[0], -1), n_threads)
    pool, size = union_pool(idx)
    out = np.empty((taus.size, d.shape[0], M))
    _vote.pool_vote(
        d, np.ascontiguousarray(W), pool, size, Y, taus, raw, out, n_threads
    )
    pools = [pool[i, : size[i]] for i in range(d.shape[0])]
    return out, (d, W, pools, Y)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("raw", [False, True])
@pytest.mark.parametrize("F", [4, 11, 70])  # 70: wider than the blocked path
def test_pool_vote_matches_reference(rng, n_threads, shared, raw, F):
    taus = np.array([0.1, 1.0, 7.0])
    out, (d, W, pools, Y) = _run_vote(rng, shared, raw, F, n_threads, taus)
    for t, tau in enumerate(taus):
        assert_allclose(
            out[t], ref_pool_vote(d, W, pools, Y, tau, raw), rtol=1e-12, atol=1e-300
        )
    assert np.all(out[:, :, 0] == 0.0)  # the label without images never scores


@pytest.mark.parametrize("level", VOTE_LEVELS)
@pytest.mark.parametrize("k", [1, 2, 5])  # pools of odd and even sizes: lane tails
def test_pool_vote_every_simd_level_matches_reference(rng, level, k):
    taus = np.array([1e-3, 0.3, 50.0])  # deep into exp's range, and flat
    with simd(_vote, level):
        out, (d, W, pools, Y) = _run_vote(rng, False, False, 11, 2, taus, k=k)
    # D's last-bit differences (summation order) are amplified by D / tau ~ 1e3.
    for t, tau in enumerate(taus):
        assert_allclose(
            out[t], ref_pool_vote(d, W, pools, Y, tau, False), rtol=1e-11, atol=1e-300
        )


@pytest.mark.skipif(len(VOTE_VECTOR_LEVELS) < 2, reason="one vector level only")
@pytest.mark.parametrize("n_threads", [1, 2])
def test_pool_vote_vector_levels_give_the_same_bits(global_random_seed, n_threads):
    taus = np.array([0.01, 0.5, 4.0])
    outs = []
    for level in VOTE_VECTOR_LEVELS:
        with simd(_vote, level):
            rng = np.random.default_rng(global_random_seed)
            outs.append(_run_vote(rng, False, True, 11, n_threads, taus)[0])
    for other in outs[1:]:
        assert_array_equal(outs[0], other)


def test_vote_simd_level_switch():
    assert _vote.simd_level() == VOTE_LEVELS[-1]  # the best one by default
    with pytest.raises(ValueError, match="not available"):
        _vote._set_simd_level("avx512")
    with simd(_vote, "scalar"):
        assert _vote.simd_level() == "scalar"
    assert _vote.simd_level() == VOTE_LEVELS[-1]


def test_vote_hand_computed():
    # pool of two images at D = 0 and D = 1 (tau = 1); label 0 on the far one only
    d = np.array([[[0.0], [1.0]]], np.float32)
    Y = np.array([[0, 1], [1, 1]], np.uint8)
    pool = np.array([[0, 1]], np.int32)
    out = np.empty((1, 1, 2))
    _vote.pool_vote(
        d,
        np.ones((1, 1)),
        pool,
        np.array([2]),
        Y,
        np.array([1.0]),
        False,
        out,
        1,
    )
    e = np.exp(-1.0)
    assert_allclose(out[0, 0], [e / (1 + e), 1.0])

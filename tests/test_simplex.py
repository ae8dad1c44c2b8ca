import itertools

import numpy as np
import pytest
from numpy.testing import assert_allclose

from mtlm._simplex import project_capped_simplex, project_simplex


def _face_candidates(v, s):
    # Every support set S: w_S = v_S - theta with sum w_S = s, zero elsewhere.
    F = v.size
    for r in range(1, F + 1):
        for S in itertools.combinations(range(F), r):
            S = list(S)
            theta = (v[S].sum() - s) / len(S)
            w = np.zeros(F)
            w[S] = v[S] - theta
            yield w


def brute_simplex(v, s):
    cands = [w for w in _face_candidates(v, s) if (w >= -1e-12).all()]
    return min(cands, key=lambda w: np.sum((w - v) ** 2))


def brute_capped(v, s):
    cands = [w for w in _face_candidates(v, s) if (w >= -1e-12).all()]
    # Faces strictly inside the cap: w_S = v_S (no multiplier), zero elsewhere.
    F = v.size
    for r in range(0, F + 1):
        for S in itertools.combinations(range(F), r):
            w = np.zeros(F)
            w[list(S)] = v[list(S)]
            if (w >= 0).all() and w.sum() <= s + 1e-12:
                cands.append(w)
    return min(cands, key=lambda w: np.sum((w - v) ** 2))


@pytest.mark.parametrize("s", [0.3, 1.0, 2.5])
def test_simplex_matches_brute_force(rng, s):
    for _ in range(200):
        F = int(rng.integers(1, 7))
        v = rng.normal(scale=rng.choice([0.1, 1.0, 5.0]), size=F)
        got = project_simplex(v, s)
        assert_allclose(got, brute_simplex(v, s), atol=1e-12)
        assert got.min() >= 0 and got.sum() == pytest.approx(s)


@pytest.mark.parametrize("s", [0.3, 1.0, 2.5])
def test_capped_simplex_matches_brute_force(rng, s):
    for _ in range(200):
        F = int(rng.integers(1, 7))
        v = rng.normal(scale=rng.choice([0.1, 1.0, 5.0]), size=F)
        got = project_capped_simplex(v, s)
        assert_allclose(got, brute_capped(v, s), atol=1e-12)
        assert got.min() >= 0 and got.sum() <= s + 1e-12


def test_rows_and_ties(rng):
    V = rng.normal(size=(50, 5))
    V[0] = 0.2  # all equal: the uniform point
    V[1] = [3, 3, -1, -1, -1]  # tie at the top
    got = project_simplex(V, 1.0)
    assert_allclose(got, np.array([brute_simplex(v, 1.0) for v in V]), atol=1e-12)
    assert_allclose(got[0], 0.2)
    assert_allclose(got[1], [0.5, 0.5, 0, 0, 0])
    got = project_capped_simplex(V, 1.0)
    assert_allclose(got, np.array([brute_capped(v, 1.0) for v in V]), atol=1e-12)


def test_bad_sum():
    with pytest.raises(ValueError, match="s must be > 0"):
        project_simplex([1.0, 2.0], 0.0)

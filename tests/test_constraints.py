"""Constraint builder (ALGORITHM.md section 3) on a tiny hand-made case."""

import numpy as np
import pytest

from mtlm._constraints import build_constraints
from mtlm._distances import BaseDistances

# Seven images on a line (diagonal mode: d(q, p) = (x_q - x_p)^2, no ties).
X = np.array([0, 1, 3, 7, 8, 20, 4], dtype=float)[:, None]
# Labels: A = {0, 1, 2}, B = {2, 3, 4}, C = {5} (too small), D = {1, 3};
# image 6 has no label.
GROUPS = [[0, 1, 2], [2, 3, 4], [5], [1, 3]]


def _setup():
    Y = np.zeros((7, 4), dtype=np.uint8)
    for m, members in enumerate(GROUPS):
        Y[members, m] = 1
    bd = BaseDistances().fit(X)
    return bd, bd.check(X), Y


def _canon(pairs):
    """Sorted multiset of (min, max, sign): the store keeps unordered pairs."""
    return sorted((min(q, p), max(q, p), s) for q, p, s in pairs)


def _got(cons, t):
    q, p, s = cons.task_pairs(t)
    return sorted(zip(q.tolist(), p.tolist(), s.tolist()))


# Per-image lists with k = 1, worked out by hand:
#   q=0 (A):   similar {1} (A);          dissimilar {2} (B), {1} (D)  -> 1 in both
#   q=1 (A,D): similar {0} (A), {3} (D); dissimilar {2} (B)
#   q=2 (A,B): similar {1} (A), {3} (B); dissimilar {1} (D)           -> 1 in both
#   q=3 (B,D): similar {4} (B), {1} (D); dissimilar {2} (A)
#   q=4 (B):   similar {3} (B);          dissimilar {2} (A), {3} (D)  -> 3 in both
#   q=5: only label C, which is skipped (|T_C| <= k); q=6: no label.
IMAGE_LISTS = {
    "dissimilar": {
        0: [(0, 1, 1), (0, 2, -1)],
        1: [(1, 0, 1), (1, 3, 1), (1, 2, -1)],
        2: [(2, 1, 1), (2, 3, 1)],
        3: [(3, 4, 1), (3, 1, 1), (3, 2, -1)],
        4: [(4, 3, 1), (4, 2, -1)],
    },
    # No image that carries one of q's labels is dissimilar: here every
    # dissimilar candidate does.
    "shared": {
        0: [(0, 1, 1)],
        1: [(1, 0, 1), (1, 3, 1)],
        2: [(2, 1, 1), (2, 3, 1)],
        3: [(3, 4, 1), (3, 1, 1)],
        4: [(4, 3, 1)],
    },
    "both": {
        0: [(0, 2, -1)],
        1: [(1, 0, 1), (1, 3, 1), (1, 2, -1)],
        2: [(2, 3, 1)],
        3: [(3, 4, 1), (3, 1, 1), (3, 2, -1)],
        4: [(4, 2, -1)],
    },
}


@pytest.mark.parametrize("overlap", ["dissimilar", "both", "shared"])
def test_2pknn_hand_made(overlap):
    bd, P, Y = _setup()
    cons = build_constraints(bd, P, Y, scheme="2pknn", k=1, overlap=overlap)
    lists = IMAGE_LISTS[overlap]
    assert cons.n_tasks == 4
    np.testing.assert_array_equal(cons.active, [True, True, False, True])
    for t, members in enumerate(GROUPS):
        expected = [] if t == 2 else [pr for q in members for pr in lists[q]]
        assert _got(cons, t) == _canon(expected), (overlap, t)
    # Each unordered pair is stored once, with its base distance.
    key = cons.store.q.astype(int) * 7 + cons.store.p
    assert np.unique(key).size == key.size
    assert np.all(cons.store.q < cons.store.p)
    np.testing.assert_array_equal(
        cons.store.d[:, 0], (X[cons.store.q, 0] - X[cons.store.p, 0]) ** 2
    )
    assert cons.pair.dtype == np.int32 and cons.sign.dtype == np.int8


def test_2pknn_image_level():
    bd, P, Y = _setup()
    cons = build_constraints(bd, P, Y, k=1, image_level=True)
    lists = IMAGE_LISTS["dissimilar"]
    assert cons.n_tasks == 1 and cons.active[0]
    assert _got(cons, 0) == _canon([pr for q in range(5) for pr in lists[q]])


def test_label_scheme_hand_made():
    bd, P, Y = _setup()
    cons = build_constraints(bd, P, Y, scheme="label", k_pos=1, k_neg=1)
    # A: q=0 -> +1, -6; q=1 -> +0 (same pair as (0, 1): kept once), -6;
    #    q=2 -> +1, -6.
    assert _got(cons, 0) == _canon(
        [(0, 1, 1), (0, 6, -1), (1, 6, -1), (2, 1, 1), (2, 6, -1)]
    )
    assert _got(cons, 1) == _canon(
        [(2, 3, 1), (2, 6, -1), (3, 4, 1), (3, 6, -1), (4, 6, -1)]
    )
    # D = {1, 3}: q=1 -> +3, -0; q=3 -> +1 (dropped duplicate), -4.
    assert _got(cons, 3) == _canon([(1, 3, 1), (1, 0, -1), (3, 4, -1)])
    # C has a single image: no similar pair, not a task.
    np.testing.assert_array_equal(cons.active, [True, True, False, True])


def test_label_scheme_image_level():
    bd, P, Y = _setup()
    cons = build_constraints(
        bd, P, Y, scheme="label", k_pos=1, k_neg=1, image_level=True
    )
    # Similar: shares a label; image 6 (no label) is never a query.  The
    # similar pairs (1, 0) and (4, 3) repeat (0, 1) and (3, 4): kept once.
    expected = [
        (0, 1, 1),
        (0, 6, -1),
        (1, 6, -1),
        (2, 1, 1),
        (2, 6, -1),
        (3, 4, 1),
        (3, 6, -1),
        (4, 6, -1),
        (5, 4, -1),
    ]
    got = _got(cons, 0)
    assert got == _canon(expected)


def test_no_usable_label():
    bd, P, Y = _setup()
    cons = build_constraints(bd, P, Y, k=5)  # every group has <= 5 images
    assert not cons.active.any()
    assert cons.pair.size == 0 and cons.store.n_pairs == 0


def test_duplicate_image_is_a_neighbour():
    # Image 1 duplicates image 0 (distance 0, another index): a valid neighbour.
    x = np.array([0, 0, 5, 6], dtype=float)[:, None]
    Y = np.array([[1, 0], [1, 0], [1, 1], [0, 1]], dtype=np.uint8)
    bd = BaseDistances().fit(x)
    cons = build_constraints(bd, bd.check(x), Y, k=1)
    assert (0, 1, 1) in _got(cons, 0)


@pytest.mark.parametrize("cap, expected_extra", [(None, [(0, 2, -1)]), (1, [])])
def test_max_dissimilar_keeps_the_nearest(cap, expected_extra):
    # A = {0, 4}, B = {1, 3}, C = {2, 3}; k = 1.
    # q=0: similar {4}; dissimilar {1} (B, d=1) and {2} (C, d=4).
    # q=4: similar {0}; dissimilar {3} (B and C, d=49).
    x = np.array([0, 1, 2, 3, 10], dtype=float)[:, None]
    Y = np.zeros((5, 3), dtype=np.uint8)
    for m, members in enumerate([[0, 4], [1, 3], [2, 3]]):
        Y[members, m] = 1
    bd = BaseDistances().fit(x)
    cons = build_constraints(bd, bd.check(x), Y, k=1, max_dissimilar=cap)
    expected = [(0, 4, 1), (0, 1, -1), (4, 0, 1), (4, 3, -1)] + expected_extra
    assert _got(cons, 0) == _canon(expected)

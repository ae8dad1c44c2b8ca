"""Tests for mtlm.metrics (ALGORITHM.md §6): hand-computed cases, scikit-learn
agreement, sparse input, validation errors and a hypothesis property test."""

import json

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    precision_score,
    recall_score,
)

from mtlm import metrics
from mtlm.metrics import (
    annotation_scores,
    example_f1,
    gmiap,
    mean_average_precision,
    miap,
    per_label_scores,
    top_k_annotation,
)

# --------------------------------------------------------------------------------------
# Hand-computed fixtures
# --------------------------------------------------------------------------------------
# Annotation case: 4 images, 4 labels.
#   label 0: present, partly right      label 1: present, never predicted
#   label 2: absent, but predicted      label 3: present, predicted perfectly
Y_TRUE_A = np.array(
    [
        [1, 0, 0, 1],
        [1, 1, 0, 0],
        [0, 1, 0, 1],
        [1, 0, 0, 0],
    ]
)
Y_PRED_A = np.array(
    [
        [1, 0, 1, 1],
        [0, 0, 1, 0],
        [1, 0, 0, 1],
        [0, 0, 0, 0],
    ]
)
# label 0: Ngt=3 (img 0,1,3), Npred=2 (img 0,2), Nc=1 (img 0) -> P=1/2, R=1/3, F1=2/5
# label 1: Ngt=2, Npred=0, Nc=0 -> P=0 (never predicted), R=0, F1=0
# label 2: Ngt=0, Npred=2, Nc=0 -> P=0, R=0 (undefined, reported 0); not in L_eval
# label 3: Ngt=2 (img 0,2), Npred=2, Nc=2 -> P=1, R=1, F1=1
# L_eval = {0, 1, 3}:
#   P = (1/2 + 0 + 1)/3 = 1/2,  R = (1/3 + 0 + 1)/3 = 4/9
#   F1 = 2PR/(P+R) = (4/9)/(17/18) = 8/17   (mean of F1_m would be (2/5+0+1)/3 = 7/15)
#   N+ = #{0, 3} = 2
# labels="all": P = (1/2+0+0+1)/4 = 3/8, R = (1/3+0+0+1)/4 = 1/3, F1 = 2PR/(P+R) = 6/17
# F-ex (per image, Y vs Ŷ):
#   img0: {0,3} vs {0,2,3}: P=2/3, R=1   -> F=4/5
#   img1: {0,1} vs {2}:     no overlap   -> F=0
#   img2: {1,3} vs {0,3}:   P=1/2, R=1/2 -> F=1/2
#   img3: {0}   vs {}:      P=0, R=0     -> F=0
#   F-ex = (4/5 + 0 + 1/2 + 0)/4 = 13/40

# Ranking case: 5 images, 3 labels; label 2 is absent from Y_true.
Y_TRUE_R = np.array(
    [
        [0, 1, 0],
        [0, 0, 0],
        [1, 0, 0],
        [1, 0, 0],
        [0, 1, 0],
    ]
)
S_R = np.array(
    [
        [0.5, 0.3, 0.1],
        [0.9, 0.3, 0.2],
        [0.5, 0.3, 0.3],
        [0.5, 0.3, 0.4],
        [0.1, 0.3, 0.5],
    ]
)
# label 0: ranking img1 (0.9), the 0.5-ties in index order img0, img2, img3, then img4
#   relevance by rank: 0 0 1 1 0; Prec@k = 0, 0, 1/3, 1/2, 2/5
#   AP = (1/3 + 1/2)/2 = 5/12  (ties to the higher index: (1/2 + 2/3)/2 = 7/12)
#   iP(k) = max_{j>=k} Prec@j: iP(3) = iP(4) = 1/2 -> iAP = 1/2  (interpolation matters)
# label 1: all tied, so index order; relevance 1 0 0 0 1; Prec@1 = 1, Prec@5 = 2/5
#   AP = (1 + 2/5)/2 = 7/10;  iP(1) = 1, iP(5) = 2/5 -> iAP = 7/10
# label 2: no positive: AP = iAP = 0, outside L_eval
# MAP = (5/12 + 7/10)/2 = 67/120,  MiAP = (1/2 + 7/10)/2 = 3/5,  GMiAP = sqrt(7/20)
AP_R = np.array([5 / 12, 7 / 10, 0.0])
IAP_R = np.array([1 / 2, 7 / 10, 0.0])


def random_case(seed, n=60, n_labels=12, density=0.2):
    """Random Y_true (label 0 absent), continuous scores and their top-3 annotation."""
    rng = np.random.default_rng(seed)
    Y_true = (rng.random((n, n_labels)) < density).astype(np.uint8)
    Y_true[:, 0] = 0
    Y_true[0, 1:] = 1  # every other label is present
    scores = rng.random((n, n_labels))
    return Y_true, top_k_annotation(scores, 3), scores


# --------------------------------------------------------------------------------------
# top_k_annotation
# --------------------------------------------------------------------------------------
def test_top_k_ties_go_to_lower_label_index():
    scores = np.array(
        [
            [0.2, 0.9, 0.2, 0.1, 0.2],  # 0.9 at 1, then the 0.2-ties at 0, 2, 4
            [0.0, 0.0, 0.0, 0.0, 0.0],  # all tied: first labels
            [0.1, 0.2, 0.3, 0.4, 0.5],  # strictly increasing: last labels
        ]
    )
    assert_array_equal(
        top_k_annotation(scores, 2), [[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 0, 1, 1]]
    )
    assert_array_equal(
        top_k_annotation(scores, 3), [[1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [0, 0, 1, 1, 1]]
    )


def test_top_k_dtype_count_and_k_above_n_labels():
    scores = np.random.default_rng(0).random((7, 4))
    Y = top_k_annotation(scores, 3)
    assert Y.dtype == np.uint8 and Y.shape == (7, 4)
    assert_array_equal(Y.sum(axis=1), 3)
    assert_array_equal(top_k_annotation(scores, 10), np.ones((7, 4)))
    assert_array_equal(top_k_annotation(scores, np.int64(1)).sum(axis=1), 1)


def test_top_k_matches_lexsort_reference_with_many_ties(global_random_seed):
    rng = np.random.default_rng(global_random_seed)
    scores = rng.integers(0, 4, size=(50, 9)).astype(np.float64)  # heavy ties
    expected = np.zeros(scores.shape, dtype=np.uint8)
    for i, row in enumerate(scores):
        order = np.lexsort((np.arange(row.size), -row))  # by -score, then index
        expected[i, order[:4]] = 1
    assert_array_equal(top_k_annotation(scores, 4), expected)


def test_top_k_integer_scores_at_dtype_extremes():
    # Negating these would overflow; the stable flip-sort must not.
    i64 = np.iinfo(np.int64)
    scores = np.array([[i64.min, i64.max, i64.min, 0]])
    assert_array_equal(top_k_annotation(scores, 2), [[0, 1, 0, 1]])
    assert_array_equal(top_k_annotation(scores, 3), [[1, 1, 0, 1]])
    u8 = np.array([[0, 255, 255, 7]], dtype=np.uint8)
    assert_array_equal(top_k_annotation(u8, 1), [[0, 1, 0, 0]])


# --------------------------------------------------------------------------------------
# per_label_scores / annotation_scores (P, R, F1, N+)
# --------------------------------------------------------------------------------------
def test_per_label_scores_hand_computed():
    per = per_label_scores(Y_TRUE_A, Y_PRED_A)
    assert_array_equal(per["Ngt"], [3, 2, 0, 2])
    assert_array_equal(per["Npred"], [2, 0, 2, 2])
    assert_array_equal(per["Nc"], [1, 0, 0, 2])
    assert_allclose(per["P"], [1 / 2, 0, 0, 1])
    assert_allclose(per["R"], [1 / 3, 0, 0, 1])
    assert_allclose(per["F1"], [2 / 5, 0, 0, 1])
    assert per["Ngt"].dtype == np.int64 and per["P"].dtype == np.float64


def test_annotation_scores_hand_computed():
    s = annotation_scores(Y_TRUE_A, Y_PRED_A)
    assert set(s) == {"P", "R", "F1", "N+", "n_labels", "F-ex"}
    assert s["P"] == pytest.approx(1 / 2)
    assert s["R"] == pytest.approx(4 / 9)
    assert s["F1"] == pytest.approx(8 / 17)  # from the means ...
    assert s["F1"] != pytest.approx(7 / 15)  # ... not the mean of per-label F1s
    assert s["N+"] == 2
    assert s["n_labels"] == 3
    assert s["F-ex"] == pytest.approx(13 / 40)


def test_annotation_scores_all_labels_and_explicit_selection():
    s = annotation_scores(Y_TRUE_A, Y_PRED_A, labels="all")
    assert s["P"] == pytest.approx(3 / 8)
    assert s["R"] == pytest.approx(1 / 3)
    assert s["F1"] == pytest.approx(6 / 17)  # 2 (3/8)(1/3) / (3/8 + 1/3)
    assert (s["N+"], s["n_labels"]) == (2, 4)
    assert s["F-ex"] == pytest.approx(13 / 40)  # example-based: independent of labels
    # L_eval given explicitly, as a mask or as indices, is the default.
    default = annotation_scores(Y_TRUE_A, Y_PRED_A)
    mask = np.array([True, True, False, True])
    assert annotation_scores(Y_TRUE_A, Y_PRED_A, labels=mask) == default
    assert annotation_scores(Y_TRUE_A, Y_PRED_A, labels=[0, 1, 3]) == default
    # Only label 3: P = R = F1 = 1.
    only3 = annotation_scores(Y_TRUE_A, Y_PRED_A, labels=[3])
    assert (only3["P"], only3["R"], only3["F1"], only3["N+"]) == (1.0, 1.0, 1.0, 1)


def test_f1_is_zero_when_precision_and_recall_are_zero():
    # Two present labels, predictions only on the absent label 2: P = R = 0 -> F1 = 0.
    Y_true = [[1, 0, 0], [0, 1, 0]]
    Y_pred = [[0, 0, 1], [0, 0, 1]]
    s = annotation_scores(Y_true, Y_pred)
    assert (s["P"], s["R"], s["F1"], s["N+"]) == (0.0, 0.0, 0.0, 0)


def test_annotation_scores_is_json_serialisable_python_scalars():
    s = annotation_scores(Y_TRUE_R, top_k_annotation(S_R, 1), S_R)
    assert json.loads(json.dumps(s)) == s
    for key, value in s.items():
        expected = int if key in ("N+", "n_labels") else float
        assert type(value) is expected, key


def test_per_label_scores_match_sklearn(global_random_seed):
    Y_true, Y_pred, _ = random_case(global_random_seed)
    per = per_label_scores(Y_true, Y_pred)
    kw = {"average": None, "zero_division": 0}
    assert_allclose(per["P"], precision_score(Y_true, Y_pred, **kw))
    assert_allclose(per["R"], recall_score(Y_true, Y_pred, **kw))
    assert_allclose(per["F1"], f1_score(Y_true, Y_pred, **kw))
    present = Y_true.sum(axis=0) > 0
    s = annotation_scores(Y_true, Y_pred)
    assert s["P"] == pytest.approx(
        precision_score(Y_true, Y_pred, **kw)[present].mean()
    )
    assert s["R"] == pytest.approx(recall_score(Y_true, Y_pred, **kw)[present].mean())
    assert s["n_labels"] == present.sum() == Y_true.shape[1] - 1


# --------------------------------------------------------------------------------------
# MAP, MiAP, GMiAP
# --------------------------------------------------------------------------------------
def test_map_hand_computed_with_ties():
    value, ap = mean_average_precision(Y_TRUE_R, S_R, return_per_label=True)
    assert_allclose(ap, AP_R)
    assert value == pytest.approx(67 / 120)
    assert mean_average_precision(Y_TRUE_R, S_R) == value
    # Over all labels the absent one counts as AP = 0.
    assert mean_average_precision(Y_TRUE_R, S_R, labels="all") == pytest.approx(
        (5 / 12 + 7 / 10) / 3
    )


def test_map_ties_depend_on_image_order():
    # Reversing the image order puts the relevant tied images first for label 0:
    # relevance by rank 0 1 1 0 0 -> AP = (1/2 + 2/3)/2 = 7/12.
    _, ap = mean_average_precision(Y_TRUE_R[::-1], S_R[::-1], return_per_label=True)
    assert ap[0] == pytest.approx(7 / 12)


def test_miap_differs_from_map_when_interpolation_matters():
    value, iap = miap(Y_TRUE_R, S_R, return_per_label=True)
    assert_allclose(iap, IAP_R)
    assert value == pytest.approx(3 / 5)
    assert value > mean_average_precision(Y_TRUE_R, S_R)


def test_gmiap_hand_computed_and_with_a_zero_iap():
    assert gmiap(Y_TRUE_R, S_R) == pytest.approx(np.sqrt(0.5 * 0.7))
    # With labels="all" the absent label has iAP = 0, floored at 1e-12:
    # GMiAP = (1/2 * 7/10 * 1e-12) ** (1/3).
    assert gmiap(Y_TRUE_R, S_R, labels="all") == pytest.approx(
        (0.5 * 0.7 * 1e-12) ** (1 / 3)
    )
    assert gmiap(Y_TRUE_R, S_R, labels="all", eps=1e-3) == pytest.approx(
        (0.5 * 0.7 * 1e-3) ** (1 / 3)
    )


def test_annotation_scores_with_scores_adds_ranking_measures():
    # Top-1 per image: img0..3 -> label 0 (0.5, 0.9, 0.5, 0.5 are their maxima),
    # img4 -> label 2 (0.5).
    Y_pred = top_k_annotation(S_R, 1)
    assert_array_equal(Y_pred.argmax(axis=1), [0, 0, 0, 0, 2])
    s = annotation_scores(Y_TRUE_R, Y_pred, S_R)
    assert s["MAP"] == pytest.approx(67 / 120)
    assert s["MiAP"] == pytest.approx(3 / 5)
    assert s["GMiAP"] == pytest.approx(np.sqrt(0.35))
    # L_eval = {0, 1}. label 0: predicted on img0..3, correct on img2, img3 -> P = 1/2,
    # R = 1. label 1: never predicted -> P = R = 0. So P = 1/4, R = 1/2, N+ = 1.
    assert (s["P"], s["R"], s["N+"]) == (pytest.approx(1 / 4), pytest.approx(1 / 2), 1)
    s_all = annotation_scores(Y_TRUE_R, Y_pred, S_R, labels="all")
    assert s_all["MAP"] == pytest.approx((5 / 12 + 7 / 10) / 3)


def test_map_over_labels_with_positive_recall():
    # TagProp's MAP over {R_m > 0} via a mask: only label 0 has R_m > 0 above.
    Y_pred = top_k_annotation(S_R, 1)
    mask = per_label_scores(Y_TRUE_R, Y_pred)["R"] > 0
    assert_array_equal(mask, [True, False, False])
    assert mean_average_precision(Y_TRUE_R, S_R, labels=mask) == pytest.approx(5 / 12)


def test_average_precision_matches_sklearn_without_ties(global_random_seed):
    Y_true, _, scores = random_case(global_random_seed)
    assert all(np.unique(col).size == col.size for col in scores.T)  # no ties
    value, ap = mean_average_precision(Y_true, scores, return_per_label=True)
    present = np.flatnonzero(Y_true.sum(axis=0) > 0)
    expected = [average_precision_score(Y_true[:, m], scores[:, m]) for m in present]
    assert_allclose(ap[present], expected, rtol=1e-12)
    assert ap[0] == 0.0
    assert value == pytest.approx(np.mean(expected), rel=1e-12)


def test_miap_matches_loop_reference(rng):
    Y_true = (rng.random((40, 6)) < 0.3).astype(int)
    Y_true[0] = 1
    scores = rng.integers(0, 5, size=(40, 6))  # integer scores with ties
    expected_ap, expected_iap = [], []
    for m in range(6):
        order = np.lexsort((np.arange(40), -scores[:, m]))  # ties to the lower index
        rel = Y_true[order, m]
        prec = np.cumsum(rel) / np.arange(1, 41)
        iprec = [prec[k:].max() for k in range(40)]
        expected_ap.append(sum(prec[k] for k in range(40) if rel[k]) / rel.sum())
        expected_iap.append(sum(iprec[k] for k in range(40) if rel[k]) / rel.sum())
    assert_allclose(
        mean_average_precision(Y_true, scores, return_per_label=True)[1], expected_ap
    )
    assert_allclose(miap(Y_true, scores, return_per_label=True)[1], expected_iap)
    assert gmiap(Y_true, scores) == pytest.approx(np.exp(np.mean(np.log(expected_iap))))


def test_ranking_is_independent_of_the_label_block_size(monkeypatch):
    Y_true, _, scores = random_case(3, n=30, n_labels=10)
    scores = np.round(scores, 1)  # ties
    full = (
        miap(Y_true, scores, return_per_label=True)[1],
        mean_average_precision(Y_true, scores, return_per_label=True)[1],
    )
    monkeypatch.setattr(metrics, "_BLOCK_CELLS", 30 * 3)  # blocks of 3 labels
    blocked = (
        miap(Y_true, scores, return_per_label=True)[1],
        mean_average_precision(Y_true, scores, return_per_label=True)[1],
    )
    assert_array_equal(full[0], blocked[0])
    assert_array_equal(full[1], blocked[1])


# --------------------------------------------------------------------------------------
# F-ex
# --------------------------------------------------------------------------------------
def test_example_f1_empty_set_conventions():
    Y_true = [[0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 1, 0]]
    Y_pred = [[0, 0, 0], [0, 1, 0], [0, 0, 0], [0, 1, 1]]
    # img0: Y = {}, Ŷ = {}        -> F = 1 (convention)
    # img1: Y = {}, Ŷ = {1}       -> F = 0 (convention)
    # img2: Y = {0}, Ŷ = {}       -> P = 0 (empty prediction), R = 0 -> F = 0
    # img3: Y = {0,1}, Ŷ = {1,2}  -> P = 1/2, R = 1/2 -> F = 1/2
    # F-ex = (1 + 0 + 0 + 1/2)/4 = 3/8
    assert example_f1(Y_true, Y_pred) == pytest.approx(3 / 8)
    assert example_f1(Y_TRUE_A, Y_PRED_A) == pytest.approx(13 / 40)


def test_example_f1_matches_sklearn_samples_average_on_nonempty_rows():
    # sklearn's "samples" F1 is the same per-image F1 when no true set is empty.
    Y_true, Y_pred, _ = random_case(4)
    Y_true[:, 1] = 1
    assert example_f1(Y_true, Y_pred) == pytest.approx(
        f1_score(Y_true, Y_pred, average="samples", zero_division=0)
    )


# --------------------------------------------------------------------------------------
# Sparse input
# --------------------------------------------------------------------------------------
SPARSE_FORMATS = [
    sp.csr_matrix,
    sp.csr_array,
    sp.csc_matrix,
    sp.coo_array,
    sp.lil_matrix,
]


@pytest.mark.parametrize("fmt", SPARSE_FORMATS)
@pytest.mark.parametrize("which", ["both", "true", "pred"])
def test_sparse_input_matches_dense(fmt, which):
    Y_true, Y_pred, scores = random_case(5)
    Yt = fmt(Y_true) if which in ("both", "true") else Y_true
    Yp = fmt(Y_pred) if which in ("both", "pred") else Y_pred
    assert annotation_scores(Yt, Yp, scores) == annotation_scores(
        Y_true, Y_pred, scores
    )
    dense, sparse = per_label_scores(Y_true, Y_pred), per_label_scores(Yt, Yp)
    for key in dense:
        assert_array_equal(sparse[key], dense[key])
    assert example_f1(Yt, Yp) == example_f1(Y_true, Y_pred)
    assert mean_average_precision(Yt, scores) == mean_average_precision(Y_true, scores)
    assert miap(Yt, scores) == miap(Y_true, scores)
    assert gmiap(Yt, scores) == gmiap(Y_true, scores)


def test_sparse_explicit_zeros_are_zeros_and_sparse_scores_are_densified():
    # An explicitly stored 0 is a 0; a sparse scores matrix has implicit zeros.
    Yt = sp.csr_array(
        (np.array([1, 0, 1]), (np.array([0, 1, 2]), np.array([0, 0, 1]))), shape=(3, 2)
    )
    assert_array_equal(per_label_scores(Yt, Yt)["Ngt"], [1, 1])
    S = sp.csr_array(S_R)
    assert mean_average_precision(Y_TRUE_R, S) == mean_average_precision(Y_TRUE_R, S_R)
    assert_array_equal(top_k_annotation(S, 2), top_k_annotation(S_R, 2))


def test_bool_and_float_inputs_match_int():
    b = annotation_scores(Y_TRUE_A.astype(bool), Y_PRED_A.astype(float))
    assert b == annotation_scores(Y_TRUE_A, Y_PRED_A)


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "Y_true, Y_pred, match",
    [
        (np.ones((3, 2)), np.ones((3, 3)), r"Y_true and Y_pred have different shapes"),
        (np.ones((3, 2)), np.ones((2, 2)), r"Y_true and Y_pred have different shapes"),
        ([[2, 0]], [[1, 0]], r"Y_true must hold only 0/1 values; found 2"),
        ([[1, 0]], [[0.5, 0]], r"Y_pred must hold only 0/1 values; found 0.5"),
        ([[np.nan, 0]], [[1, 0]], r"Y_true must hold only 0/1 values; found nan"),
        ([[-1, 1]], [[1, 0]], r"Y_true must hold only 0/1 values; found -1"),
        ([["a", "b"]], [[1, 0]], r"Y_true must hold 0/1 values; got dtype <U1"),
        ([1, 0, 1], [1, 0, 1], r"Y_true must be 2-D \(n_images, n_labels\); got 1-D"),
        ([[1]], np.ones((1, 1, 1)), r"Y_pred must be 2-D .*got 3-D"),
        (np.zeros((0, 3)), np.zeros((0, 3)), r"Y_true is empty: shape \(0, 3\)"),
        ([[1, 1]], np.zeros((1, 0)), r"Y_pred is empty: shape \(1, 0\)"),
        (sp.csr_array(np.full((2, 2), 2)), np.ones((2, 2)), r"Y_true .* found 2"),
        (
            sp.coo_array(([1, 1], ([0, 0], [0, 0])), shape=(1, 2)),
            [[1, 0]],
            r"Y_true .* found 2",
        ),  # duplicate entries add up to 2
        (np.zeros((1, 2)), sp.csr_array(np.zeros((1, 3))), r"different shapes"),
        ([[1, 0], [1]], [[1, 0], [1, 0]], r"Y_true cannot be read as an array"),
    ],
)
def test_invalid_binary_inputs(Y_true, Y_pred, match):
    for func in (per_label_scores, annotation_scores, example_f1):
        with pytest.raises(ValueError, match=match):
            func(Y_true, Y_pred)


@pytest.mark.parametrize(
    "scores, match",
    [
        ([[np.nan, 0.1], [0.2, 0.3]], r"scores contains NaN or infinite values"),
        ([[np.inf, 0.1], [0.2, 0.3]], r"scores contains NaN or infinite values"),
        ([[-np.inf, 0.1], [0.2, 0.3]], r"scores contains NaN or infinite values"),
        (
            [[0.1, 0.2, 0.3], [0.2, 0.3, 0.4]],
            r"Y_true and scores have different shapes",
        ),
        ([0.1, 0.2], r"scores must be 2-D"),
        (np.zeros((2, 0)), r"scores is empty"),
        ([[1j, 0], [0, 0]], r"scores must be real numbers; got dtype complex128"),
        ([[0.1, 0.2], [0.3]], r"scores cannot be read as an array"),
    ],
)
def test_invalid_scores(scores, match):
    Y_true = [[1, 0], [0, 1]]
    for func in (mean_average_precision, miap, gmiap):
        with pytest.raises(ValueError, match=match):
            func(Y_true, scores)
    with pytest.raises(ValueError, match=match):
        annotation_scores(Y_true, Y_true, scores)


def test_top_k_invalid_scores():
    with pytest.raises(ValueError, match=r"scores contains NaN or infinite values"):
        top_k_annotation([[np.nan, 1.0]], 1)
    with pytest.raises(ValueError, match=r"scores must be 2-D"):
        top_k_annotation([1.0, 2.0], 1)


@pytest.mark.parametrize("k", [0, -1, 2.5, "3", True, None])
def test_top_k_invalid_k(k):
    with pytest.raises(ValueError, match=r"k must be a positive integer"):
        top_k_annotation([[0.1, 0.2]], k)


def test_no_positive_label_is_an_error_not_nan():
    Y_true = np.zeros((3, 2))
    match = r"Y_true has no positive entry, so no label can be evaluated"
    with pytest.raises(ValueError, match=match):
        annotation_scores(Y_true, np.ones((3, 2)))
    for func in (mean_average_precision, miap, gmiap):
        with pytest.raises(ValueError, match=match):
            func(Y_true, np.ones((3, 2)))
    # labels="all" is well defined (every label counts 0), and F-ex needs no label.
    s = annotation_scores(Y_true, np.zeros((3, 2)), labels="all")
    assert (s["P"], s["R"], s["F1"], s["N+"], s["F-ex"]) == (0.0, 0.0, 0.0, 0, 1.0)


@pytest.mark.parametrize(
    "labels, match",
    [
        ("some", r"labels must be 'present', 'all', a boolean mask or label indices"),
        ([True, False], r"labels as a boolean mask must have shape \(3,\); got \(2,\)"),
        ([0, 3], r"labels as indices must lie in \[0, 3\); got values in \[0, 3\]"),
        ([-1], r"labels as indices must lie in \[0, 3\)"),
        ([0.5], r"labels must be .* got dtype float64"),
        ([[0, 1]], r"labels must be .* shape \(1, 2\)"),
        ([False, False, False], r"labels selects no label"),
        (np.array([], dtype=int), r"labels selects no label"),
    ],
)
def test_invalid_labels(labels, match):
    with pytest.raises(ValueError, match=match):
        annotation_scores(Y_TRUE_R, Y_TRUE_R, S_R, labels=labels)
    with pytest.raises(ValueError, match=match):
        mean_average_precision(Y_TRUE_R, S_R, labels=labels)


@pytest.mark.parametrize("eps", [0, -1e-12, 1.5, np.nan, "1e-12", True])
def test_gmiap_invalid_eps(eps):
    with pytest.raises(ValueError, match=r"eps must be a real number in \(0, 1\]"):
        gmiap(Y_TRUE_R, S_R, eps=eps)


# --------------------------------------------------------------------------------------
# Property test
# --------------------------------------------------------------------------------------
@st.composite
def annotation_problems(draw):
    n = draw(st.integers(1, 8))
    n_labels = draw(st.integers(1, 6))
    Y_true = draw(hnp.arrays(np.uint8, (n, n_labels), elements=st.integers(0, 1)))
    Y_pred = draw(hnp.arrays(np.uint8, (n, n_labels), elements=st.integers(0, 1)))
    # Few distinct values so that ties are common.
    scores = draw(
        hnp.arrays(
            np.float64,
            (n, n_labels),
            elements=st.sampled_from([-1.0, 0.0, 0.25, 1.0, 3.5]),
        )
    )
    labels = draw(st.sampled_from(["present", "all"]))
    return Y_true, Y_pred, scores, labels


# Example count and derandomisation come from the hypothesis profile (conftest.py).
@given(annotation_problems())
def test_measures_are_bounded(problem):
    Y_true, Y_pred, scores, labels = problem
    if labels == "present" and not Y_true.any():
        with pytest.raises(ValueError, match="no positive entry"):
            annotation_scores(Y_true, Y_pred, scores, labels=labels)
        return
    s = annotation_scores(Y_true, Y_pred, scores, labels=labels)
    for key in ("P", "R", "F1", "F-ex", "MAP", "MiAP", "GMiAP"):
        assert 0.0 <= s[key] <= 1.0, key
    assert 0 <= s["N+"] <= s["n_labels"] <= Y_true.shape[1]
    assert s["MiAP"] >= s["MAP"] - 1e-12  # iP(k) >= Prec@k
    # geometric <= arithmetic mean, of the floored iAPs: GMiAP <= MiAP + eps
    assert s["GMiAP"] <= s["MiAP"] + 2e-12
    per = per_label_scores(Y_true, Y_pred)
    for key in ("P", "R", "F1"):
        assert np.all((per[key] >= 0) & (per[key] <= 1)), key
    assert s["F1"] <= max(s["P"], s["R"]) + 1e-12
    # Every label with a positive has AP > 0 (some relevant rank has Prec@k >= 1/n).
    ap = mean_average_precision(Y_true, scores, labels="all", return_per_label=True)[1]
    assert np.all(ap[Y_true.sum(axis=0) > 0] >= 1 / Y_true.shape[0] - 1e-12)

"""Evaluation measures for image annotation (``ALGORITHM.md`` §6).

Notation: ``Y_true`` and ``Y_pred`` are binary ``(n_images, n_labels)`` matrices (dense
or scipy sparse), ``scores`` is a dense real ``(n_images, n_labels)`` matrix. For label
``m``:

- ``Ngt_m``: images whose ground truth contains ``m``;
- ``Npred_m``: images annotated with ``m``;
- ``Nc_m``: images annotated with ``m`` correctly.

``L_eval`` is the set of labels with ``Ngt_m > 0`` (``labels="present"``, the default
everywhere). Label-based measures are means over ``L_eval``; the example-based F-ex is a
mean over images.

Label-based, from a binary annotation (usually :func:`top_k_annotation` with ``k=5``):

- ``P_m = Nc_m / Npred_m`` (0 if ``Npred_m = 0``), ``R_m = Nc_m / Ngt_m``;
- ``P`` and ``R`` are the means of ``P_m`` and ``R_m``, ``F1 = 2PR / (P + R)`` is taken
  from those two means (0 if both are 0), ``N+ = #{m : R_m > 0}``.

Label-based, from scores (per-label retrieval; images ranked by score, descending,
ties to the lower image index):

- ``MAP``: mean of ``AP_m = (1/Ngt_m) sum_{relevant k} Prec@k``;
- ``MiAP`` / ``GMiAP`` (ImageCLEF 2011): arithmetic / geometric mean of the interpolated
  ``iAP_m = (1/Ngt_m) sum_{relevant k} max_{j >= k} Prec@j``.

Example-based: ``F-ex``, the mean over images of the F1 of predicted versus true sets.

Every function validates its input and raises ``ValueError`` naming the argument. All
computations are vectorised numpy/scipy; nothing here is a hot kernel.
"""

import numbers

import numpy as np
import scipy.sparse as sp

__all__ = [
    "annotation_scores",
    "example_f1",
    "gmiap",
    "mean_average_precision",
    "miap",
    "per_label_scores",
    "threshold_annotation",
    "top_k_annotation",
]

# Ranking measures work on blocks of labels of about this many (image, label) cells,
# so that their n x block temporaries stay near 30 MB whatever the data set size.
_BLOCK_CELLS = 1 << 20


# --------------------------------------------------------------------------------------
# Validation here, not via _validation.check_label_matrix: it keeps sparse Y sparse
# --------------------------------------------------------------------------------------
def _check_2d_shape(shape, name):
    if len(shape) != 2:
        raise ValueError(
            f"{name} must be 2-D (n_images, n_labels); got {len(shape)}-D."
        )
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(shape)}.")


def _as_array(value, name):
    if np.ma.isMaskedArray(value) and np.ma.is_masked(value):
        # np.asarray would drop the mask and score the hidden values
        raise ValueError(
            f"{name} is a masked array with masked entries; fill or drop them first."
        )
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged lists and the like
        raise ValueError(f"{name} cannot be read as an array: {exc}") from exc


def _check_binary(Y, name):
    """Return ``Y`` as a dense bool array, or a CSR array whose stored values are 1."""
    if sp.issparse(Y):
        _check_2d_shape(Y.shape, name)
        if Y.dtype.kind not in "biuf":
            raise ValueError(f"{name} must hold 0/1 values; got dtype {Y.dtype}.")
        Y = sp.csr_array(Y, copy=True)
        Y.sum_duplicates()  # duplicate (i, j) entries add up, as in scipy
        Y.eliminate_zeros()
        if not np.all(Y.data == 1):
            bad = Y.data[Y.data != 1][0].item()
            raise ValueError(f"{name} must hold only 0/1 values; found {bad!r}.")
        Y.data = np.ones_like(Y.data, dtype=np.int8)
        return Y
    Y = _as_array(Y, name)
    _check_2d_shape(Y.shape, name)
    if Y.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold 0/1 values; got dtype {Y.dtype}.")
    if Y.dtype.kind != "b":
        ok = (Y == 0) | (Y == 1)
        if not ok.all():
            bad = Y[~ok].flat[0].item()
            raise ValueError(f"{name} must hold only 0/1 values; found {bad!r}.")
    return Y.astype(bool, copy=False)


def _check_scores(scores, name="scores"):
    """Return ``scores`` as a dense real array with finite values (dtype kept)."""
    if sp.issparse(scores):
        _check_2d_shape(scores.shape, name)
        scores = scores.toarray()
    scores = _as_array(scores, name)
    _check_2d_shape(scores.shape, name)
    if scores.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be real numbers; got dtype {scores.dtype}.")
    if scores.dtype.kind == "f" and not np.isfinite(scores).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    return scores


def _check_same_shape(A, B, name_a, name_b):
    if A.shape != B.shape:
        raise ValueError(
            f"{name_a} and {name_b} have different shapes: {tuple(A.shape)} and "
            f"{tuple(B.shape)}."
        )


def _label_mask(labels, ngt):
    """Boolean mask over labels for ``labels="present"|"all"|mask|indices``."""
    n_labels = ngt.shape[0]
    if isinstance(labels, str):
        if labels == "present":
            mask = ngt > 0
            if not mask.any():
                raise ValueError(
                    "Y_true has no positive entry, so no label can be evaluated "
                    "(labels='present' keeps the labels with at least one positive)."
                )
            return mask
        if labels == "all":
            return np.ones(n_labels, dtype=bool)
        raise ValueError(
            f"labels must be 'present', 'all', a boolean mask or label indices; "
            f"got {labels!r}."
        )
    arr = np.asarray(labels)
    if arr.dtype.kind == "b":
        if arr.shape != (n_labels,):
            raise ValueError(
                f"labels as a boolean mask must have shape ({n_labels},); "
                f"got {arr.shape}."
            )
        mask = arr.copy()
    elif arr.dtype.kind in "iu" and arr.ndim == 1:
        if arr.size and (arr.min() < 0 or arr.max() >= n_labels):
            raise ValueError(
                f"labels as indices must lie in [0, {n_labels}); "
                f"got values in [{arr.min()}, {arr.max()}]."
            )
        mask = np.zeros(n_labels, dtype=bool)
        mask[arr] = True
    else:
        raise ValueError(
            "labels must be 'present', 'all', a boolean mask of shape "
            f"({n_labels},) or a 1-D array of label indices; got dtype {arr.dtype}, "
            f"shape {arr.shape}."
        )
    if not mask.any():
        raise ValueError("labels selects no label.")
    return mask


# --------------------------------------------------------------------------------------
# Counting helpers (dense bool or CSR with unit data)
# --------------------------------------------------------------------------------------
def _sum(Y, axis):
    if sp.issparse(Y):
        return np.asarray(Y.sum(axis=axis, dtype=np.int64)).ravel()
    return Y.sum(axis=axis, dtype=np.int64)


def _intersection(A, B):
    """Elementwise AND of two validated binary matrices (sparse if either one is)."""
    if sp.issparse(A):
        return sp.csr_array(A.multiply(B))
    if sp.issparse(B):
        return sp.csr_array(B.multiply(A))
    return A & B


def _safe_div(num, den):
    """``num / den`` elementwise, 0 where ``den == 0``."""
    num = np.asarray(num, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=np.asarray(den) != 0)
    return out


def _f1(p, r):
    """``2pr / (p + r)``, 0 where ``p + r == 0``."""
    return _safe_div(2.0 * np.asarray(p) * np.asarray(r), np.asarray(p) + np.asarray(r))


def _argsort_desc_stable(a, axis):
    """Indices sorting ``a`` descending along ``axis``, ties to the lower index.

    Sorts the flipped array ascending with a stable sort and flips back, which avoids
    negating ``a`` (negation overflows unsigned and minimum signed integers).
    """
    n = a.shape[axis]
    order = np.argsort(np.flip(a, axis=axis), axis=axis, kind="stable")
    return (n - 1) - np.flip(order, axis=axis)


def _average_precisions(Y_true, scores):
    """Per-label ``(AP, iAP, Ngt)`` of every column; ``AP = iAP = 0`` if ``Ngt = 0``.

    ``Y_true`` is validated (dense bool or CSR), ``scores`` validated and dense.
    Works on label-major (transposed) blocks so that every sort, gather and cumulative
    pass runs along contiguous memory.
    """
    n, n_labels = scores.shape
    ap = np.zeros(n_labels, dtype=np.float64)
    iap = np.zeros(n_labels, dtype=np.float64)
    ngt = np.zeros(n_labels, dtype=np.int64)
    Y_lab = sp.csr_array(Y_true.T) if sp.issparse(Y_true) else Y_true.T  # (M, n)
    ranks = np.arange(1, n + 1, dtype=np.float64)
    block = max(1, _BLOCK_CELLS // n)
    for start in range(0, n_labels, block):
        rows = slice(start, min(start + block, n_labels))
        Yb = Y_lab[rows]
        Yb = Yb.toarray().astype(bool) if sp.issparse(Yb) else np.ascontiguousarray(Yb)
        order = _argsort_desc_stable(np.ascontiguousarray(scores[:, rows].T), axis=1)
        rel = np.take_along_axis(Yb, order, axis=1)  # rel[m, k]: rank k+1 relevant?
        hits = np.cumsum(rel, axis=1, dtype=np.float64)
        prec = hits / ranks  # Prec@k
        iprec = np.flip(np.maximum.accumulate(np.flip(prec, axis=1), axis=1), axis=1)
        ngt[rows] = hits[:, -1].astype(np.int64)
        ap[rows] = _safe_div(np.where(rel, prec, 0.0).sum(axis=1), ngt[rows])
        iap[rows] = _safe_div(np.where(rel, iprec, 0.0).sum(axis=1), ngt[rows])
    return ap, iap, ngt


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------
def top_k_annotation(scores, k=5):
    """Annotate each image with its ``k`` highest-scoring labels.

    Row ``i`` of the result has a 1 at the ``min(k, n_labels)`` labels with the highest
    ``scores[i]``. Ties go to the lower label index (a stable descending sort), so the
    result has exactly ``min(k, n_labels)`` ones per row.

    Parameters
    ----------
    scores : array-like or sparse matrix of shape (n_images, n_labels)
        Real label scores (or probabilities); NaN and infinity are rejected.
    k : int, default=5
        Number of labels per image; ``k >= 1``. ``k > n_labels`` annotates every label.

    Returns
    -------
    Y_pred : ndarray of shape (n_images, n_labels), dtype uint8
        The binary top-``k`` annotation.

    Raises
    ------
    ValueError
        If ``scores`` is not a non-empty 2-D array of finite reals, or ``k`` is not a
        positive integer.

    Examples
    --------
    >>> top_k_annotation([[0.2, 0.9, 0.2, 0.1]], k=2)
    array([[1, 1, 0, 0]], dtype=uint8)
    """
    scores = _check_scores(scores)
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}.")
    n, n_labels = scores.shape
    k = min(int(k), n_labels)
    top = _argsort_desc_stable(scores, axis=1)[:, :k]
    Y_pred = np.zeros((n, n_labels), dtype=np.uint8)
    np.put_along_axis(Y_pred, top, 1, axis=1)
    return Y_pred


def threshold_annotation(proba, threshold=0.5):
    """Annotate each image with the labels whose probability reaches ``threshold``.

    The binary sets of ALGORITHM.md section 5.4 (for F-ex): label ``m`` is kept
    when ``proba[i, m] >= threshold``; an image where no label passes keeps its
    most probable one (ties to the lower label index), so no set is empty.

    Parameters
    ----------
    proba : array-like or sparse matrix of shape (n_images, n_labels)
        Label probabilities, e.g. :meth:`mtlm.MTLMAnnotator.predict_proba`.
    threshold : float, default=0.5
        In [0, 1]; a label is kept at ``proba >= threshold``.

    Returns
    -------
    Y_pred : ndarray of shape (n_images, n_labels), dtype uint8

    Raises
    ------
    ValueError
        If ``proba`` is not a non-empty 2-D array of reals in [0, 1], or
        ``threshold`` is not a real in [0, 1].

    Examples
    --------
    >>> threshold_annotation([[0.7, 0.2, 0.6], [0.1, 0.3, 0.3]])
    array([[1, 0, 1],
           [0, 1, 0]], dtype=uint8)
    """
    proba = _check_scores(proba, "proba")
    if proba.size and (proba.min() < 0 or proba.max() > 1):
        raise ValueError(
            "proba must hold probabilities in [0, 1]; found values in "
            f"[{proba.min():.4g}, {proba.max():.4g}]."
        )
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, numbers.Real)
        or not 0.0 <= float(threshold) <= 1.0
    ):
        raise ValueError(
            f"threshold must be a real number in [0, 1]; got {threshold!r}."
        )
    threshold = float(threshold)
    Y_pred = (proba >= threshold).astype(np.uint8)
    empty = np.flatnonzero(~Y_pred.any(axis=1))
    Y_pred[empty, np.argmax(proba[empty], axis=1)] = 1  # argmax: first maximum
    return Y_pred


def per_label_scores(Y_true, Y_pred):
    """Per-label precision, recall, F1 and counts of a binary annotation.

    For each label ``m``: ``Ngt_m`` images carry ``m`` in ``Y_true``, ``Npred_m`` are
    annotated with ``m`` in ``Y_pred`` and ``Nc_m`` of those are correct. Then

    - ``P_m = Nc_m / Npred_m``, and ``P_m = 0`` when ``Npred_m = 0`` (a label that is
      never predicted counts with precision 0);
    - ``R_m = Nc_m / Ngt_m``, and ``R_m = 0`` when ``Ngt_m = 0`` (the label is absent
      from ``Y_true``; its recall is undefined and reported as 0);
    - ``F1_m = 2 P_m R_m / (P_m + R_m)``, and 0 when ``P_m + R_m = 0``.

    These agree with :func:`sklearn.metrics.precision_recall_fscore_support` with
    ``average=None, zero_division=0``. Use ``Ngt > 0`` to select ``L_eval``.

    Parameters
    ----------
    Y_true : array-like or sparse matrix of shape (n_images, n_labels)
        Binary ground truth.
    Y_pred : array-like or sparse matrix of shape (n_images, n_labels)
        Binary annotation, e.g. from :func:`top_k_annotation`.

    Returns
    -------
    scores : dict of ndarray of shape (n_labels,)
        ``"P"``, ``"R"``, ``"F1"`` (float64) and ``"Ngt"``, ``"Npred"``, ``"Nc"``
        (int64), covering every label, including those absent from ``Y_true``.

    Raises
    ------
    ValueError
        If an input is not a non-empty 2-D 0/1 matrix or the shapes differ.
    """
    Y_true = _check_binary(Y_true, "Y_true")
    Y_pred = _check_binary(Y_pred, "Y_pred")
    _check_same_shape(Y_true, Y_pred, "Y_true", "Y_pred")
    return _per_label(Y_true, Y_pred)


def _per_label(Y_true, Y_pred):
    ngt = _sum(Y_true, axis=0)
    npred = _sum(Y_pred, axis=0)
    nc = _sum(_intersection(Y_true, Y_pred), axis=0)
    p = _safe_div(nc, npred)
    r = _safe_div(nc, ngt)
    return {"P": p, "R": r, "F1": _f1(p, r), "Ngt": ngt, "Npred": npred, "Nc": nc}


def mean_average_precision(Y_true, scores, *, labels="present", return_per_label=False):
    """Mean average precision of per-label image retrieval (MAP).

    For each label ``m``, rank all images by ``scores[:, m]``, descending; ties go to
    the lower image index. With ``Prec@k`` the fraction of relevant images among the
    top ``k``,

        ``AP_m = (1/Ngt_m) * sum_{k : image at rank k is relevant} Prec@k``

    and MAP is the mean of ``AP_m`` over the selected labels.

    Ties are broken by image index, not averaged: this is the §6 protocol, and it
    differs from :func:`sklearn.metrics.average_precision_score` when scores tie.

    Parameters
    ----------
    Y_true : array-like or sparse matrix of shape (n_images, n_labels)
        Binary ground truth.
    scores : array-like of shape (n_images, n_labels)
        Finite real scores; only their order within each column matters.
    labels : {"present", "all"} or array-like, default="present"
        Labels to average over. ``"present"`` is ``L_eval``, the labels with at least
        one positive. ``"all"`` takes every column, and a label without positives then
        counts with ``AP_m = 0``. A boolean mask of shape ``(n_labels,)`` or an array of
        label indices selects a subset, with the same convention; e.g. the MAP over
        ``{m : R_m > 0}`` reported by TagProp is
        ``labels=per_label_scores(Y_true, Y_pred)["R"] > 0``.
    return_per_label : bool, default=False
        Also return ``AP_m`` for every label.

    Returns
    -------
    map : float
        The mean average precision.
    ap : ndarray of shape (n_labels,), dtype float64
        Only with ``return_per_label=True``: ``AP_m`` of every label (0 where
        ``Ngt_m = 0``).

    Raises
    ------
    ValueError
        If the inputs are invalid, the shapes differ, ``scores`` is not finite,
        ``labels="present"`` and ``Y_true`` has no positive, or ``labels`` selects none.
    """
    Y_true, scores = _check_ranking_inputs(Y_true, scores)
    ap, _, ngt = _average_precisions(Y_true, scores)
    value = float(ap[_label_mask(labels, ngt)].mean())
    return (value, ap) if return_per_label else value


def miap(Y_true, scores, *, labels="present", return_per_label=False):
    """Mean interpolated average precision (MiAP, ImageCLEF 2011).

    Images are ranked per label as in :func:`mean_average_precision` (descending score,
    ties to the lower image index). The interpolated precision at rank ``k`` is the best
    precision at that rank or deeper, ``iP(k) = max_{j >= k} Prec@j``, and

        ``iAP_m = (1/Ngt_m) * sum_{k : image at rank k is relevant} iP(k)``.

    MiAP is the mean of ``iAP_m`` over the selected labels. Since ``iP(k) >= Prec@k``,
    ``iAP_m >= AP_m`` and ``MiAP >= MAP``.

    Parameters
    ----------
    Y_true : array-like or sparse matrix of shape (n_images, n_labels)
        Binary ground truth.
    scores : array-like of shape (n_images, n_labels)
        Finite real scores.
    labels : {"present", "all"} or array-like, default="present"
        Labels to average over, as in :func:`mean_average_precision` (``"present"``,
        the labels with a positive, matches the official mean over the 99 concepts).
    return_per_label : bool, default=False
        Also return ``iAP_m`` for every label.

    Returns
    -------
    miap : float
        The mean interpolated average precision.
    iap : ndarray of shape (n_labels,), dtype float64
        Only with ``return_per_label=True``: ``iAP_m`` of every label (0 where
        ``Ngt_m = 0``).

    Raises
    ------
    ValueError
        As :func:`mean_average_precision`.
    """
    Y_true, scores = _check_ranking_inputs(Y_true, scores)
    _, iap, ngt = _average_precisions(Y_true, scores)
    value = float(iap[_label_mask(labels, ngt)].mean())
    return (value, iap) if return_per_label else value


def gmiap(Y_true, scores, *, labels="present", eps=1e-12):
    """Geometric mean interpolated average precision (GMiAP, ImageCLEF 2011).

    ``GMiAP = exp(mean_m log(max(iAP_m, eps)))`` over the selected labels, with
    ``iAP_m`` as in :func:`miap`. The floor ``eps`` keeps a label with ``iAP_m = 0``
    from sending the result to 0 outright; it still pulls it down hard, which is the
    point of the geometric mean (it rewards doing reasonably on every label).

    Parameters
    ----------
    Y_true : array-like or sparse matrix of shape (n_images, n_labels)
        Binary ground truth.
    scores : array-like of shape (n_images, n_labels)
        Finite real scores.
    labels : {"present", "all"} or array-like, default="present"
        Labels to average over, as in :func:`mean_average_precision`.
    eps : float, default=1e-12
        Floor applied to each ``iAP_m`` before the logarithm; ``0 < eps <= 1``.

    Returns
    -------
    gmiap : float

    Raises
    ------
    ValueError
        As :func:`mean_average_precision`, or if ``eps`` is not in ``(0, 1]``.
    """
    eps = _check_eps(eps)
    Y_true, scores = _check_ranking_inputs(Y_true, scores)
    _, iap, ngt = _average_precisions(Y_true, scores)
    return _geometric_mean(iap[_label_mask(labels, ngt)], eps)


def _check_eps(eps):
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0 < eps <= 1:
        raise ValueError(f"eps must be a real number in (0, 1]; got {eps!r}.")
    return float(eps)


def _geometric_mean(values, eps):
    return float(np.exp(np.mean(np.log(np.maximum(values, eps)))))


def _check_ranking_inputs(Y_true, scores):
    Y_true = _check_binary(Y_true, "Y_true")
    scores = _check_scores(scores)
    _check_same_shape(Y_true, scores, "Y_true", "scores")
    return Y_true, scores


def example_f1(Y_true, Y_pred):
    """Example-based F-measure (F-ex, ImageCLEF 2011).

    For image ``i`` with true label set ``Y_i`` and predicted set ``Ŷ_i``:

    - ``P_i = |Ŷ_i ∩ Y_i| / |Ŷ_i|``, and 0 if ``Ŷ_i`` is empty;
    - ``R_i = |Ŷ_i ∩ Y_i| / |Y_i|``;
    - ``F_i = 2 P_i R_i / (P_i + R_i)``, and 0 if ``P_i + R_i = 0``;
    - if ``Y_i`` is empty: ``F_i = 1`` when ``Ŷ_i`` is also empty, else ``F_i = 0``.

    F-ex is the mean of ``F_i`` over all images. It uses every label column (there is no
    ``labels`` selection: it is a per-image measure).

    Parameters
    ----------
    Y_true : array-like or sparse matrix of shape (n_images, n_labels)
        Binary ground truth.
    Y_pred : array-like or sparse matrix of shape (n_images, n_labels)
        Binary predicted sets (in the §5 protocol: thresholded scores, not top-5).

    Returns
    -------
    f_ex : float

    Raises
    ------
    ValueError
        If an input is not a non-empty 2-D 0/1 matrix or the shapes differ.
    """
    Y_true = _check_binary(Y_true, "Y_true")
    Y_pred = _check_binary(Y_pred, "Y_pred")
    _check_same_shape(Y_true, Y_pred, "Y_true", "Y_pred")
    return _example_f1(Y_true, Y_pred)


def _example_f1(Y_true, Y_pred):
    n_true = _sum(Y_true, axis=1)
    n_pred = _sum(Y_pred, axis=1)
    n_both = _sum(_intersection(Y_true, Y_pred), axis=1)
    f = _f1(_safe_div(n_both, n_pred), _safe_div(n_both, n_true))
    f[n_true == 0] = (n_pred[n_true == 0] == 0).astype(np.float64)
    return float(f.mean())


def annotation_scores(Y_true, Y_pred, scores=None, *, labels="present"):
    """All §6 annotation measures in one JSON-serialisable dict.

    Label-based measures average over the labels chosen by ``labels`` (``L_eval`` by
    default, the labels with at least one positive in ``Y_true``):

    - ``"P"``, ``"R"``: means of ``P_m`` and ``R_m`` (see :func:`per_label_scores`; a
      label never predicted has ``P_m = 0``);
    - ``"F1"``: ``2PR / (P + R)`` from those two means, not a mean of per-label F1s
      (0 when ``P = R = 0``);
    - ``"N+"``: the number of selected labels with ``R_m > 0``;
    - ``"n_labels"``: the number of selected labels (``|L_eval|`` by default).

    ``"F-ex"`` (:func:`example_f1`, with ``Y_pred`` as the predicted sets) is always
    included; it is example-based and ignores ``labels``. With the top-5 ``Y_pred`` of
    the P/R protocol it is the F-ex of top-5 sets; for the thresholded sets of §5 call
    :func:`example_f1` on those.

    With ``scores``, also ``"MAP"`` (:func:`mean_average_precision`), ``"MiAP"``
    (:func:`miap`) and ``"GMiAP"`` (:func:`gmiap`, floor ``1e-12``), over the same
    labels.

    Parameters
    ----------
    Y_true : array-like or sparse matrix of shape (n_images, n_labels)
        Binary ground truth.
    Y_pred : array-like or sparse matrix of shape (n_images, n_labels)
        Binary annotation, usually ``top_k_annotation(scores, 5)``.
    scores : array-like of shape (n_images, n_labels), optional
        Finite real scores for the ranking measures.
    labels : {"present", "all"} or array-like, default="present"
        Labels for the label-based measures. ``"all"`` takes every column, counting a
        label without positives as ``R_m = 0`` and ``AP_m = iAP_m = 0`` (and ``P_m`` as
        computed, i.e. 0). A boolean mask or label indices select a subset likewise.

    Returns
    -------
    scores : dict
        ``"P"``, ``"R"``, ``"F1"``, ``"F-ex"`` (float), ``"N+"``, ``"n_labels"`` (int),
        and with ``scores`` also ``"MAP"``, ``"MiAP"``, ``"GMiAP"`` (float).

    Raises
    ------
    ValueError
        If an input is invalid, the shapes differ, ``scores`` is not finite,
        ``labels="present"`` and ``Y_true`` has no positive, or ``labels`` selects none.

    Examples
    --------
    >>> Y_true = [[1, 0, 0], [1, 1, 0], [0, 1, 0]]
    >>> Y_pred = [[1, 0, 0], [1, 0, 0], [1, 0, 0]]
    >>> s = annotation_scores(Y_true, Y_pred)  # L_eval = {0, 1}
    >>> s["P"], s["R"], s["N+"], s["n_labels"]
    (0.3333333333333333, 0.5, 1, 2)
    """
    Y_true = _check_binary(Y_true, "Y_true")
    Y_pred = _check_binary(Y_pred, "Y_pred")
    _check_same_shape(Y_true, Y_pred, "Y_true", "Y_pred")
    if scores is not None:
        scores = _check_scores(scores)
        _check_same_shape(Y_true, scores, "Y_true", "scores")

    per = _per_label(Y_true, Y_pred)
    mask = _label_mask(labels, per["Ngt"])
    p = float(per["P"][mask].mean())
    r = float(per["R"][mask].mean())
    out = {
        "P": p,
        "R": r,
        "F1": float(_f1(p, r)),
        "N+": int(np.count_nonzero(per["R"][mask] > 0)),
        "n_labels": int(np.count_nonzero(mask)),
        "F-ex": _example_f1(Y_true, Y_pred),
    }
    if scores is not None:
        ap, iap, _ = _average_precisions(Y_true, scores)
        out["MAP"] = float(ap[mask].mean())
        out["MiAP"] = float(iap[mask].mean())
        out["GMiAP"] = _geometric_mean(iap[mask], 1e-12)
    return out

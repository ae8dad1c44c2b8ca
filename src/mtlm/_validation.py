"""The one place where user input is checked and coerced.

Kernels in :mod:`mtlm_fast` trust what they get; every check that would
otherwise need bounds checking in a kernel happens here, with a message that
names the argument and the problem.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp

__all__ = [
    "check_feature_blocks",
    "check_label_matrix",
    "check_int",
    "check_float",
    "check_choice",
]


def _numeric_objects(arr, name, needed):
    """An object array as float64 (numbers only), any other array unchanged."""
    if arr.dtype != object:
        return arr
    try:
        return arr.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{name} has dtype object with non-numeric entries ({exc}); "
            f"{needed} is needed."
        ) from exc


def _as_float_array(value, name):
    """Return a C-contiguous 2-D float32/float64 array or raise ValueError."""
    if sp.issparse(value):
        raise ValueError(
            f"{name} is a sparse matrix; densify it first (features must be dense)."
        )
    if np.ma.isMaskedArray(value) and np.ma.is_masked(value):
        raise ValueError(
            f"{name} is a masked array with masked entries; fill or drop them "
            "(features must be complete)."
        )
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name} cannot be read as an array: {exc}") from exc
    arr = _numeric_objects(arr, name, "a real numeric array")
    if arr.dtype.kind in "USVMm":
        raise ValueError(
            f"{name} has dtype {arr.dtype}; a real numeric dtype is needed."
        )
    if arr.dtype.kind == "c":
        raise ValueError(
            f"{name} is complex: Complex data not supported; real features are needed."
        )
    if arr.dtype.kind == "b":
        arr = arr.astype(np.float32)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_dims), got shape {arr.shape}. "
            "Reshape your data with array.reshape(-1, 1) for a single feature or "
            "array.reshape(1, -1) for a single sample."
        )
    if arr.shape[0] == 0:
        raise ValueError(
            f"{name} is empty: it has 0 sample(s) (shape={arr.shape}) while a "
            "minimum of 1 is required."
        )
    if arr.shape[1] == 0:
        raise ValueError(
            f"{name} is empty: it has 0 feature(s) (shape={arr.shape}) while a "
            "minimum of 1 is required."
        )
    dtype = np.float32 if arr.dtype == np.float32 else np.float64
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if not np.isfinite(arr).all():
        bad = "NaN" if np.isnan(arr).any() else "inf"
        raise ValueError(f"{name} contains {bad} values; features must be finite.")
    return arr


def block_columns(X, names):
    """Column names of each block of ``X`` (a DataFrame's string columns), or None.

    ``names`` are the block names as :func:`check_feature_blocks` returns them
    (``["x"]`` for a single array).
    """
    blocks = [X[f] for f in names] if isinstance(X, Mapping) else [X]
    out = []
    for b in blocks:
        cols = getattr(b, "columns", None)
        if cols is not None and all(isinstance(c, str) for c in cols):
            out.append([str(c) for c in cols])
        else:
            out.append(None)
    return out


def check_feature_blocks(X, name="X", *, feature_names=None, dims=None):
    """Validate features given as one 2-D array or as a dict of blocks.

    Parameters
    ----------
    X : array-like of shape (n, d) or mapping of str to array-like of shape (n, d_f)
        A single array means diagonal mode (one base distance per dimension).
    name : str
        Argument name used in error messages.
    feature_names : list of str or None
        When given, ``X`` must hold exactly these blocks (a dict) and they are
        returned in this order; a single array must then not be given.
    dims : list of int or None
        Expected number of columns of each block (from fit).

    Returns
    -------
    blocks : list of ndarray
        C-contiguous float32 or float64 arrays with the same number of rows.
    names : list of str
        Block names (``["x"]`` in diagonal mode).
    diagonal : bool
        True when ``X`` was a single array.
    """
    if isinstance(X, Mapping):
        if len(X) == 0:
            raise ValueError(
                f"{name} is an empty dict: give at least one feature block."
            )
        for key in X:
            if not isinstance(key, str):
                raise ValueError(
                    f"{name} keys must be feature names (str), got {key!r}."
                )
        if feature_names is None:
            names = list(X)
        else:
            missing = [f for f in feature_names if f not in X]
            extra = [f for f in X if f not in feature_names]
            if missing:
                raise ValueError(f"{name} is missing feature block(s) {missing}.")
            if extra:
                raise ValueError(
                    f"{name} has feature block(s) {extra} that were not seen in fit "
                    f"(expected {list(feature_names)})."
                )
            names = list(feature_names)
        blocks = [_as_float_array(X[f], f"{name}[{f!r}]") for f in names]
        diagonal = False
    else:
        if feature_names is not None and feature_names != ["x"]:
            raise ValueError(
                f"{name} must be a dict of feature blocks {list(feature_names)}, "
                "as in fit; got a single array."
            )
        blocks = [_as_float_array(X, name)]
        names = ["x"]
        diagonal = True
    n_rows = {b.shape[0] for b in blocks}
    if len(n_rows) > 1:
        counts = {f: b.shape[0] for f, b in zip(names, blocks)}
        raise ValueError(f"{name} blocks have different numbers of rows: {counts}.")
    if dims is not None:
        for f, b, d in zip(names, blocks, dims):
            if b.shape[1] != d:
                label = name if diagonal else f"{name}[{f!r}]"
                raise ValueError(
                    f"{label} has {b.shape[1]} features, but mtlm is expecting {d} "
                    "features as input (the columns seen in fit)."
                )
    return blocks, names, diagonal


def check_label_matrix(Y, n_samples=None, name="Y", *, n_labels=None, allow_empty=True):
    """Validate a 0/1 label matrix (dense or scipy sparse) and return it as uint8.

    Parameters
    ----------
    Y : array-like or sparse matrix of shape (n_samples, n_labels)
    n_samples : int or None
        Required number of rows.
    name : str
        Argument name used in error messages.
    n_labels : int or None
        Required number of columns.
    allow_empty : bool
        When False, a matrix with no positive entry is an error.

    Returns
    -------
    Y : ndarray of shape (n_samples, n_labels), dtype uint8, C-contiguous
    """
    if Y is None:
        raise ValueError(
            f"{name}: this estimator requires y to be passed, but the target y is None."
        )
    if sp.issparse(Y):
        Y = Y.toarray()
    try:
        arr = np.asarray(Y)
    except Exception as exc:
        raise ValueError(f"{name} cannot be read as an array: {exc}") from exc
    # e.g. a DataFrame of pandas' nullable Int64
    arr = _numeric_objects(arr, name, "a 0/1 label matrix")
    if arr.dtype.kind in "USVcMm":
        raise ValueError(f"{name} has dtype {arr.dtype}; a 0/1 label matrix is needed.")
    if arr.ndim == 1:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_labels), got 1-D shape {arr.shape}; "
            "use Y.reshape(-1, 1) for a single label."
        )
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_labels), got shape {arr.shape}."
        )
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has no label columns.")
    if n_samples is not None and arr.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {arr.shape[0]} rows but the features have {n_samples}."
        )
    if n_labels is not None and arr.shape[1] != n_labels:
        raise ValueError(f"{name} has {arr.shape[1]} labels, expected {n_labels}.")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf; labels must be 0 or 1.")
    if not np.isin(arr, (0, 1)).all():
        bad = np.unique(arr[~np.isin(arr, (0, 1))])[:5]
        raise ValueError(f"{name} must hold only 0 and 1; found {bad.tolist()}.")
    out = np.ascontiguousarray(arr, dtype=np.uint8)
    if not allow_empty and not out.any():
        raise ValueError(f"{name} has no positive entry: no label to learn from.")
    return out


def check_path(value, name, what="a str or path-like"):
    """``value`` (str, bytes or path-like) as a str path, or a ValueError naming it."""
    try:
        return os.fsdecode(value)
    except TypeError:
        raise ValueError(
            f"{name} must be {what}, got {type(value).__name__}."
        ) from None


def check_int(value, name, *, low=None, high=None, allow_none=False):
    """Return ``value`` as int after checking its type and range."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an int, got {value!r}.")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}.")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}.")
    return value


def check_float(value, name, *, low=None, high=None, low_open=False, allow_none=False):
    """Return ``value`` as a finite float after checking its range."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}.")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}.")
    if low is not None and (value <= low if low_open else value < low):
        op = ">" if low_open else ">="
        raise ValueError(f"{name} must be {op} {low}, got {value}.")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}.")
    return value


def check_choice(value, name, choices):
    """Return ``value`` if it is one of ``choices``, else raise ValueError."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}.")
    return value

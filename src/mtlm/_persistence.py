"""Model files: a versioned, pickle-free ``.npz`` with JSON metadata.

Layout (format version 1)
-------------------------
``meta``
    0-d unicode array holding a JSON object: ``format`` ("mtlm-model"),
    ``format_version``, ``mtlm_version``, ``method``, ``params`` (the
    estimator's ``get_params()``), ``feature_names``, ``metrics``, ``dims``,
    ``diagonal``, ``normalize``, ``columns`` (per block, the DataFrame column
    names seen in fit, or null), ``label_names``, ``tau``, ``n_iter`` and a
    free ``info`` object (e.g. evaluation scores).
``weights_shared`` (F,), ``weights_label`` (M, F), ``bias`` (M,), ``objective``
    Learned metric and optimisation trace, float64.
``scales`` (F,)
    Base-distance normalisers.
``base_means`` (F,) (optional)
    Mean normalised base distance of random training pairs (the scale of the
    ``tau`` grid; 1 under ``normalize="mean"``).
``Y_train`` (n, M) uint8 and ``X_train_<i>`` (n, d_i)
    The training images that vote (block i in ``feature_names`` order).
``tau_grid``, ``tau_scores`` (optional)
    The temperatures tried by ``tau="auto"`` and their F1.
``proba_coef``, ``proba_intercept`` (M,) (with ``probability=True``)
    The label sigmoids of :meth:`~mtlm.MTLMAnnotator.predict_proba`.
``n_active`` (optional, LMNN)
    Active triplets per label; the metadata's ``lmnn`` object holds
    ``n_triplets``, ``margin`` and ``converged``.

Optional pieces were added within version 1: files without them still load
(the attributes are then None or absent, as before).

Files are read with ``allow_pickle=False``; a file written by a newer format
version, a truncated file or a file that is not a model raises ``ValueError``.
"""

from __future__ import annotations

import json
import numbers
import os
import tempfile

import numpy as np

from mtlm._validation import check_path

__all__ = ["FORMAT_VERSION", "save_model", "load_model"]

FORMAT = "mtlm-model"
FORMAT_VERSION = 1
_MAX_SAVED = 1e30  # no metric weight is larger in a model that predicts


def _jsonable(value, _open=()):
    """``value`` as JSON data; ``_open`` holds the ids of the containers being read."""
    if isinstance(value, (float, np.floating)) and not np.isfinite(value):
        return None  # JSON has no NaN or infinity
    if isinstance(value, (dict, list, tuple)):
        if id(value) in _open:
            raise ValueError("info refers to itself (a circular dict or list).")
        _open = (*_open, id(value))
        if isinstance(value, dict):
            return {str(k): _jsonable(v, _open) for k, v in value.items()}
        return [_jsonable(v, _open) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def save_model(est, path, *, label_names=None, info=None):
    """Write a fitted :class:`~mtlm.MTLMAnnotator` to ``path`` atomically.

    The file is written to a temporary name in the same folder and renamed,
    so an interrupted save never leaves a half-written model behind.
    """
    from mtlm import __version__

    bd = est.base_distances_
    M = est.n_labels_in_
    if label_names is not None:
        if isinstance(label_names, (str, bytes)):
            raise ValueError(
                f"label_names must be a list of {M} names, got the string "
                f"{label_names!r}."
            )
        try:
            label_names = [str(x) for x in label_names]
        except TypeError:
            raise ValueError(
                f"label_names must be a list of {M} names, got {label_names!r}."
            ) from None
        if len(label_names) != M:
            raise ValueError(
                f"label_names has {len(label_names)} names for {M} labels."
            )
        if len(set(label_names)) != M:  # load_model would refuse the file
            seen = set()
            twice = next(x for x in label_names if x in seen or seen.add(x))
            raise ValueError(f"label_names must be distinct; {twice!r} is repeated.")
    params = est.get_params()
    seed = params.get("random_state")
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        params["random_state"] = int(seed)  # np.int64(3) too
    elif seed is not None:
        params["random_state"] = None  # a RandomState instance is not portable
    # where it runs is the loader's choice: a model fitted on a cluster must
    # predict without one (the results are the same)
    params["backend"], params["dask_client"] = "local", None
    # the file holds the fitted state: sigmoids iff they were fitted (a later
    # set_params(probability=...) changes nothing until the next fit)
    params["probability"] = hasattr(est, "proba_coef_")
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "mtlm_version": __version__,
        "method": est.method,
        "params": _jsonable(params),
        "feature_names": list(bd.feature_names_),
        "metrics": list(bd.metrics_),
        "dims": [int(x) for x in bd.dims_],
        "diagonal": bool(bd.diagonal_),
        "normalize": bd.normalize,
        "columns": bd.columns_,
        "label_names": label_names,
        "tau": float(est.tau_),
        "n_iter": int(est.n_iter_),
        "info": _info_json(info),
    }
    arrays = {
        "weights_shared": est.weights_shared_,
        "weights_label": est.weights_label_,
        "bias": est.bias_,
        "objective": np.asarray(est.objective_, dtype=np.float64),
        "scales": bd.scales_,
        "base_means": bd.base_means_,
        "Y_train": est.Y_train_,
    }
    for i, block in enumerate(est._train_blocks_raw):
        arrays[f"X_train_{i}"] = block
    if est.tau_grid_ is not None:
        arrays["tau_grid"] = np.asarray(est.tau_grid_, dtype=np.float64)
        arrays["tau_scores"] = np.asarray(est.tau_scores_, dtype=np.float64)
    if hasattr(est, "proba_coef_"):
        arrays["proba_coef"] = est.proba_coef_
        arrays["proba_intercept"] = est.proba_intercept_
    if hasattr(est, "n_active_"):
        arrays["n_active"] = np.asarray(est.n_active_, dtype=np.int64)
        meta["lmnn"] = {
            "n_triplets": int(est.n_triplets_),
            "margin": float(est.margin_),
            "converged": bool(est.converged_),
        }
    arrays["meta"] = np.array(json.dumps(meta))
    path = check_path(path, "path")
    if os.path.isdir(path):
        raise ValueError(f"path {path} is a folder; give a file name, e.g. model.npz.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"cannot save to {path}: folder {folder} does not exist."
        )
    fd, tmp = tempfile.mkstemp(prefix=".mtlm-", suffix=".npz.tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        os.chmod(tmp, _file_mode(path))  # mkstemp makes it 0600
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _info_json(info):
    if info is None:
        return {}
    if not isinstance(info, dict):
        raise ValueError(f"info must be a dict or None, got {type(info).__name__}.")
    try:
        return _jsonable(info)
    except RecursionError:
        raise ValueError("info is nested too deeply to be saved.") from None


def _file_mode(path):
    """An existing file's mode, else what open() would give under the umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def _read(path):
    from mtlm.datasets import read_npz_arrays

    try:
        return read_npz_arrays(path)
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable mtlm model file ({exc}).") from exc


def _restore(meta, arrays):
    """Check every saved piece against the others; (est, bd, blocks, fitted).

    A file that passes the CRC but was written by something else (or edited)
    must not load into a model that answers silently wrong.
    """
    from mtlm._annotator import METHODS, LearnedMetric, MTLMAnnotator
    from mtlm._distances import _NORMALIZE as NORMALIZE
    from mtlm._distances import METRICS, BaseDistances
    from mtlm._validation import (
        check_choice,
        check_float,
        check_int,
        check_label_matrix,
    )

    names, metrics, dims = meta["feature_names"], meta["metrics"], meta["dims"]
    diagonal = meta["diagonal"]
    if not isinstance(diagonal, bool):
        raise ValueError(f"meta 'diagonal' must be true or false, got {diagonal!r}.")
    for key, value in (("feature_names", names), ("metrics", metrics), ("dims", dims)):
        if not isinstance(value, list) or not value or len(value) != len(names):
            raise ValueError(f"meta {key!r} must be a list with one entry per block.")
    if not all(isinstance(f, str) for f in names) or len(set(names)) != len(names):
        raise ValueError("meta 'feature_names' must be distinct strings.")
    if diagonal and len(names) != 1:
        raise ValueError("a diagonal model has exactly one feature block.")
    for m in metrics:  # diagonal mode has its own "sqdiff"
        check_choice(m, "meta metric", ("sqdiff",) if diagonal else METRICS)
    for d in dims:
        check_int(d, "meta dims", low=1)
    params = meta["params"]
    if not isinstance(params, dict):
        raise ValueError("meta 'params' must be a mapping.")
    check_choice(params.get("method"), "params 'method'", METHODS)
    if meta.get("method") != params["method"]:
        raise ValueError(
            f"meta 'method' {meta.get('method')!r} differs from params 'method' "
            f"{params['method']!r}."
        )
    est = MTLMAnnotator().set_params(**params)
    est._validate_params()
    tau = check_float(meta["tau"], "meta 'tau'", low=0.0, low_open=True)
    n_iter = check_int(meta["n_iter"], "meta 'n_iter'", low=0)

    bd = BaseDistances(
        metrics=None if diagonal else dict(zip(names, metrics)),
        normalize=check_choice(meta["normalize"], "meta 'normalize'", NORMALIZE),
    )
    blocks = [arrays[f"X_train_{i}"] for i in range(len(names))]
    bd.feature_names_ = list(names)
    bd.metrics_ = list(metrics)
    bd.dims_ = list(dims)
    bd.diagonal_ = diagonal
    bd.n_base_ = dims[0] if diagonal else len(names)
    bd.columns_ = _columns(meta.get("columns"), dims)
    F = bd.n_base_
    bd.scales_ = _weights(arrays["scales"], "scales", (F,), positive=True)
    if "base_means" in arrays:
        bd.base_means_ = _weights(arrays["base_means"], "base_means", (F,))
    X = blocks[0] if diagonal else dict(zip(names, blocks))
    bd.check(X, "X_train")  # numeric, finite, widths, non-negative histograms
    n = blocks[0].shape[0]
    Y = check_label_matrix(arrays["Y_train"], n, "Y_train", allow_empty=False)
    M = Y.shape[1]
    label_names = meta.get("label_names")
    if label_names is not None and (
        not isinstance(label_names, list)
        or len(label_names) != M
        or not all(isinstance(x, str) for x in label_names)
        or len(set(label_names)) != len(label_names)
    ):
        raise ValueError(f"meta 'label_names' must be a list of {M} distinct names.")
    learned = LearnedMetric(
        _weights(arrays["weights_shared"], "weights_shared", (F,), bounded=True),
        _weights(arrays["weights_label"], "weights_label", (M, F), bounded=True),
        _weights(arrays["bias"], "bias", (M,), signed=True),
        n_iter,
        _weights(arrays["objective"], "objective", None, signed=True),
        _lmnn_extra(meta, arrays, M),
    )
    proba = _sigmoids(arrays, M, est.probability)
    if proba:
        learned.extra.update(proba)
    tau_search = (None, None)
    if ("tau_grid" in arrays) != ("tau_scores" in arrays):
        raise ValueError("tau_grid and tau_scores must be saved together.")
    if "tau_grid" in arrays:
        grid = _weights(arrays.get("tau_grid"), "tau_grid", None, positive=True)
        f1 = _weights(arrays.get("tau_scores"), "tau_scores", grid.shape)
        tau_search = (grid, f1)
    return est, bd, blocks, (Y, learned, tau, *tau_search)


def _sigmoids(arrays, M, probability):
    """The label sigmoids of a ``probability=True`` model ({} otherwise)."""
    present = [k for k in ("proba_coef", "proba_intercept") if k in arrays]
    if not probability:
        if present:
            raise ValueError(f"{present} saved but params 'probability' is false.")
        return {}
    if len(present) != 2:
        raise ValueError(
            "params 'probability' is true but proba_coef and proba_intercept "
            "are not both saved."
        )
    return {
        "proba_coef_": _weights(arrays["proba_coef"], "proba_coef", (M,)),  # >= 0
        "proba_intercept_": _weights(
            arrays["proba_intercept"], "proba_intercept", (M,), signed=True
        ),
    }


def _lmnn_extra(meta, arrays, M):
    """The LMNN fitted attributes of a model file ({} without them)."""
    from mtlm._validation import check_float, check_int

    info = meta.get("lmnn")
    if info is None and "n_active" not in arrays:
        return {}
    if not isinstance(info, dict) or "n_active" not in arrays:
        raise ValueError("LMNN attributes need both meta 'lmnn' and 'n_active'.")
    n_active = _weights(arrays["n_active"], "n_active", None)
    if n_active.shape not in ((M,), (1,)) or (n_active % 1).any():
        raise ValueError(f"n_active must be {M} (or 1) counts.")
    converged = info.get("converged")
    if not isinstance(converged, bool):
        raise ValueError(
            f"meta lmnn 'converged' must be true or false, got {converged!r}."
        )
    return {
        "n_active_": n_active.astype(np.int64),
        "n_triplets_": check_int(
            info.get("n_triplets"), "meta lmnn 'n_triplets'", low=0
        ),
        "margin_": check_float(info.get("margin"), "meta lmnn 'margin'", low=0.0),
        "converged_": converged,
    }


def _columns(value, dims):
    """Per-block DataFrame column names of a model file (None: not recorded)."""
    if value is None:
        return [None] * len(dims)
    ok = isinstance(value, list) and len(value) == len(dims)
    for cols, d in zip(value if ok else [], dims):
        if cols is not None and not (
            isinstance(cols, list)
            and len(cols) == d
            and all(isinstance(c, str) for c in cols)
        ):
            ok = False
    if not ok:
        raise ValueError(
            "meta 'columns' must hold, per block, null or its column names."
        )
    return value


def _weights(value, name, shape, *, signed=False, positive=False, bounded=False):
    """A finite float64 array of ``shape`` (any 1-D when None), >= 0 unless signed."""
    a = np.asarray(value)
    if a.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be numeric, got dtype {a.dtype}.")
    a = a.astype(np.float64)
    if (shape is None and a.ndim != 1) or (shape is not None and a.shape != shape):
        want = "1-D" if shape is None else f"of shape {shape}"
        raise ValueError(f"{name} must be {want}, got shape {a.shape}.")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    if bounded and a.size and np.abs(a).max() > _MAX_SAVED:
        raise ValueError(
            f"{name} has values beyond {_MAX_SAVED:g}: distances would overflow."
        )
    if positive and (a <= 0).any():
        raise ValueError(f"{name} must be > 0.")
    if not signed and (a < 0).any():
        raise ValueError(f"{name} must be >= 0.")
    return a


def load_model(path):
    """Read a model written by :meth:`MTLMAnnotator.save`.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    est : MTLMAnnotator
        A fitted annotator that predicts exactly what the saved one did.
        ``est.label_names_`` holds the saved label names (or None) and
        ``est.model_info_`` the saved ``info``.
    """
    path = check_path(path, "path")
    arrays = _read(path)
    if "meta" not in arrays:
        raise ValueError(f"{path} is not an mtlm model file (no metadata).")
    try:
        meta = json.loads(str(arrays["meta"]))
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path}: the model metadata is not valid JSON ({exc})."
        ) from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not an mtlm model file.")
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"{path}: {version!r} is not a model format version.")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path} has model format version {version}; this mtlm reads versions up "
            f"to {FORMAT_VERSION}: upgrade mtlm."
        )
    names = meta.get("feature_names")
    needed = ["weights_shared", "weights_label", "bias", "scales", "Y_train"]
    needed += [
        f"X_train_{i}" for i in range(len(names) if isinstance(names, list) else 0)
    ]
    missing = [k for k in needed if k not in arrays]
    if missing:
        raise ValueError(f"{path} is an incomplete model file: missing {missing}.")
    try:
        est, bd, blocks, fitted = _restore(meta, arrays)
    except (ValueError, TypeError, KeyError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ValueError(f"{path} is not a valid mtlm model file: {detail}") from exc
    est._set_fitted(bd, blocks, *fitted)
    est.label_names_ = meta.get("label_names")
    est.model_info_ = meta.get("info", {})
    return est

"""Model files: a versioned, pickle-free ``.npz`` with JSON metadata.

Layout (format version 1)
-------------------------
``meta``
    0-d unicode array holding a JSON object: ``format`` ("mtlm-model"),
    ``format_version``, ``mtlm_version``, ``method``, ``params`` (the
    estimator's ``get_params()``), ``feature_names``, ``metrics``, ``dims``,
    ``diagonal``, ``normalize``, ``label_names``, ``tau``, ``n_iter`` and a
    free ``info`` object (e.g. evaluation scores).
``weights_shared`` (F,), ``weights_label`` (M, F), ``bias`` (M,), ``objective``
    Learned metric and optimisation trace, float64.
``scales`` (F,)
    Base-distance normalisers.
``Y_train`` (n, M) uint8 and ``X_train_<i>`` (n, d_i)
    The training images that vote (block i in ``feature_names`` order).

Files are read with ``allow_pickle=False``; a file written by a newer format
version, a truncated file or a file that is not a model raises ``ValueError``.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile

import numpy as np

__all__ = ["FORMAT_VERSION", "save_model", "load_model"]

FORMAT = "mtlm-model"
FORMAT_VERSION = 1


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
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
        label_names = [str(x) for x in label_names]
        if len(label_names) != M:
            raise ValueError(
                f"label_names has {len(label_names)} names for {M} labels."
            )
    params = est.get_params()
    if not isinstance(params.get("random_state"), (int, type(None))):
        params["random_state"] = None  # a RandomState instance is not portable
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
        "label_names": label_names,
        "tau": float(est.tau_),
        "n_iter": int(est.n_iter_),
        "info": _jsonable(info or {}),
    }
    arrays = {
        "meta": np.array(json.dumps(meta)),
        "weights_shared": est.weights_shared_,
        "weights_label": est.weights_label_,
        "bias": est.bias_,
        "objective": np.asarray(est.objective_, dtype=np.float64),
        "scales": bd.scales_,
        "Y_train": est.Y_train_,
    }
    for i, block in enumerate(est._train_blocks_raw):
        arrays[f"X_train_{i}"] = block
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".mtlm-", suffix=".npz.tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _read(path):
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path} is not a readable mtlm model file ({exc}).") from exc


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
    from mtlm._annotator import MTLMAnnotator
    from mtlm._distances import BaseDistances

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
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path} has model format version {version}; this mtlm reads versions up "
            f"to {FORMAT_VERSION}: upgrade mtlm."
        )
    names = meta["feature_names"]
    needed = ["weights_shared", "weights_label", "bias", "scales", "Y_train"]
    needed += [f"X_train_{i}" for i in range(len(names))]
    missing = [k for k in needed if k not in arrays]
    if missing:
        raise ValueError(f"{path} is an incomplete model file: missing {missing}.")

    est = MTLMAnnotator().set_params(**meta["params"])
    bd = BaseDistances(
        metrics=dict(zip(names, meta["metrics"])) if not meta["diagonal"] else None,
        normalize=meta["normalize"],
    )
    blocks = [arrays[f"X_train_{i}"] for i in range(len(names))]
    bd.feature_names_ = list(names)
    bd.metrics_ = list(meta["metrics"])
    bd.dims_ = list(meta["dims"])
    bd.diagonal_ = bool(meta["diagonal"])
    bd.n_base_ = blocks[0].shape[1] if bd.diagonal_ else len(names)
    bd.scales_ = arrays["scales"]
    est._set_fitted(
        bd,
        blocks,
        arrays["Y_train"],
        arrays["weights_shared"],
        arrays["weights_label"],
        arrays["bias"],
        int(meta["n_iter"]),
        arrays["objective"],
        float(meta["tau"]),
    )
    est.label_names_ = meta.get("label_names")
    est.model_info_ = meta.get("info", {})
    return est

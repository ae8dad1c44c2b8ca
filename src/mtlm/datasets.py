"""Image-annotation datasets: the embedded Corel5K, MULAN ARFF data and npz files.

`load_dataset` is the single entry point. Every dataset comes back as an
`AnnotationDataset`: one or more feature blocks ("feature types", one base distance
each), a fixed train/test split and 0/1 label matrices.
"""

import glob
import logging
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from mtlm._arff import read_arff, read_mulan_labels
from mtlm._distances import METRICS
from mtlm._npyfolder import load_npy_folder  # re-exported: the public name
from mtlm._validation import check_path

__all__ = [
    "AnnotationDataset",
    "load_dataset",
    "load_npy_folder",
    "BASE_METRICS",
    "EMBEDDED_DATASETS",
]

logger = logging.getLogger(__name__)

#: Names of the base distances a feature block can declare as its default
#: (those of `mtlm.BaseDistances`: l1, chi2, l2, sqeuclidean, hellinger).
BASE_METRICS = METRICS
#: Datasets shipped inside the package (name -> file in ``mtlm/data``).
EMBEDDED_DATASETS = {"corel5k": "corel5k.npz"}

_NONNEGATIVE_METRICS = ("chi2", "hellinger")
_SQRT_UINT16_SCALE = 65535
_ARFF_BLOCK = "features"
_SPLIT_TOKEN = re.compile(r"(train|test)", re.IGNORECASE)


@dataclass(frozen=True, repr=False)
class AnnotationDataset:
    """A multi-label image-annotation dataset with a fixed train/test split.

    Attributes
    ----------
    name : str
        Short name (``"corel5k"``, or the stem of the files it was read from).
    description : str
        Where the data comes from and how it was read.
    feature_names : list of str
        Names of the feature blocks, in order; the keys of `X_train` and `X_test`.
    label_names : list of str
        One name per label, in column order of `Y_train` and `Y_test`.
    X_train, X_test : dict of str to ndarray of shape (n_train, d) / (n_test, d)
        One C-contiguous float array per feature block (the `dtype` asked for);
        ``d`` may differ between blocks. All values are finite.
    Y_train, Y_test : ndarray of shape (n_train, n_labels) / (n_test, n_labels)
        uint8 label matrices with values 0 and 1. Labels without a positive image
        and images without a label are allowed.
    metrics : dict of str to str
        Default base distance of each feature block, one of `BASE_METRICS`.
    train_ids, test_ids : ndarray of str or None
        Image identifiers in row order, when the source has them.
    """

    name: str
    description: str
    feature_names: list
    label_names: list
    X_train: dict
    X_test: dict
    Y_train: np.ndarray
    Y_test: np.ndarray
    metrics: dict
    train_ids: np.ndarray = None
    test_ids: np.ndarray = None

    @property
    def n_train(self):
        """Number of training images."""
        return self.Y_train.shape[0]

    @property
    def n_test(self):
        """Number of test images."""
        return self.Y_test.shape[0]

    @property
    def n_labels(self):
        """Number of labels."""
        return self.Y_train.shape[1]

    def __repr__(self):
        dims = {f: self.X_train[f].shape[1] for f in self.feature_names}
        return (
            f"AnnotationDataset(name={self.name!r}, n_train={self.n_train}, "
            f"n_test={self.n_test}, n_labels={self.n_labels}, features={dims})"
        )


def load_dataset(name_or_path, *, dtype=np.float32):
    """Load an image-annotation dataset.

    Parameters
    ----------
    name_or_path : str or path-like
        One of

        - the name of an embedded dataset: ``"corel5k"`` (Corel5K, TagProp split,
          4500 train / 499 test images, 260 labels, 10 colour-histogram blocks);
        - a ``.npz`` file laid out like the embedded one (see Notes);
        - a MULAN ``.arff`` file: its train/test sibling (``X-train.arff`` /
          ``X-test.arff``, also ``X-train-sparse.arff`` ...) and its label file
          ``X.xml`` must lie beside it;
        - a MULAN ``.xml`` label file, with the ARFF pair beside it;
        - a folder holding one ``.npz`` file or one MULAN ARFF pair.
    dtype : {np.float32, np.float64}, default=np.float32
        Floating dtype of the feature arrays.

    Returns
    -------
    AnnotationDataset

    Raises
    ------
    ValueError
        For an unknown name, a missing or unreadable file, missing npz keys, labels
        other than 0/1, row counts that disagree, XML labels absent from the ARFF
        header, non-finite features, or an unknown metric. The message names the
        file and the problem.

    Notes
    -----
    **npz layout.** ``feature_names`` (array of str); for each name ``f``:
    ``X_train_<f>`` and ``X_test_<f>`` (2-D, numeric); ``Y_train`` and ``Y_test``
    (2-D, 0/1). Optional: ``label_names`` (or ``labels``), ``metrics`` (names aligned
    with ``feature_names``), ``train_ids``/``test_ids`` (or ``train_images``/
    ``test_images``), ``name``, ``description``, and ``encoding="sqrt-uint16"``
    (uint16 features stored as ``round(sqrt(x) * 65535)``, as in the embedded
    file). Without ``label_names`` labels are called ``label0, label1, ...``.
    A metric ``"chi2"`` or ``"hellinger"`` requires non-negative features.

    **ARFF.** All attributes that are not labels (by the names in the MULAN XML)
    form one feature block called ``"features"``. Missing values (``?``) are
    rejected, with the row and attribute of the first.

    **Default metric** when none is stored: ``"l1"`` for a block whose values are
    all non-negative (histograms, counts, binary indicators: L1 is the usual
    histogram distance and equals Hamming on 0/1 data), otherwise ``"l2"``
    (generic real-valued, e.g. standardised, features). The embedded Corel5K uses
    ``"l1"`` for all ten blocks.

    An embedded name always wins over a file or folder of the same name in the
    working directory; write ``"./corel5k"`` to load such a folder.

    Examples
    --------
    >>> from mtlm.datasets import load_dataset
    >>> ds = load_dataset("corel5k")
    >>> ds.n_train, ds.n_test, ds.n_labels
    (4500, 499, 260)
    >>> ds.X_train["rgb16"].shape
    (4500, 48)
    """
    dtype = _check_dtype(dtype)
    if isinstance(name_or_path, str) and name_or_path.lower() in EMBEDDED_DATASETS:
        return _load_embedded(name_or_path.lower(), dtype)
    path = Path(check_path(name_or_path, "name_or_path", "a dataset name or a path"))
    if not path.exists():
        _raise_not_found(name_or_path, path)
    if path.is_dir():
        return _load_folder(path, dtype)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _load_npz(path, dtype)
    if suffix == ".arff":
        train, test = _arff_pair(path)
        return _load_mulan(train, test, _find_xml(train), dtype)
    if suffix == ".xml":
        train, test = _pair_in_folder(path.parent, prefix=path.stem, where=path)
        return _load_mulan(train, test, path, dtype)
    raise ValueError(
        f"name_or_path={str(name_or_path)!r}: unsupported file type {suffix!r} "
        "(expected .npz, .arff, .xml or a folder)."
    )


def _check_dtype(dtype):
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dt}.")
    return dt


def _raise_not_found(name_or_path, path):
    text = str(name_or_path)
    if isinstance(name_or_path, str) and not path.suffix and len(path.parts) == 1:
        known = ", ".join(sorted(EMBEDDED_DATASETS))
        raise ValueError(
            f"Unknown dataset name {text!r}: known names are {known}; otherwise "
            "give the path of a .npz file, a MULAN .arff/.xml file or a folder."
        )
    raise ValueError(f"name_or_path={text!r}: no such file or folder.")


# -- embedded and npz ------------------------------------------------------------


def _load_embedded(name, dtype):
    resource = resources.files("mtlm") / "data" / EMBEDDED_DATASETS[name]
    with resources.as_file(resource) as path:
        return _load_npz(path, dtype)


def _load_npz(path, dtype):
    logger.debug("reading npz dataset %s", path)
    arrays = _read_npz(path)
    missing = [k for k in ("feature_names", "Y_train", "Y_test") if k not in arrays]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing} in the .npz file.")
    feats = [str(f) for f in np.atleast_1d(arrays["feature_names"])]
    blocks = [f"X_{part}_{f}" for f in feats for part in ("train", "test")]
    missing = [k for k in blocks if k not in arrays]
    if missing:
        raise ValueError(
            f"{path}: missing key(s) {missing} in the .npz file "
            f"(feature_names is {feats})."
        )
    decode = _decoder(arrays.get("encoding"), path)
    labels = arrays.get("label_names", arrays.get("labels"))
    metrics = arrays.get("metrics")
    return _make_dataset(
        source=str(path),
        name=_str_item(arrays.get("name"), Path(path).stem),
        description=_str_item(arrays.get("description"), f"Read from {path}."),
        feature_names=feats,
        X_train={f: decode(arrays[f"X_train_{f}"]) for f in feats},
        X_test={f: decode(arrays[f"X_test_{f}"]) for f in feats},
        Y_train=arrays["Y_train"],
        Y_test=arrays["Y_test"],
        label_names=None if labels is None else [str(x) for x in labels],
        metrics=None if metrics is None else [str(m) for m in np.atleast_1d(metrics)],
        train_ids=arrays.get("train_ids", arrays.get("train_images")),
        test_ids=arrays.get("test_ids", arrays.get("test_images")),
        dtype=dtype,
    )


# What reading a damaged or truncated zip archive raises
_DAMAGED = (
    zipfile.BadZipFile,
    EOFError,
    KeyError,  # a member the central directory lists but cannot find
    zlib.error,
    NotImplementedError,  # a compression method zipfile does not know
    RuntimeError,  # "encrypted, password required"
    UnicodeDecodeError,
    struct.error,
)


def read_npz_arrays(path):
    """All arrays of an .npz archive, as a dict (pickle-free).

    A single ``.npy`` array or a damaged archive raises ValueError and I/O
    errors raise OSError, for the caller to phrase (dataset, model or
    features file).
    """
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if not magic.startswith((b"PK", b"\x93NUMPY")):
        # np.load would try it as a pickle and say so, which misleads
        raise ValueError("it is not an .npz archive (no zip header)")
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array, not an .npz archive")
        with npz:
            return {key: npz[key] for key in npz.files}
    except _DAMAGED as exc:  # zipfile and zlib meeting a flipped byte
        raise ValueError(
            f"the archive is damaged ({type(exc).__name__}: {exc})"
        ) from None


def _read_npz(path):
    """All arrays of a dataset .npz archive, as a dict."""
    try:
        return read_npz_arrays(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read as .npz ({exc}).") from None


def _decoder(encoding, path):
    """Function turning a stored feature array into its values."""
    if encoding is None:
        return lambda X: X
    if str(encoding) != "sqrt-uint16":
        raise ValueError(
            f"{path}: unknown encoding {str(encoding)!r} (known: 'sqrt-uint16')."
        )

    def decode(Q):
        if Q.dtype != np.uint16:
            raise ValueError(f"{path}: encoding 'sqrt-uint16' needs uint16 arrays.")
        return np.square(Q / _SQRT_UINT16_SCALE)

    return decode


def _str_item(value, default):
    return default if value is None else str(value)


# -- MULAN ARFF ------------------------------------------------------------------


def _load_folder(folder, dtype):
    npz = sorted(folder.glob("*.npz"))
    arff = sorted(folder.glob("*.arff"))
    if len(npz) == 1 and not arff:
        return _load_npz(npz[0], dtype)
    if len(npz) > 1 or (npz and arff):
        found = [p.name for p in npz + arff]
        raise ValueError(
            f"{folder}: several datasets in the folder ({found}); pass one file."
        )
    if not arff:
        raise ValueError(f"{folder}: no .npz or .arff file in the folder.")
    train, test = _pair_in_folder(folder, prefix="", where=folder)
    return _load_mulan(train, test, _find_xml(train), dtype)


def _sibling_name(name):
    """``X-train.arff`` <-> ``X-test.arff`` (last train/test token, case kept)."""
    matches = list(_SPLIT_TOKEN.finditer(name))
    if not matches:
        return None
    m = matches[-1]
    word = m.group(0)
    other = "test" if word.lower() == "train" else "train"
    if word.isupper():
        other = other.upper()
    elif word[0].isupper():
        other = other.capitalize()
    return name[: m.start()] + other + name[m.end() :]


def _arff_pair(path):
    """(train, test) paths for one ARFF file of a MULAN pair."""
    other = _sibling_name(path.name)
    if other is None:
        raise ValueError(
            f"{path}: cannot tell whether this is the train or the test file "
            "(its name contains neither 'train' nor 'test')."
        )
    sibling = path.with_name(other)
    if not sibling.exists():
        raise ValueError(
            f"{path}: its sibling {sibling.name!r} was not found beside it."
        )
    is_train = _SPLIT_TOKEN.findall(path.name)[-1].lower() == "train"
    return (path, sibling) if is_train else (sibling, path)


def _pair_in_folder(folder, prefix, where):
    """The single (train, test) ARFF pair in `folder` whose names start with prefix."""
    pairs = []
    for train in sorted(folder.glob(f"{glob.escape(prefix)}*.arff")):
        found = list(_SPLIT_TOKEN.finditer(train.name))
        if not found or found[-1].group(0).lower() != "train":
            continue
        if prefix and _mulan_stem(train) != prefix:
            continue
        test = train.with_name(_sibling_name(train.name))
        if test.exists():
            pairs.append((train, test))
    if len(pairs) == 1:
        return pairs[0]
    if not pairs:
        raise ValueError(
            f"{where}: no train/test ARFF pair (such as '{prefix or 'X'}-train.arff' "
            f"and '{prefix or 'X'}-test.arff') found in {folder}."
        )
    names = [t.name for t, _ in pairs]
    raise ValueError(
        f"{where}: several train/test ARFF pairs in {folder} ({names}); "
        "pass one of the .arff files."
    )


def _mulan_stem(train):
    """Dataset stem of a train file: ``Corel5k-train-sparse.arff`` -> ``Corel5k``."""
    m = list(_SPLIT_TOKEN.finditer(train.name))[-1]
    return train.name[: m.start()].rstrip("-_. ")


def _find_xml(train):
    stem = _mulan_stem(train)
    candidate = train.with_name(stem + ".xml")
    if stem and candidate.exists():
        return candidate
    xmls = sorted(train.parent.glob("*.xml"))
    if len(xmls) == 1:
        return xmls[0]
    raise ValueError(
        f"{train}: no MULAN label file found beside it (looked for "
        f"{candidate.name!r}, or a single .xml file in the folder)."
    )


def _reject_missing(path, part):
    """ARFF ``?`` values are read as NaN; name them as what they are."""
    rows, cols = np.nonzero(np.isnan(part.data))
    if rows.size:
        raise ValueError(
            f"{path}: {np.unique(rows).size} row(s) have missing values ('?' or nan), "
            f"first in data row {rows[0] + 1}, attribute {part.names[cols[0]]!r}; "
            "fill or drop them first."
        )


def _load_mulan(train, test, xml, dtype):
    logger.debug("reading MULAN dataset %s, %s, labels %s", train, test, xml)
    labels = read_mulan_labels(xml)
    tr, te = read_arff(train), read_arff(test)
    if tr.names != te.names:
        raise ValueError(f"{train} and {test}: the attributes differ.")
    col = {n: j for j, n in enumerate(tr.names)}  # names are unique (read_arff)
    missing = [n for n in labels if n not in col]
    if missing:
        raise ValueError(
            f"{xml}: {len(missing)} label(s) not found among the attributes of "
            f"{train.name}: {missing[:5]}{' ...' if len(missing) > 5 else ''}."
        )
    for path, part in ((train, tr), (test, te)):
        _reject_missing(path, part)
    label_cols = [col[n] for n in labels]
    feat_cols = np.setdiff1d(np.arange(len(tr.names)), label_cols)
    if feat_cols.size == 0:
        raise ValueError(f"{train}: every attribute is a label; no features left.")
    stem = _mulan_stem(train) or train.parent.name
    return _make_dataset(
        source=f"{train} / {test}",
        name=stem,
        description=(
            f"MULAN dataset {stem!r} read from {train.name} and {test.name} "
            f"(labels from {xml.name}): {feat_cols.size} features in one block "
            f"{_ARFF_BLOCK!r}, {len(labels)} labels."
        ),
        feature_names=[_ARFF_BLOCK],
        X_train={_ARFF_BLOCK: tr.data[:, feat_cols]},
        X_test={_ARFF_BLOCK: te.data[:, feat_cols]},
        Y_train=tr.data[:, label_cols],
        Y_test=te.data[:, label_cols],
        label_names=labels,
        metrics=None,
        train_ids=None,
        test_ids=None,
        dtype=dtype,
    )


# -- validation ------------------------------------------------------------------


def _make_dataset(
    *,
    source,
    feature_names,
    X_train,
    X_test,
    Y_train,
    Y_test,
    label_names,
    metrics,
    train_ids,
    test_ids,
    dtype,
    name,
    description,
):
    """Check everything and build the AnnotationDataset (`source` names the file)."""
    if not feature_names or len(set(feature_names)) != len(feature_names):
        raise ValueError(
            f"{source}: feature_names must be non-empty and unique, "
            f"got {feature_names}."
        )
    Y_train = _check_labels(Y_train, "Y_train", source)
    Y_test = _check_labels(Y_test, "Y_test", source)
    if Y_train.shape[0] == 0:
        raise ValueError(f"{source}: the training split has no image.")
    if Y_train.shape[1] != Y_test.shape[1]:
        raise ValueError(
            f"{source}: Y_train has {Y_train.shape[1]} labels, "
            f"Y_test has {Y_test.shape[1]}."
        )
    n_labels = Y_train.shape[1]
    if label_names is None:
        label_names = [f"label{j}" for j in range(n_labels)]
    if len(label_names) != n_labels:
        raise ValueError(
            f"{source}: {len(label_names)} label names for {n_labels} label columns."
        )
    seen, twice = set(), []
    for x in label_names:
        if x in seen and x not in twice:
            twice.append(x)
        seen.add(x)
    if twice:
        raise ValueError(f"{source}: label name(s) listed twice: {twice[:5]}.")
    Xtr, Xte = {}, {}
    for f in feature_names:
        Xtr[f] = _check_block(
            X_train[f], f"X_train[{f!r}]", Y_train.shape[0], dtype, source
        )
        Xte[f] = _check_block(
            X_test[f], f"X_test[{f!r}]", Y_test.shape[0], dtype, source
        )
        if Xtr[f].shape[1] != Xte[f].shape[1]:
            raise ValueError(
                f"{source}: feature {f!r} has {Xtr[f].shape[1]} columns in train "
                f"and {Xte[f].shape[1]} in test."
            )
    return AnnotationDataset(
        name=name,
        description=description,
        feature_names=list(feature_names),
        label_names=list(label_names),
        X_train=Xtr,
        X_test=Xte,
        Y_train=Y_train,
        Y_test=Y_test,
        metrics=_check_metrics(metrics, feature_names, Xtr, Xte, source),
        train_ids=_check_ids(train_ids, "train_ids", Y_train.shape[0], source),
        test_ids=_check_ids(test_ids, "test_ids", Y_test.shape[0], source),
    )


def _check_labels(Y, what, source):
    Y = np.asarray(Y)
    if Y.ndim != 2:
        raise ValueError(f"{source}: {what} must be 2-D, got shape {Y.shape}.")
    if Y.dtype.kind not in "biuf":
        raise ValueError(f"{source}: {what} must be numeric, got dtype {Y.dtype}.")
    ok = (Y == 0) | (Y == 1)
    if not ok.all():
        bad = Y[~ok][0].item()
        raise ValueError(f"{source}: {what} must contain only 0 and 1, found {bad!r}.")
    return np.ascontiguousarray(Y, dtype=np.uint8)


def _check_block(X, what, n_rows, dtype, source):
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{source}: {what} must be 2-D, got shape {X.shape}.")
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{source}: {what} must be numeric, got dtype {X.dtype}.")
    if X.shape[0] != n_rows:
        raise ValueError(
            f"{source}: {what} has {X.shape[0]} rows but the labels have {n_rows}."
        )
    if X.dtype.kind == "f" and not np.isfinite(X).all():
        kind = "NaN" if np.isnan(X).any() else "infinite values"
        raise ValueError(f"{source}: {what} contains {kind}.")
    big = float(np.abs(X).max()) if X.size else 0.0
    limit = float(np.finfo(dtype).max) if np.dtype(dtype).kind == "f" else np.inf
    if big > limit:
        raise ValueError(
            f"{source}: {what} has values up to {big:.3g}, beyond "
            f"{np.dtype(dtype).name}; load it with dtype=np.float64 or rescale it."
        )
    return np.ascontiguousarray(X, dtype=dtype)


def _check_metrics(metrics, feature_names, X_train, X_test, source):
    if metrics is None:
        return {f: _default_metric(X_train[f], X_test[f]) for f in feature_names}
    if len(metrics) != len(feature_names):
        raise ValueError(
            f"{source}: {len(metrics)} metrics for {len(feature_names)} feature blocks."
        )
    out = dict(zip(feature_names, metrics, strict=True))
    for f, m in out.items():
        if m not in BASE_METRICS:
            raise ValueError(
                f"{source}: unknown metric {m!r} for feature {f!r} "
                f"(known: {', '.join(BASE_METRICS)})."
            )
        if m in _NONNEGATIVE_METRICS and _has_negative(X_train[f], X_test[f]):
            raise ValueError(
                f"{source}: metric {m!r} for feature {f!r} needs non-negative "
                "values, but the block has negative ones."
            )
    return out


def _has_negative(*blocks):
    return any(b.size and b.min() < 0 for b in blocks)


def _default_metric(X_train, X_test):
    return "l2" if _has_negative(X_train, X_test) else "l1"


def _check_ids(ids, what, n_rows, source):
    if ids is None:
        return None
    ids = np.asarray(ids).astype(str)
    if ids.shape != (n_rows,):
        raise ValueError(
            f"{source}: {what} has shape {ids.shape}, expected ({n_rows},)."
        )
    return ids

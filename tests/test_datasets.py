"""Tests for mtlm.datasets (embedded Corel5K, npz files, MULAN ARFF) and mtlm._arff."""

import dataclasses
import os
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from mtlm._arff import read_arff
from mtlm.datasets import AnnotationDataset, load_dataset

REPO = Path(__file__).resolve().parents[1]
COREL_FEATURES = [
    "rgb16", "rgb16saliency", "hsv16", "hsv16saliency", "lab16", "lab16saliency",
    "opp64", "opp64sal", "rg64", "rg64sal",
]  # fmt: skip


def _shared_data_dir():
    candidates = [
        os.environ.get("MTLM_SHARED_DATA"),
        REPO / ".." / "shared" / "data",
        "/work/shared/data",
    ]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c).resolve()
    return None


SHARED = _shared_data_dir()


def shared(relpath):
    """Path of a file of the project's shared data folder; skip if absent."""
    path = SHARED / relpath if SHARED is not None else None
    if path is None or not path.exists():
        pytest.skip(f"shared data {relpath} not found (set MTLM_SHARED_DATA)")
    return path


@pytest.fixture(scope="module")
def corel5k():
    return load_dataset("corel5k")


# -- embedded Corel5K ------------------------------------------------------------


def test_corel5k_shapes_and_dtypes(corel5k):
    ds = corel5k
    assert isinstance(ds, AnnotationDataset)
    assert ds.name == "corel5k"
    assert ds.feature_names == COREL_FEATURES
    assert list(ds.X_train) == list(ds.X_test) == COREL_FEATURES
    assert (ds.n_train, ds.n_test, ds.n_labels) == (4500, 499, 260)
    for f in COREL_FEATURES:
        d = 192 if "64" in f else 48
        for X, n in ((ds.X_train[f], 4500), (ds.X_test[f], 499)):
            assert X.shape == (n, d)
            assert X.dtype == np.float32
            assert X.flags.c_contiguous
    assert ds.Y_train.shape == (4500, 260) and ds.Y_test.shape == (499, 260)
    assert ds.Y_train.dtype == ds.Y_test.dtype == np.uint8
    assert set(np.unique(ds.Y_train)) == {0, 1}
    assert len(ds.label_names) == 260 and ds.label_names[:3] == [
        "city",
        "mountain",
        "sky",
    ]
    assert all(isinstance(n, str) for n in ds.label_names)
    assert ds.metrics == dict.fromkeys(COREL_FEATURES, "l1")
    assert ds.train_ids.shape == (4500,) and ds.test_ids.shape == (499,)
    assert ds.train_ids[0] == "1000/1000" and ds.test_ids[0] == "1000/1001"
    assert "Corel5K" in ds.description


def test_corel5k_label_statistics(corel5k):
    # SOURCE.md: cardinality train 3.383, test 3.519; all 260 labels occur in test.
    assert round(corel5k.Y_train.sum(axis=1).mean(), 3) == 3.383
    assert round(corel5k.Y_test.sum(axis=1).mean(), 3) == 3.519
    assert (corel5k.Y_test.sum(axis=0) > 0).all()


def test_corel5k_rows_are_three_histograms(corel5k):
    for f in COREL_FEATURES:
        X = corel5k.X_train[f].astype(np.float64)
        assert X.min() >= 0 and X.max() <= 1
        sums = X.reshape(len(X), 3, -1).sum(axis=2)
        np.testing.assert_allclose(sums, 1.0, atol=1e-4)


def test_corel5k_float64_and_name_case(corel5k):
    ds = load_dataset("Corel5K", dtype=np.float64)
    assert ds.X_test["rg64"].dtype == np.float64
    np.testing.assert_allclose(
        ds.X_test["rg64"], corel5k.X_test["rg64"], rtol=1e-6, atol=1e-12
    )
    assert_array_equal(ds.Y_train, corel5k.Y_train)


def test_embedded_file_is_small_and_documented():
    data = resources.files("mtlm") / "data"
    with resources.as_file(data / "corel5k.npz") as p:
        size = Path(p).stat().st_size
    assert size < 6_000_000
    text = (data / "PROVENANCE.md").read_text(encoding="utf-8")
    assert "sqrt-uint16" in text and "Licence" in text


def _l1(A, B):
    return np.abs(A - B).sum(axis=-1)


def _chi2(A, B):
    s = A + B
    s[s == 0] = 1.0  # the numerator is 0 there too
    return ((A - B) ** 2 / s).sum(axis=-1)


def _max_rel_err(X0, X1, i, j, dist):
    d0, d1 = dist(X0[i], X0[j]), dist(X1[i], X1[j])
    assert (d0 > 0).all()  # no duplicate images among the pairs used here
    return (np.abs(d1 - d0) / d0).max()


def test_corel5k_quantisation_error_against_original(corel5k):
    """Pairwise L1 and chi2 distances move by < 1e-3 relative (PROVENANCE.md)."""
    src = shared("corel5k/corel5k_color10.npz")
    rng = np.random.default_rng(0)
    with np.load(src) as orig:
        assert_array_equal(orig["Y_train"], corel5k.Y_train)
        assert_array_equal(orig["Y_test"], corel5k.Y_test)
        assert list(orig["labels"]) == corel5k.label_names
        assert_array_equal(orig["train_images"], corel5k.train_ids)
        for f in COREL_FEATURES:
            X0 = np.concatenate([orig[f"X_train_{f}"], orig[f"X_test_{f}"]])
            X1 = np.concatenate([corel5k.X_train[f], corel5k.X_test[f]])
            X0, X1 = X0.astype(np.float64), X1.astype(np.float64)
            n = len(X0)
            i, j = rng.integers(0, n, 10_000), rng.integers(0, n, 10_000)
            i, j = i[i != j], j[i != j]
            sub = rng.choice(n, 200, replace=False)
            a, b = np.triu_indices(200, 1)
            for dist in (_l1, _chi2):
                err = max(
                    _max_rel_err(X0, X1, i, j, dist),
                    _max_rel_err(X0, X1, sub[a], sub[b], dist),
                )
                assert err < 1e-3, (f, dist.__name__, err)


# -- MULAN data from the shared folder -------------------------------------------


def test_scene_dense_arff():
    folder = shared("scene")
    ds = load_dataset(folder)
    assert ds.name == "scene"
    assert ds.feature_names == ["features"]
    assert ds.X_train["features"].shape == (1211, 294)
    assert ds.X_test["features"].shape == (1196, 294)
    assert ds.X_train["features"].dtype == np.float32
    assert ds.Y_train.shape == (1211, 6) and ds.Y_test.shape == (1196, 6)
    assert ds.label_names == [
        "Beach", "Sunset", "FallFoliage", "Field", "Mountain", "Urban",
    ]  # fmt: skip
    # SOURCE.md: label cardinality train 1.062, test 1.086.
    assert round(ds.Y_train.sum(axis=1).mean(), 3) == 1.062
    assert round(ds.Y_test.sum(axis=1).mean(), 3) == 1.086
    assert ds.metrics == {"features": "l1"}  # features are non-negative
    other = load_dataset(folder / "scene-test.arff")
    assert_array_equal(other.X_test["features"], ds.X_test["features"])
    assert_array_equal(other.Y_train, ds.Y_train)


def test_corel5k_mulan_sparse_arff():
    ds = load_dataset(shared("corel5k_mulan/Corel5k-train-sparse.arff"))
    assert ds.name == "Corel5k"
    assert ds.X_train["features"].shape == (4500, 499)
    assert ds.X_test["features"].shape == (500, 499)
    assert ds.Y_train.shape == (4500, 374) and ds.Y_test.shape == (500, 374)
    assert len(ds.label_names) == 374 and ds.label_names[0] == "city"
    assert set(np.unique(ds.X_train["features"])) == {0.0, 1.0}
    # SOURCE.md: cardinality train 3.522, test 3.526; 263 labels present in test.
    assert round(ds.Y_train.sum(axis=1).mean(), 3) == 3.522
    assert round(ds.Y_test.sum(axis=1).mean(), 3) == 3.526
    assert (ds.Y_test.sum(axis=0) > 0).sum() == 263
    # First training row of the file: {19 1,93 1,...,461 1,499 1,500 1,501 1,502 1}.
    assert_array_equal(
        np.flatnonzero(ds.X_train["features"][0]),
        [19, 93, 143, 149, 259, 329, 379, 461],
    )
    assert_array_equal(np.flatnonzero(ds.Y_train[0]), [0, 1, 2, 3])


# -- tiny hand-written ARFF files --------------------------------------------------

XML = """<?xml version="1.0" encoding="utf-8"?>
<labels xmlns="http://mulan.sourceforge.net/labels">
<label name="sky"></label>
<label name="sea"></label>
</labels>
"""

DENSE_TRAIN = """% a tiny dataset
@RELATION 'tiny: test'

@attribute f0 numeric
@attribute 'f 1' REAL
@attribute sky {0,1}
@attribute f2 integer
@attribute sea {0,1}

@data
% comment line
0.5,1.25,1,3,0
0,2,0,0,0
1.5, 0.75 ,1,1,0
"""

DENSE_TEST = """@relation tiny
@attribute f0 numeric
@attribute 'f 1' REAL
@attribute sky {0,1}
@attribute f2 integer
@attribute sea {0,1}
@data
'2',0,0,4,1
"""

SPARSE_TRAIN = """@relation tiny
@attribute f0 numeric
@attribute 'f 1' REAL
@attribute sky {0,1}
@attribute f2 integer
@attribute sea {0,1}
@data
{0 0.5,1 1.25,2 1,3 3}
{1 2}
{0 1.5, 1 0.75, 2 1, 3 1}
"""

SPARSE_TEST = """@relation tiny
@attribute f0 numeric
@attribute 'f 1' REAL
@attribute sky {0,1}
@attribute f2 integer
@attribute sea {0,1}
@data
{0 2,3 4,4 1}
"""

TINY_X_TRAIN = [[0.5, 1.25, 3], [0, 2, 0], [1.5, 0.75, 1]]
TINY_Y_TRAIN = [[1, 0], [0, 0], [1, 0]]  # 'sea' never positive in train; row 1 empty
TINY_X_TEST = [[2, 0, 4]]
TINY_Y_TEST = [[0, 1]]


def _write(folder, files):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def tiny_dense(tmp_path):
    return _write(
        tmp_path / "dense",
        {"tiny-train.arff": DENSE_TRAIN, "tiny-test.arff": DENSE_TEST, "tiny.xml": XML},
    )


@pytest.fixture
def tiny_sparse(tmp_path):
    return _write(
        tmp_path / "sparse",
        {
            "tiny-train-sparse.arff": SPARSE_TRAIN,
            "tiny-test-sparse.arff": SPARSE_TEST,
            "tiny.xml": XML,
        },
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["tiny_dense", "tiny_sparse"])
def test_tiny_arff(request, layout, dtype):
    folder = request.getfixturevalue(layout)
    ds = load_dataset(folder, dtype=dtype)
    assert ds.name == "tiny"
    assert ds.feature_names == ["features"]
    assert ds.label_names == ["sky", "sea"]
    X = ds.X_train["features"]
    assert X.dtype == dtype and X.flags.c_contiguous
    assert_array_equal(X, np.array(TINY_X_TRAIN, dtype=dtype))
    assert_array_equal(ds.X_test["features"], np.array(TINY_X_TEST, dtype=dtype))
    assert_array_equal(ds.Y_train, TINY_Y_TRAIN)
    assert_array_equal(ds.Y_test, TINY_Y_TEST)
    assert ds.Y_train.dtype == np.uint8
    assert ds.metrics == {"features": "l1"}
    assert ds.train_ids is None


def test_tiny_arff_every_entry_point(tiny_dense):
    ref = load_dataset(tiny_dense)
    entry_points = ["tiny-train.arff", "tiny-test.arff", "tiny.xml"]
    for path in [tiny_dense / p for p in entry_points] + [str(tiny_dense)]:
        ds = load_dataset(path)
        assert_array_equal(ds.X_train["features"], ref.X_train["features"])
        assert_array_equal(ds.Y_test, ref.Y_test)


def test_arff_reader_header_and_values(tiny_dense):
    a = read_arff(tiny_dense / "tiny-train.arff")
    assert a.relation == "tiny: test"
    assert a.names == ["f0", "f 1", "sky", "f2", "sea"]
    assert a.data.dtype == np.float64 and a.data.shape == (3, 5)
    assert_array_equal(a.data[2], [1.5, 0.75, 1, 1, 0])


@pytest.mark.parametrize(
    "text, match",
    [
        (
            "@relation r\n@attribute x numeric\n@attribute x numeric\n@data\n1,2\n",
            r"line 3: attribute 'x' is declared twice",
        ),
        (
            "@relation r\n@attribute x numeric\n@attribute y numeric\n@data\n"
            "{0 1, 1 2, 0 3}\n",
            r"line 5: sparse index 0 is given twice in one row",
        ),
    ],
)
def test_arff_repeated_names_and_sparse_indices_raise(tmp_path, text, match):
    path = tmp_path / "a.arff"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_arff(path)


def test_arff_sparse_omitted_nominal_is_first_value(tmp_path):
    # As in Weka, an omitted sparse entry is index 0: the first nominal value.
    path = tmp_path / "a.arff"
    path.write_text(
        "@relation r\n@attribute x numeric\n@attribute y {1,0}\n@data\n{0 3}\n{1 0}\n"
    )
    assert_array_equal(read_arff(path).data, [[3, 1], [0, 0]])


def test_arff_quoted_values_and_missing(tmp_path):
    path = tmp_path / "a.arff"
    path.write_text(
        "@relation r\n@attribute 'a,b' numeric\n@attribute c {'0','1'}\n"
        "@data\n'1.5','1'\n?,0\n"
    )
    a = read_arff(path)
    assert a.names == ["a,b", "c"]
    assert_array_equal(a.data, [[1.5, 1], [np.nan, 0]])


def test_missing_arff_values_are_named(tmp_path):
    folder = _write(
        tmp_path,
        {
            "gap-train.arff": DENSE_TRAIN,
            "gap-test.arff": DENSE_TEST.replace("'2',0,0,4,1", "'2',0,?,4,1"),
            "gap.xml": XML,
        },
    )
    # a label value, in the test file
    match = r"gap-test.arff: 1 row\(s\) have missing values \('\?' or nan\), first in "
    match += "data row 1, attribute 'sky'"
    with pytest.raises(ValueError, match=match):
        load_dataset(folder / "gap-train.arff")


def test_negative_features_default_to_l2(tmp_path):
    folder = _write(
        tmp_path,
        {
            "neg-train.arff": DENSE_TRAIN.replace("0.5,1.25", "-0.5,1.25"),
            "neg-test.arff": DENSE_TEST,
            "neg.xml": XML,
        },
    )
    ds = load_dataset(folder / "neg-test.arff")
    assert ds.metrics == {"features": "l2"}
    assert ds.X_train["features"][0, 0] == -0.5


# -- user npz --------------------------------------------------------------------


def _user_arrays(rng):
    return {
        "feature_names": np.array(["colour", "gist"]),
        "X_train_colour": rng.random((5, 3)),
        "X_test_colour": rng.random((2, 3)),
        "X_train_gist": rng.standard_normal((5, 4)).astype(np.float32),
        "X_test_gist": rng.standard_normal((2, 4)).astype(np.float32),
        "Y_train": np.array([[1, 0], [0, 1], [1, 1], [0, 0], [1, 0]], dtype=bool),
        "Y_test": np.array([[0, 1], [1, 0]], dtype=np.int64),
    }


def test_user_npz_round_trip(tmp_path, rng):
    arrays = _user_arrays(rng)
    arrays |= {
        "label_names": np.array(["cat", "dog"]),
        "metrics": np.array(["chi2", "l2"]),
        "train_ids": np.array([f"im{i}" for i in range(5)]),
        "description": np.array("my data"),
    }
    path = tmp_path / "mine.npz"
    np.savez(path, **arrays)
    ds = load_dataset(path, dtype=np.float64)
    assert ds.name == "mine" and ds.description == "my data"
    assert ds.feature_names == ["colour", "gist"]
    for f in ds.feature_names:
        assert_array_equal(ds.X_train[f], arrays[f"X_train_{f}"])
        assert_array_equal(ds.X_test[f], arrays[f"X_test_{f}"])
        assert ds.X_train[f].dtype == np.float64
    assert_array_equal(ds.Y_train, arrays["Y_train"])
    assert_array_equal(ds.Y_test, arrays["Y_test"])
    assert ds.Y_train.dtype == ds.Y_test.dtype == np.uint8
    assert ds.label_names == ["cat", "dog"]
    assert ds.metrics == {"colour": "chi2", "gist": "l2"}
    assert list(ds.train_ids) == [f"im{i}" for i in range(5)] and ds.test_ids is None
    # The folder holding just this file loads the same.
    assert_array_equal(load_dataset(tmp_path).X_test["gist"], ds.X_test["gist"])


def test_user_npz_minimal_keys(tmp_path, rng):
    arrays = _user_arrays(rng)
    np.savez_compressed(tmp_path / "m.npz", **arrays)
    ds = load_dataset(str(tmp_path / "m.npz"))
    assert ds.label_names == ["label0", "label1"]
    # colour is in [0, 1), gist has negative values.
    assert ds.metrics == {"colour": "l1", "gist": "l2"}
    assert ds.X_train["colour"].dtype == np.float32


def test_user_npz_labels_alias_and_sqrt_uint16(tmp_path):
    x = np.array([[0.0, 0.25, 0.75], [1.0, 0.0, 0.0]])
    q = np.rint(np.sqrt(x) * 65535).astype(np.uint16)
    np.savez(
        tmp_path / "h.npz",
        feature_names=np.array(["h"]),
        X_train_h=q,
        X_test_h=q[:1],
        Y_train=np.eye(2, dtype=np.uint8),
        Y_test=np.ones((1, 2), np.uint8),
        labels=np.array(["a", "b"]),
        encoding=np.array("sqrt-uint16"),
    )
    ds = load_dataset(tmp_path / "h.npz", dtype=np.float64)
    np.testing.assert_allclose(ds.X_train["h"], x, atol=1e-4)
    assert ds.label_names == ["a", "b"]


def test_dataset_is_frozen_and_repr_is_short(tmp_path, rng):
    np.savez(tmp_path / "m.npz", **_user_arrays(rng))
    ds = load_dataset(tmp_path / "m.npz")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "other"
    assert repr(ds) == (
        "AnnotationDataset(name='m', n_train=5, n_test=2, n_labels=2, "
        "features={'colour': 3, 'gist': 4})"
    )


# -- errors ----------------------------------------------------------------------


def _npz(tmp_path, **changes):
    arrays = _user_arrays(np.random.default_rng(0))
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


def test_values_beyond_float32_name_the_dtype(tmp_path):
    big = np.random.default_rng(0).random((5, 3)) * 1e39
    path = _npz(tmp_path, X_train_colour=big)
    match = r"X_train\['colour'\] has values up to 9.*e\+38, beyond float32; load it "
    with pytest.raises(ValueError, match=match):
        load_dataset(path)
    ds = load_dataset(path, dtype=np.float64)  # and they are kept as they are
    assert_array_equal(ds.X_train["colour"], big)


def test_error_unknown_name():
    with pytest.raises(ValueError, match=r"Unknown dataset name 'corel15k'.*corel5k"):
        load_dataset("corel15k")


def test_paths_as_bytes_and_non_paths(tmp_path, rng):
    np.savez(tmp_path / "m.npz", **_user_arrays(rng))
    ds = load_dataset(str(tmp_path / "m.npz").encode())
    assert ds.n_train == 5 and ds.name == "m"
    for bad in (5, None, ["corel5k"]):
        with pytest.raises(ValueError, match="must be a dataset name or a path"):
            load_dataset(bad)


def test_error_missing_file(tmp_path):
    with pytest.raises(ValueError, match=r"no such file or folder"):
        load_dataset(tmp_path / "absent.npz")


def test_error_unsupported_file_and_dtype(tmp_path):
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match=r"unsupported file type '.csv'"):
        load_dataset(tmp_path / "x.csv")
    with pytest.raises(ValueError, match=r"dtype must be float32 or float64"):
        load_dataset("corel5k", dtype=np.int32)


def test_error_not_an_npz(tmp_path):
    (tmp_path / "a.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"a.npz: cannot read as .npz"):
        load_dataset(tmp_path / "a.npz")
    np.save(tmp_path / "b.npy", np.zeros(3))
    (tmp_path / "b.npy").rename(tmp_path / "b.npz")
    with pytest.raises(ValueError, match=r"single array"):
        load_dataset(tmp_path / "b.npz")


@pytest.mark.parametrize("key", ["Y_test", "feature_names", "X_test_gist"])
def test_error_npz_missing_keys(tmp_path, key):
    with pytest.raises(ValueError, match=rf"bad.npz: missing key\(s\) \['{key}'\]"):
        load_dataset(_npz(tmp_path, **{key: None}))


@pytest.mark.parametrize("bad", [2, -1, 0.5, np.nan])
def test_error_labels_not_binary(tmp_path, bad):
    Y = np.zeros((2, 2))
    Y[1, 0] = bad
    with pytest.raises(ValueError, match=r"Y_test must contain only 0 and 1"):
        load_dataset(_npz(tmp_path, Y_test=Y))


def test_error_row_counts_disagree(tmp_path, rng):
    with pytest.raises(
        ValueError, match=r"X_train\['gist'\] has 4 rows but the labels have 5"
    ):
        load_dataset(_npz(tmp_path, X_train_gist=rng.random((4, 4))))
    with pytest.raises(ValueError, match=r"Y_train has 2 labels, Y_test has 3"):
        load_dataset(_npz(tmp_path, Y_test=np.zeros((2, 3))))


def test_error_feature_dims_disagree(tmp_path, rng):
    with pytest.raises(ValueError, match=r"'colour' has 3 columns in train and 5"):
        load_dataset(_npz(tmp_path, X_test_colour=rng.random((2, 5))))


@pytest.mark.parametrize("value, word", [(np.nan, "NaN"), (np.inf, "infinite")])
def test_error_non_finite_features(tmp_path, rng, value, word):
    X = rng.random((2, 3))
    X[1, 2] = value
    with pytest.raises(ValueError, match=rf"X_test\['colour'\] contains {word}"):
        load_dataset(_npz(tmp_path, X_test_colour=X))


def test_error_missing_value_in_arff(tmp_path):
    folder = _write(
        tmp_path,
        {
            "t-train.arff": DENSE_TRAIN.replace("0,2,0,0,0", "0,?,0,0,0"),
            "t-test.arff": DENSE_TEST,
            "t.xml": XML,
        },
    )
    match = r"t-train.arff: 1 row\(s\) have missing values .* row 2, attribute 'f 1'"
    with pytest.raises(ValueError, match=match):
        load_dataset(folder)


def test_error_metrics(tmp_path):
    with pytest.raises(ValueError, match=r"unknown metric 'cosine' for feature 'gist'"):
        load_dataset(_npz(tmp_path, metrics=np.array(["l1", "cosine"])))
    with pytest.raises(
        ValueError, match=r"'hellinger' for feature 'gist' needs non-neg"
    ):
        load_dataset(_npz(tmp_path, metrics=np.array(["l1", "hellinger"])))
    with pytest.raises(ValueError, match=r"1 metrics for 2 feature blocks"):
        load_dataset(_npz(tmp_path, metrics=np.array(["l1"])))


def test_error_label_names_count(tmp_path):
    with pytest.raises(ValueError, match=r"3 label names for 2 label columns"):
        load_dataset(_npz(tmp_path, label_names=np.array(["a", "b", "c"])))


def test_error_label_listed_twice(tmp_path, tiny_dense):
    with pytest.raises(ValueError, match=r"label name\(s\) listed twice: \['a'\]"):
        load_dataset(_npz(tmp_path, label_names=np.array(["a", "a"])))
    (tiny_dense / "tiny.xml").write_text(XML.replace('"sea"', '"sky"'))
    with pytest.raises(ValueError, match=r"listed twice: \['sky'\]"):
        load_dataset(tiny_dense)


def test_error_empty_training_split(tmp_path):
    empty = dict(
        X_train_colour=np.zeros((0, 3)),
        X_train_gist=np.zeros((0, 4), np.float32),
        Y_train=np.zeros((0, 2), dtype=bool),
    )
    with pytest.raises(ValueError, match="the training split has no image"):
        load_dataset(_npz(tmp_path, **empty))


def test_error_xml_label_not_in_arff(tiny_dense):
    (tiny_dense / "tiny.xml").write_text(XML.replace('"sea"', '"ocean"'))
    with pytest.raises(ValueError, match=r"tiny.xml: 1 label\(s\) not found .*'ocean'"):
        load_dataset(tiny_dense)


def test_error_missing_sibling_and_xml(tiny_dense):
    (tiny_dense / "tiny-test.arff").unlink()
    with pytest.raises(ValueError, match=r"sibling 'tiny-test.arff' was not found"):
        load_dataset(tiny_dense / "tiny-train.arff")
    with pytest.raises(ValueError, match=r"no train/test ARFF pair"):
        load_dataset(tiny_dense)
    (tiny_dense / "tiny-test.arff").write_text(DENSE_TEST)
    (tiny_dense / "tiny.xml").unlink()
    with pytest.raises(ValueError, match=r"no MULAN label file found .*'tiny.xml'"):
        load_dataset(tiny_dense / "tiny-test.arff")


def test_error_arff_name_without_split(tmp_path):
    (tmp_path / "all.arff").write_text(DENSE_TEST)
    with pytest.raises(ValueError, match=r"neither 'train' nor 'test'"):
        load_dataset(tmp_path / "all.arff")


def test_error_ambiguous_folder(tiny_dense, tmp_path, rng):
    sparse = {
        "tiny-train-sparse.arff": SPARSE_TRAIN,
        "tiny-test-sparse.arff": SPARSE_TEST,
    }
    _write(tiny_dense, sparse)
    with pytest.raises(ValueError, match=r"several train/test ARFF pairs"):
        load_dataset(tiny_dense)
    # One of the files still names the pair to read.
    assert load_dataset(tiny_dense / "tiny-test-sparse.arff").n_train == 3
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no .npz or .arff file"):
        load_dataset(tmp_path / "empty")


@pytest.mark.parametrize(
    "data, match",
    [
        ("{0 1,7 1}", r"line 5: bad sparse entry '7 1'"),
        ("{0 1,x}", r"line 5: bad sparse entry 'x'"),
        ("1,2,0", r"line 5: 3 values, expected 2"),
        ("1,abc", r"line 5: value 'abc' is not a number"),
        ("1,2", r"attribute 'y' has value 2, not among its nominal values"),
    ],
)
def test_error_bad_arff_rows(tmp_path, data, match):
    path = tmp_path / "a.arff"
    path.write_text(
        f"@relation r\n@attribute x numeric\n@attribute y {{0,1}}\n@data\n{data}\n"
    )
    with pytest.raises(ValueError, match=match):
        read_arff(path)


@pytest.mark.parametrize(
    "header, match",
    [
        ("@attribute s string\n", r"attribute 's' has type 'string'"),
        ("@attribute c {red,green}\n", r"nominal attribute 'c' has non-numeric"),
        ("@attribute x numeric\n@foo\n", r"unexpected header line '@foo'"),
        ("", r"no @attribute before @data"),
    ],
)
def test_error_bad_arff_header(tmp_path, header, match):
    path = tmp_path / "a.arff"
    path.write_text(f"@relation r\n{header}@data\n")
    with pytest.raises(ValueError, match=match):
        read_arff(path)


def test_error_not_arff(tmp_path):
    path = tmp_path / "a.arff"
    path.write_text("just text\n")
    with pytest.raises(ValueError, match=r"a.arff, line 1: unexpected header line"):
        read_arff(path)
    path.write_text("@relation r\n@attribute x numeric\n")
    with pytest.raises(ValueError, match=r"a.arff: no @data section"):
        read_arff(path)

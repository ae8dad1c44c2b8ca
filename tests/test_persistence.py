"""Model files: round trip, atomic writes and clear errors."""

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.exceptions import ConvergenceWarning

import mtlm
from mtlm import MTLMAnnotator, load_model


def _fitted(rng, metrics=None, diagonal=False):
    n = 60
    X = {"a": rng.random((n, 5)).astype(np.float32), "b": rng.random((n, 3))}
    if diagonal:
        X = X["b"]
    Y = (rng.random((n, 4)) < 0.4).astype(np.uint8)
    return MTLMAnnotator(k=3, metrics=metrics, random_state=0).fit(X, Y), X


@pytest.mark.parametrize("metrics", [None, {"a": "hellinger", "b": "chi2"}, "diag"])
def test_round_trip_predicts_exactly_the_same(rng, tmp_path, metrics):
    diagonal = metrics == "diag"
    est, X = _fitted(rng, None if diagonal else metrics, diagonal)
    path = est.save(
        tmp_path / "m.npz",
        label_names=["w", "x", "y", "z"],
        info={"F1": np.float64(0.5)},
    )
    loaded = load_model(path)
    assert_array_equal(loaded.decision_function(X), est.decision_function(X))
    assert_array_equal(loaded.predict(X), est.predict(X))
    assert loaded.label_names_ == ["w", "x", "y", "z"]
    assert loaded.model_info_ == {"F1": 0.5}
    assert loaded.get_params() == est.get_params()
    assert_array_equal(
        loaded.base_distances_.base_means_, est.base_distances_.base_means_
    )
    assert not list(tmp_path.glob(".mtlm-*"))  # no temporary file left behind


def test_file_is_pickle_free_and_documented(rng, tmp_path):
    est, _ = _fitted(rng)
    est.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        assert {
            "weights_shared",
            "weights_label",
            "bias",
            "scales",
            "Y_train",
            "X_train_0",
            "X_train_1",
        } <= set(z.files)
    assert meta["format"] == "mtlm-model" and meta["format_version"] == 1
    assert meta["feature_names"] == ["a", "b"] and meta["method"] == "jec"


def test_a_damaged_byte_anywhere_is_a_value_error(rng, tmp_path):
    est, _ = _fitted(rng)
    raw = est.save(tmp_path / "m.npz") and (tmp_path / "m.npz").read_bytes()
    messages = set()
    for pos in range(40, len(raw) - 40, max(1, len(raw) // 150)):
        bad = bytearray(raw)
        bad[pos] ^= 0x55
        (tmp_path / "bad.npz").write_bytes(bytes(bad))
        try:
            load_model(tmp_path / "bad.npz")
        except ValueError as exc:  # never zlib.error, KeyError, ...
            messages.add(str(exc).split("(")[1][:20])
    # the flips reach the zlib streams, not only the CRCs and headers
    assert any(m.startswith("the archive is damag") for m in messages), messages


def test_newer_version_truncated_and_foreign_files_raise(rng, tmp_path):
    est, _ = _fitted(rng)
    path = tmp_path / "m.npz"
    est.save(path)
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    meta["format_version"] = 99
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "new.npz", **arrays)
    with pytest.raises(ValueError, match="format version 99.*upgrade mtlm"):
        load_model(tmp_path / "new.npz")

    data = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable mtlm model"):
        load_model(tmp_path / "cut.npz")

    np.savez(tmp_path / "other.npz", a=np.ones(3))
    with pytest.raises(ValueError, match="not an mtlm model file"):
        load_model(tmp_path / "other.npz")

    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match="not a readable mtlm model"):
        load_model(tmp_path / "text.npz")

    del arrays["X_train_1"]
    arrays["meta"] = np.array(json.dumps({**meta, "format_version": 1}))
    np.savez(tmp_path / "part.npz", **arrays)
    with pytest.raises(
        ValueError, match=r"incomplete model file: missing \['X_train_1'\]"
    ):
        load_model(tmp_path / "part.npz")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "absent.npz")


def test_failed_save_leaves_nothing(rng, tmp_path, monkeypatch):
    est, _ = _fitted(rng)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(KeyboardInterrupt):
        est.save(tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


def test_label_names_length_checked(rng, tmp_path):
    est, _ = _fitted(rng)
    with pytest.raises(ValueError, match="label_names has 2 names for 4 labels"):
        est.save(tmp_path / "m.npz", label_names=["a", "b"])
    assert mtlm.load_model is load_model


def _rewritten(path, edit):
    """Change a model file's arrays / metadata with ``edit``; the new file's path."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    edit(arrays, meta)
    arrays["meta"] = np.array(json.dumps(meta))
    bad = Path(path).parent / "bad.npz"
    np.savez(bad, **arrays)
    return bad


def _edited(rng, tmp_path, edit):
    """Save a model, change it with ``edit``, write it back."""
    est, _ = _fitted(rng)
    return _rewritten(
        est.save(tmp_path / "m.npz", label_names=["w", "x", "y", "z"]), edit
    )


def _set_array(key, value):
    def edit(arrays, meta):
        arrays[key] = value(arrays[key]) if callable(value) else value

    return edit


def _set_meta(key, value, sub=None):
    def edit(arrays, meta):
        (meta[sub] if sub else meta)[key] = value

    return edit


@pytest.mark.parametrize(
    "edit, match",
    [
        (_set_array("weights_shared", lambda a: np.full_like(a, np.nan)), "NaN"),
        (_set_array("weights_shared", np.ones(1)), r"weights_shared must be of shape"),
        (_set_array("weights_label", lambda a: -np.ones_like(a)), "must be >= 0"),
        (_set_array("bias", np.zeros(7)), r"bias must be of shape \(4,\)"),
        (_set_array("scales", lambda a: -a), "scales must be > 0"),
        (_set_array("base_means", lambda a: -a), "base_means must be >= 0"),
        (_set_array("X_train_0", lambda a: np.full_like(a, np.nan)), "NaN"),
        (_set_array("X_train_0", lambda a: a.astype(str)), "X_train"),
        (_set_array("X_train_1", lambda a: a[:, :2]), "X_train"),
        (_set_array("Y_train", lambda a: a[:5]), "Y_train has 5 rows"),
        (_set_array("Y_train", lambda a: 2 * a), "Y_train"),
        (_set_array("objective", np.array(["x"])), "objective must be numeric"),
        (_set_meta("k", 0, "params"), "k must be >= 1"),
        (_set_meta("method", "foo", "params"), "method"),
        (_set_meta("nope", 1, "params"), "nope"),
        (_set_meta("tau", -1.0), "tau"),
        (_set_meta("tau", "x"), "tau"),
        (_set_meta("n_iter", -2), "n_iter"),
        (_set_meta("metrics", ["l1"]), "one entry per block"),
        (_set_meta("metrics", ["l1", "cosine"]), "metric must be one of"),
        (_set_meta("dims", [5, 0]), "dims"),
        (_set_meta("label_names", ["w"]), "label_names"),
        (_set_meta("diagonal", "no"), "diagonal"),
        (_set_meta("columns", "x"), "meta 'columns'"),
        (_set_meta("method", "mtlm-ldml"), "meta 'method' 'mtlm-ldml' differs"),
        (_set_meta("label_names", ["w", "x", "w", "z"]), "4 distinct names"),
        (_set_meta("normalize", "median"), "meta 'normalize' must be one of"),
        (_set_meta("label_names", [1, 2, 3, 4]), "label_names"),
        (_set_meta("format_version", 0), "0 is not a model format version"),
        (_set_meta("format_version", True), "True is not a model format version"),
        (_set_meta("format_version", "1"), "'1' is not a model format version"),
        (_set_meta("columns", [["a"], None]), "meta 'columns'"),
    ],
)
def test_edited_model_files_raise_naming_the_problem(rng, tmp_path, edit, match):
    bad = _edited(rng, tmp_path, edit)
    with pytest.raises(ValueError, match=match) as info:
        load_model(bad)
    assert str(bad) in str(info.value)


def test_a_npy_file_is_not_a_model(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros(3))
    with pytest.raises(ValueError, match="x.npy is not a readable mtlm model file"):
        load_model(tmp_path / "x.npy")


def test_save_to_a_folder_raises(rng, tmp_path):
    est, _ = _fitted(rng)
    with pytest.raises(ValueError, match="is a folder; give a file name"):
        est.save(tmp_path)
    assert not list(tmp_path.iterdir())


def _lmnn_fitted(rng, method="mtlm-lmnn"):
    n = 60
    X = {"a": rng.random((n, 5)), "b": rng.random((n, 3))}
    Y = (rng.random((n, 4)) < 0.4).astype(np.uint8)
    est = MTLMAnnotator(method, k=3, max_iter=20, random_state=0)
    with warnings.catch_warnings():  # a fit cut at max_iter saves converged_ too
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, Y)
    return est, X


@pytest.mark.parametrize("method", ["mtlm-lmnn", "global-lmnn"])
def test_round_trip_keeps_lmnn_attributes_and_the_tau_search(rng, tmp_path, method):
    est, X = _lmnn_fitted(rng, method)
    loaded = load_model(est.save(tmp_path / "m.npz"))
    assert_array_equal(loaded.n_active_, est.n_active_)
    assert loaded.n_active_.dtype == np.int64
    assert loaded.n_triplets_ == est.n_triplets_
    assert loaded.margin_ == est.margin_
    assert loaded.converged_ is est.converged_
    assert_array_equal(loaded.tau_grid_, est.tau_grid_)
    assert_array_equal(loaded.tau_scores_, est.tau_scores_)
    assert_array_equal(loaded.objective_, est.objective_)
    assert_array_equal(loaded.decision_function(X), est.decision_function(X))


def test_a_file_without_the_optional_pieces_still_loads(rng, tmp_path):
    est, X = _lmnn_fitted(rng)

    def older(arrays, meta):  # as written before these pieces were added
        for key in ("n_active", "tau_grid", "tau_scores"):
            arrays.pop(key)
        del meta["lmnn"]

    loaded = load_model(_rewritten(est.save(tmp_path / "m.npz"), older))
    assert loaded.tau_grid_ is None and loaded.tau_scores_ is None
    assert not hasattr(loaded, "n_active_")
    assert_array_equal(loaded.decision_function(X), est.decision_function(X))


def _edited_lmnn(rng, tmp_path, edit):
    est, _ = _lmnn_fitted(rng)
    return _rewritten(est.save(tmp_path / "m.npz"), edit)


def _drop(key):
    def edit(arrays, meta):
        arrays.pop(key)

    return edit


@pytest.mark.parametrize(
    "edit, match",
    [
        (_set_array("n_active", np.ones(7, dtype=np.int64)), r"n_active must be 4"),
        (_set_array("n_active", lambda a: a - 10**6), "n_active must be >= 0"),
        (_set_array("n_active", lambda a: a + 0.5), "counts"),
        (_drop("n_active"), "need both"),
        (_set_meta("converged", "yes", "lmnn"), "converged"),
        (_set_meta("n_triplets", -1, "lmnn"), "n_triplets"),
        (_set_meta("margin", "x", "lmnn"), "margin"),
        (_drop("tau_scores"), "saved together"),
        (_set_array("tau_grid", lambda a: -a), "tau_grid must be > 0"),
        (_set_array("tau_scores", np.zeros(3)), "tau_scores must be of shape"),
    ],
)
def test_edited_lmnn_pieces_raise_naming_the_problem(rng, tmp_path, edit, match):
    bad = _edited_lmnn(rng, tmp_path, edit)
    with pytest.raises(ValueError, match=match) as info:
        load_model(bad)
    assert str(bad) in str(info.value)


def test_a_model_fitted_on_a_cluster_loads_to_run_locally(rng, tmp_path):
    est, X = _fitted(rng)
    est.set_params(backend="dask", dask_client="tcp://127.0.0.1:1")
    loaded = load_model(est.save(tmp_path / "m.npz"))
    assert loaded.backend == "local" and loaded.dask_client is None
    est.set_params(backend="local", dask_client=None)
    assert_array_equal(loaded.decision_function(X), est.decision_function(X))


def test_save_into_a_missing_folder_names_it(rng, tmp_path):
    est, _ = _fitted(rng)
    target = tmp_path / "no" / "such" / "m.npz"
    with pytest.raises(
        FileNotFoundError, match=r"cannot save to .*m\.npz: folder .*such"
    ):
        est.save(target)


def test_label_names_as_one_string_and_nan_info(rng, tmp_path):
    est, _ = _fitted(rng)
    with pytest.raises(ValueError, match="label_names must be a list of 4 names"):
        est.save(tmp_path / "m.npz", label_names="wxyz")
    path = est.save(
        tmp_path / "m.npz", info={"F1": float("nan"), "v": np.array([np.inf, 1.0])}
    )
    with np.load(path) as z:
        text = str(z["meta"])
    assert "NaN" not in text and "Infinity" not in text  # standard JSON
    assert load_model(path).model_info_ == {"F1": None, "v": [None, 1.0]}


def test_bad_label_names_and_info_are_value_errors(rng, tmp_path):
    est, _ = _fitted(rng)
    loop = {"a": 1}
    loop["self"] = loop
    shared = [1, 2]  # the same list twice is not a cycle
    deep = []
    for _ in range(5000):
        deep = [deep]
    cases = [
        (dict(label_names=5), "label_names must be a list of 4 names, got 5"),
        (dict(label_names=["a", "b", "a", "c"]), "'a' is repeated"),
        (dict(label_names=[None] * 4), "'None' is repeated"),
        (dict(info=loop), "info refers to itself"),
        (dict(info=[loop]), "info must be a dict or None, got list"),
        (dict(info={"deep": deep}), "info is nested too deeply"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            est.save(tmp_path / "m.npz", **kwargs)
    assert not (tmp_path / "m.npz").exists()
    est.set_params(random_state=np.int64(3))  # a numpy seed is kept, as an int
    path = est.save(tmp_path / "m.npz", info={"x": shared, "y": [shared]})
    assert load_model(path).random_state == 3
    assert load_model(path).model_info_ == {"x": [1, 2], "y": [[1, 2]]}


def test_saved_probability_follows_the_fitted_state(rng, tmp_path):
    n = 40
    X = rng.random((n, 4))
    Y = (rng.random((n, 3)) < 0.4).astype(np.uint8)
    a = MTLMAnnotator(probability=True, tau=1.0).fit(X, Y).set_params(probability=False)
    la = load_model(a.save(tmp_path / "a.npz"))
    assert la.probability and hasattr(la, "proba_coef_")
    b = MTLMAnnotator(tau=1.0).fit(X, Y).set_params(probability=True)
    lb = load_model(b.save(tmp_path / "b.npz"))
    assert not lb.probability and not hasattr(lb, "predict_proba")


def test_model_files_get_the_usual_permissions(rng, tmp_path):
    est, _ = _fitted(rng)
    old = os.umask(0o022)
    try:
        path = est.save(tmp_path / "m.npz")
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o644
    os.chmod(path, 0o640)  # overwriting keeps the file's mode
    est.save(path)
    assert os.stat(path).st_mode & 0o777 == 0o640


def test_huge_saved_weights_are_rejected(rng, tmp_path):
    bad = _edited(
        rng, tmp_path, _set_array("weights_label", lambda a: np.full_like(a, 1e308))
    )
    with pytest.raises(ValueError, match="weights_label has values beyond 1e"):
        load_model(bad)


def test_paths_that_are_not_paths_raise_value_error(rng, tmp_path):
    est, X = _fitted(rng)
    for bad in (None, 3):
        with pytest.raises(ValueError, match="path must be a str or path-like"):
            est.save(bad)
        with pytest.raises(ValueError, match="path must be a str or path-like"):
            load_model(bad)
    path = est.save(str(tmp_path / "m.npz").encode())  # bytes work like os.fspath
    assert_array_equal(load_model(path).predict(X), est.predict(X))


def test_negative_saved_sigmoid_slopes_are_rejected(rng, tmp_path):
    X = rng.random((40, 4))
    Y = (rng.random((40, 3)) < 0.4).astype(np.uint8)
    path = MTLMAnnotator(probability=True, tau=1.0).fit(X, Y).save(tmp_path / "m.npz")
    bad = _rewritten(path, _set_array("proba_coef", -np.ones(3)))
    with pytest.raises(ValueError, match="proba_coef must be >= 0"):
        load_model(bad)

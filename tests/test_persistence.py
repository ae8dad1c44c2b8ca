"""Model files: round trip, atomic writes and clear errors."""

import json

import numpy as np
import pytest
from numpy.testing import assert_array_equal

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

"""The mtlm command: evaluate, fit, annotate, exit codes and plots."""

import json
import subprocess
import sys

import numpy as np
import pytest

import mtlm
from mtlm.cli import main


@pytest.fixture(scope="module")
def user_npz(tmp_path_factory):
    """A user's own features: a slice of the embedded Corel5K, laid out as in README."""
    data = mtlm.load_dataset("corel5k")
    path = tmp_path_factory.mktemp("data") / "mine.npz"
    names = data.feature_names[:3]
    arrays = {
        "feature_names": np.array(names),
        "label_names": np.array(data.label_names),
    }
    for f in names:
        arrays[f"X_train_{f}"] = data.X_train[f][:600]
        arrays[f"X_test_{f}"] = data.X_test[f][:60]
    arrays["Y_train"] = data.Y_train[:600]
    arrays["Y_test"] = data.Y_test[:60]
    np.savez_compressed(path, **arrays)
    return path, names


@pytest.fixture(scope="module")
def user_model(user_npz, tmp_path_factory):
    """A model written by ``mtlm fit`` on user_npz (read-only for the tests)."""
    path, names = user_npz
    model = tmp_path_factory.mktemp("model") / "model.npz"
    assert main(["fit", "--dataset", str(path), "--out", str(model)]) == 0
    return model, mtlm.load_dataset(str(path)), names


def test_evaluate_prints_a_row_and_writes_json(user_npz, tmp_path, capsys):
    path, _ = user_npz
    out = tmp_path / "rows.json"
    assert (
        main(["evaluate", "--dataset", str(path), "--json", str(out), "--quiet"]) == 0
    )
    text = capsys.readouterr().out
    assert "jec" in text and "600 train / 60 test images" in text
    rows = json.loads(out.read_text())
    assert [r["method"] for r in rows] == ["jec"]
    assert set(rows[0]) == {"method", "P", "R", "F1", "N+", "MAP", "fit_s", "predict_s"}
    assert 0 < rows[0]["F1"] <= 1 and rows[0]["N+"] > 0


def test_fit_save_annotate_round_trip(user_npz, tmp_path, capsys):
    path, names = user_npz
    model = tmp_path / "model.npz"
    assert main(["fit", "--dataset", str(path), "--out", str(model)]) == 0
    data = mtlm.load_dataset(str(path))
    feats = tmp_path / "new.npz"
    np.savez(
        feats,
        image_ids=np.array(["a", "b", "c"]),
        **{f: data.X_test[f][:3] for f in names},
    )
    capsys.readouterr()
    assert (
        main(
            [
                "annotate",
                "--model",
                str(model),
                "--features",
                str(feats),
                "--top",
                "3",
                "--json",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in result] == ["a", "b", "c"]
    # the CLI prints what the library predicts with the saved model
    est = mtlm.load_model(model)
    scores = est.decision_function({f: data.X_test[f][:3] for f in names})
    for i, r in enumerate(result):
        top = np.argsort(-scores[i], kind="stable")[:3]
        assert [x["label"] for x in r["labels"]] == [data.label_names[m] for m in top]
        assert [x["score"] for x in r["labels"]] == pytest.approx(scores[i, top])
    assert main(["annotate", "--model", str(model), "--features", str(feats)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("a\t")


def test_annotate_warns_about_arrays_it_ignores(
    user_npz, user_model, tmp_path, caplog, capsys
):
    model, data, names = user_model
    feats = tmp_path / "new.npz"
    blocks = {f: data.X_test[f][:3] for f in names}
    np.savez(feats, **blocks, **{names[0] + "_v2": blocks[names[0]]})
    capsys.readouterr()
    with caplog.at_level("WARNING", logger="mtlm"):
        assert main(["annotate", "--model", str(model), "--features", str(feats)]) == 0
    assert f"ignoring array(s) ['{names[0]}_v2']" in caplog.text
    assert len(capsys.readouterr().out.strip().splitlines()) == 3


def test_exit_codes(user_npz, tmp_path, capsys):
    path, _ = user_npz
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--methods", "nope", "--dataset", str(path)])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--n-labels"])
    assert exc.value.code == 2
    capsys.readouterr()
    assert main(["evaluate", "--dataset", str(tmp_path / "absent.npz")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("mtlm: --dataset") and "\n" not in err  # one line
    bad = tmp_path / "bad.npz"
    bad.write_text("not a model")
    feats = tmp_path / "f.npz"
    np.savez(feats, x=np.ones((2, 2)))
    assert main(["annotate", "--model", str(bad), "--features", str(feats)]) == 1
    assert "not a readable mtlm model" in capsys.readouterr().err


def test_plots_are_written(user_npz, tmp_path):
    pytest.importorskip("matplotlib")
    path, _ = user_npz
    folder = tmp_path / "figs"
    assert (
        main(["evaluate", "--dataset", str(path), "--plot", str(folder), "--quiet"])
        == 0
    )
    for name in ["f1_vs_frequency.png", "weights_jec.png"]:
        png = (folder / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_evaluate_tune_prints_the_choice_and_records_the_grid(
    user_npz, tmp_path, capsys
):
    path, _ = user_npz
    out = tmp_path / "rows.json"
    argv = ["evaluate", "--dataset", str(path), "--methods", "jec,global-ldml"]
    argv += ["--tune-grid", "k=2,4", "--tune-grid", "global-ldml:gamma_shared=1,1e3"]
    argv += ["--tune-grid", "global-ldml:max_iter=20", "--json", str(out), "--quiet"]
    assert main([*argv, "--tune", "--tune-scoring", "miap"]) == 0
    text = capsys.readouterr().out
    assert "hold-out selection: 60 training images held out" in text
    assert "best MiAP" in text and "jec  chose k=" in text
    rows = json.loads(out.read_text())
    assert [r["method"] for r in rows] == ["jec", "global-ldml"]
    jec, gl = rows[0]["tune"], rows[1]["tune"]
    assert [g["params"] for g in jec["grid"]] == [{"k": 2}, {"k": 4}]
    assert [g["params"] for g in gl["grid"]] == [
        {"gamma_shared": g, "k": k, "max_iter": 20} for g in (1, 1000.0) for k in (2, 4)
    ]
    for t in (jec, gl):
        scores = [g["score"] for g in t["grid"]]
        assert scores == [g["miap"] for g in t["grid"]]
        assert t["holdout_score"] == max(scores)
        assert t["grid"][t["best_index"]]["params"] == t["best_params"]
        assert t["scoring"] == "miap" and t["n_holdout"] == 60
    assert all(g["n_iter"] <= 20 for g in gl["grid"])
    assert all(0 < r["F1"] <= 1 for r in rows)


def test_fit_tune_saves_the_chosen_parameters(user_npz, tmp_path, capsys):
    path, _ = user_npz
    model = tmp_path / "m.npz"
    argv = ["fit", "--dataset", str(path), "--out", str(model)]
    assert main([*argv, "--tune-grid", "k=2,3", "--tune-holdout", "0.2"]) == 0
    assert "120 training images held out" in capsys.readouterr().out
    # a whole number is a count of images, down to one
    assert main([*argv, "--tune-grid", "k=2,3", "--tune-holdout", "1"]) == 0
    assert " 1 training images held out" in capsys.readouterr().out
    est = mtlm.load_model(model)
    tune = est.model_info_["tune"]
    assert tune["best_params"] == {"k": est.k} and est.k in (2, 3)
    assert len(tune["grid"]) == 2


def test_tune_grid_values_that_hold_colons_and_commas(user_npz, tmp_path, capsys):
    path, names = user_npz
    model = tmp_path / "m.npz"
    per_block = {names[0]: "l2", names[1]: "chi2", names[2]: "l1"}
    grid = f'jec:metrics={json.dumps(per_block)},"l1"'
    argv = ["fit", "--dataset", str(path), "--out", str(model), "--tune-grid", grid]
    assert main([*argv, "--tune-grid", "k=4"]) == 0
    tried = [
        g["params"]["metrics"]
        for g in mtlm.load_model(model).model_info_["tune"]["grid"]
    ]
    assert tried == [per_block, "l1"]


@pytest.mark.parametrize(
    "extra, code, message",
    [
        (["--tune-grid", "k"], 2, "expected [METHOD:]NAME=V1,V2"),
        (["--tune-grid", "k="], 2, "expected [METHOD:]NAME=V1,V2"),
        (["--tune-grid", "nope=1,2"], 2, "'nope' is not a parameter"),
        (["--tune-grid", "ldml:k=1,2"], 2, "unknown method 'ldml'"),
        (["--tune-grid", "mtlm-lmnn:mu=1"], 2, "mtlm-lmnn is not among the methods"),
        (["--methods", ","], 2, "--methods is empty"),
        (["--tune-grid", "k=4,0"], 2, "--tune-grid (jec): param_grid point {'k': 0}"),
        (["--tune-grid", "method=jec"], 2, "cannot search 'method'"),
        (["--tune-holdout", "1.5"], 2, "--tune-holdout: holdout must be a fraction"),
        # only the data tells that the count is too large: a run-time error
        (["--tune-holdout", "1.0"], 2, "1.0 is read as neither: give 1"),
        (
            ["--tune-holdout", "abc"],
            2,
            "--tune-holdout: expected a fraction in (0, 1) or a number of images, "
            "got 'abc'",
        ),
        (["--tune-grid", "k=2,3", "--tune-grid", "k=4"], 2, "'k=2,3' already gives"),
        (
            ["--tune-grid", "k=2", "--tune-grid", "jec:k=2", "--tune-grid", "jec:k=3"],
            2,
            "'jec:k=2' already gives",
        ),
        (
            ["--tune-holdout", "100000"],
            1,
            "--tune-holdout: holdout must be a fraction in (0, 1) or a number of "
            "images in [1, n - 1] = [1, 599]",
        ),
    ],
)
def test_tune_usage_errors(user_npz, capsys, extra, code, message):
    path, _ = user_npz
    argv = ["evaluate", "--dataset", str(path), "--quiet", *extra]
    if code == 2:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    else:
        assert main(argv) == 1
    assert message in capsys.readouterr().err


def test_bad_files_give_one_line_and_exit_1(user_npz, user_model, tmp_path, capsys):
    path, _ = user_npz
    model, data, names = user_model
    blocks = {f: data.X_test[f][:3] for f in names}
    cases = {
        "ids.npz": dict(image_ids=np.array(["a", "b"]), **blocks),  # 2 ids, 3 images
        "ids2d.npz": dict(image_ids=np.array([["a"], ["b"], ["c"]]), **blocks),
    }
    np.save(tmp_path / "x.npy", np.zeros(3))
    for name, arrays in cases.items():
        np.savez(tmp_path / name, **arrays)
    capsys.readouterr()
    for feats, message in [
        ("ids.npz", "image_ids must be 1-D with one id per image (3)"),
        ("ids2d.npz", "image_ids must be 1-D"),
        ("x.npy", "not an .npz archive"),
    ]:
        argv = ["annotate", "--model", str(model), "--features", str(tmp_path / feats)]
        assert main(argv) == 1
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err and "Traceback" not in err
    (tmp_path / "notes.txt").write_text("not a model\n")
    for wrong in ("x.npy", "notes.txt"):
        argv = ["annotate", "--model", str(tmp_path / wrong), "--features", "f.npz"]
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert "not an .npz archive" in err and "pickle" not in err
    # the text output is one tab-separated line per image: an id with a tab or a
    # label name with a space would shift its cells; --json shows both
    np.savez(tmp_path / "tab.npz", image_ids=np.array(["a", "b\tc", "d"]), **blocks)
    spaced = tmp_path / "spaced.npz"
    mtlm.load_model(model).save(
        spaced, label_names=[f"{n} x" for n in data.label_names]
    )
    for mod, feats, message in [
        (model, "tab.npz", "image id 'b\\tc' holds a tab or line break"),
        (spaced, "x.npz", "label name 'city x' is empty or holds white space"),
    ]:
        np.savez(tmp_path / "x.npz", **blocks)
        argv = ["annotate", "--model", str(mod), "--features", str(tmp_path / feats)]
        assert main(argv) == 1
        assert message in capsys.readouterr().err
        assert main([*argv, "--json"]) == 0
        capsys.readouterr()
    # --json into a missing folder fails before any fit
    out = tmp_path / "no" / "rows.json"
    assert (
        main(["evaluate", "--dataset", str(path), "--json", str(out), "--quiet"]) == 1
    )
    assert "--json" in capsys.readouterr().err
    # --out a folder
    assert main(["fit", "--dataset", str(path), "--out", str(tmp_path)]) == 1
    assert "is a folder" in capsys.readouterr().err


def test_a_method_listed_twice_runs_once(user_npz, tmp_path, capsys):
    path, _ = user_npz
    out = tmp_path / "rows.json"
    argv = ["evaluate", "--dataset", str(path), "--methods", "jec,jec", "--json"]
    assert main([*argv, str(out), "--quiet"]) == 0
    assert [r["method"] for r in json.loads(out.read_text())] == ["jec"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--n-labels", "0"], "--n-labels 0: n_labels must be >= 1"),
        (["--n-jobs", "0"], "--n-jobs 0: n_jobs == 0"),
        (["--seed", "-1"], "--seed -1: random_state must be"),
        (["--n-workers", "2"], "--n-workers needs --scheduler local"),
    ],
)
def test_bad_option_values_are_usage_errors(user_npz, capsys, extra, message):
    path, _ = user_npz
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--dataset", str(path), *extra])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_an_unknown_option_shows_the_subcommand_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--foo"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage: mtlm evaluate" in err
    assert "mtlm evaluate: error: unrecognized arguments: --foo" in err


def test_annotate_text_output_ids_and_a_closed_pipe(
    user_npz, user_model, tmp_path, capsys
):
    model, data, names = user_model
    blocks = {f: data.X_test[f][:2] for f in names}
    feats = tmp_path / "bytes_ids.npz"
    np.savez(feats, image_ids=np.array([b"a", b"b"]), **blocks)
    capsys.readouterr()
    assert main(["annotate", "--model", str(model), "--features", str(feats)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["a", "b"]
    # a reader that stops early (| head -1) ends the command quietly; the
    # output (3000 images) is larger than a pipe's buffer
    many = tmp_path / "many.npz"
    np.savez(many, **{f: np.repeat(data.X_test[f][:3], 1000, axis=0) for f in names})
    cmd = [sys.executable, "-m", "mtlm.cli", "annotate", "--model", str(model)]
    proc = subprocess.Popen(
        [*cmd, "--features", str(many)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,  # not the repository root, whose mtlm_fast/ has no builds
    )
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert err == "" and proc.returncode == 1


def test_evaluate_needs_a_labelled_test_split(user_npz, tmp_path, capsys):
    path, _ = user_npz
    arrays = dict(np.load(path))
    unlabelled = {**arrays, "Y_test": np.zeros_like(arrays["Y_test"])}
    empty = {
        k: v[:0] if k.startswith(("X_test", "Y_test")) else v for k, v in arrays.items()
    }
    for name, content, message in [
        ("unlabelled.npz", unlabelled, "no test image has a label"),
        ("empty.npz", empty, "the test split is empty"),
    ]:
        np.savez(tmp_path / name, **content)
        argv = ["evaluate", "--dataset", str(tmp_path / name), "--quiet"]
        assert main(argv) == 1
        assert message in capsys.readouterr().err
        # fitting needs no test split
        out = tmp_path / "m.npz"
        assert main(["fit", "--dataset", str(tmp_path / name), "--out", str(out)]) == 0


def test_a_feature_block_called_image_ids(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = {"image_ids": rng.random((30, 4)), "b": rng.random((30, 3))}
    Y = (rng.random((30, 3)) < 0.4).astype(np.uint8)
    est = mtlm.MTLMAnnotator(random_state=0).fit(X, Y)
    model, feats = tmp_path / "m.npz", tmp_path / "f.npz"
    est.save(model)
    np.savez(feats, **{f: v[:2] for f, v in X.items()})
    argv = ["annotate", "--model", str(model), "--features", str(feats), "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in result] == ["0", "1"]  # numbered, not read as ids
    top = [
        m
        for m in np.argsort(
            -est.decision_function({f: v[:1] for f, v in X.items()})[0], kind="stable"
        )[:3]
    ]
    assert [x["label"] for x in result[0]["labels"]] == [str(m) for m in top]


def test_annotate_threshold_with_a_probability_model(user_npz, tmp_path, capsys):
    path, names = user_npz
    model, plain = tmp_path / "model.npz", tmp_path / "plain.npz"
    assert (
        main(["fit", "--dataset", str(path), "--probability", "--out", str(model)]) == 0
    )
    assert main(["fit", "--dataset", str(path), "--out", str(plain)]) == 0
    data = mtlm.load_dataset(str(path))
    blocks = {f: data.X_test[f][:4] for f in names}
    feats = tmp_path / "new.npz"
    np.savez(feats, **blocks)
    capsys.readouterr()
    argv = ["annotate", "--model", str(model), "--features", str(feats)]
    assert main([*argv, "--threshold", "0.2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    est = mtlm.load_model(model)
    proba = est.predict_proba(blocks)
    sets = mtlm.metrics.threshold_annotation(proba, 0.2)
    for i, r in enumerate(result):
        got = {data.label_names.index(x["label"]) for x in r["labels"]}
        assert got == set(np.flatnonzero(sets[i]))
        assert [x["score"] for x in r["labels"]] == sorted(
            (x["score"] for x in r["labels"]), reverse=True
        )
    # a model without probabilities cannot threshold: exit 1, one line
    plain_argv = ["annotate", "--model", str(plain), "--features", str(feats)]
    assert main([*plain_argv, "--threshold", "0.2"]) == 1
    assert "fit it with 'mtlm fit --probability'" in capsys.readouterr().err
    for bad in (
        ["--threshold", "nan"],
        ["--threshold", "1.5"],
        ["--threshold", "-0.1"],
        ["--threshold", "0.2", "--top", "2"],
    ):
        with pytest.raises(SystemExit) as exc:
            main([*argv, *bad])
        assert exc.value.code == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["fit", "--out", "{tmp}/no/such/m.npz"],
            "folder {tmp}/no/such does not exist",
        ),
        (["fit", "--out", "{tmp}"], "is a folder; give a file name"),
        (["evaluate", "--json", "{tmp}"], "is a folder; give a file name"),
        (["evaluate", "--plot", "{tmp}/file.txt"], "cannot create the folder"),
    ],
)
def test_outputs_are_checked_before_any_fit(
    tmp_path, capsys, monkeypatch, argv, message
):
    (tmp_path / "file.txt").write_text("x")
    import mtlm.cli as cli

    def no_data(name):
        raise AssertionError("the data were read before the output check")

    monkeypatch.setattr(cli, "_load_data", no_data)
    args = [a.format(tmp=tmp_path) for a in argv]
    assert main(args) == 1
    assert message.format(tmp=tmp_path) in capsys.readouterr().err

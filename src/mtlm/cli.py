"""The ``mtlm`` command line, built on the library."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time

__all__ = ["main"]

logger = logging.getLogger("mtlm")

_COLUMNS = ("method", "P", "R", "F1", "N+", "MAP", "fit_s", "predict_s")


class DataError(Exception):
    """Bad data or files: exit code 1 with a one-line message."""


def _add_n_jobs(parser):
    parser.add_argument(
        "--n-jobs",
        type=int,
        default=None,
        help="threads (default: OpenMP's; -1 = all cores)",
    )


def _add_fit_options(parser):
    """Options shared by the commands that fit an annotator."""
    parser.add_argument("--n-labels", type=int, default=5, help="labels per image (5)")
    _add_n_jobs(parser)
    parser.add_argument("--seed", type=int, default=0, help="random_state (0)")


def _add_tune_options(parser):
    """Options of the hold-out search (MTLMAnnotator.tune)."""
    group = parser.add_argument_group(
        "hold-out selection",
        "Choose parameters on a random part of the TRAINING split before the "
        "final fit (MTLMAnnotator.tune): every grid point is fitted on the rest "
        "of the training images and scored on that part, the best one is "
        "refitted on all training images. The test split plays no part. Any "
        "--tune-* option implies --tune.",
    )
    from mtlm._tuning import DEFAULT_GRIDS

    defaults = "; ".join(
        f"{m}: "
        + " ".join(f"{k}={','.join(f'{v:g}' for v in vs)}" for k, vs in g.items())
        for m, g in DEFAULT_GRIDS.items()
    )
    group.add_argument(
        "--tune",
        action="store_true",
        help=f"search each method's grid; default grids: {defaults}",
    )
    group.add_argument(
        "--tune-grid",
        action="append",
        default=[],
        metavar="[METHOD:]NAME=V1,V2,...",
        help="values to try for one parameter, for every method or only METHOD; "
        "repeat for more parameters. Named parameters replace their default "
        "values, the rest of a method's default grid stays. Values are JSON "
        "numbers, true/false, null or words, e.g. --tune-grid k=4,8 "
        "--tune-grid mtlm-ldml:gamma_label=1,30,1e3",
    )
    group.add_argument(
        "--tune-scoring",
        choices=("f1", "miap"),
        default=None,
        help="hold-out measure to maximise (default: f1 at --n-labels)",
    )
    group.add_argument(
        "--tune-holdout",
        type=_holdout_value,
        default=None,
        metavar="H",
        help="training images held out: a fraction in (0, 1) or a number of "
        "images (default: 0.1)",
    )


def _holdout_value(text):
    """``"30"`` is 30 images (``"1"`` one image), ``"0.1"`` a tenth of them."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a fraction in (0, 1) or a number of images, got {text!r}"
        ) from None


def _tune_settings(args, methods):
    """None without tuning, else (grid per method, scoring, holdout)."""
    from mtlm import METHODS, MTLMAnnotator, default_grid
    from mtlm._tuning import check_holdout, checked_grid

    if not (
        args.tune
        or args.tune_grid
        or args.tune_scoring is not None
        or args.tune_holdout is not None
    ):
        return None
    known = MTLMAnnotator().get_params()
    grids = {m: default_grid(m) for m in methods}
    given = {}
    for spec in args.tune_grid:
        # METHOD: is read before the "=" only: values may hold ":" (JSON dicts)
        head, eq, values = spec.partition("=")
        target, _, name = head.rpartition(":")
        name = name.strip()
        if not eq or not name or not values.strip():
            raise SystemExit(
                _usage_error(
                    f"--tune-grid {spec!r}: expected [METHOD:]NAME=V1,V2,..., "
                    "e.g. k=4,8"
                )
            )
        if target and target not in METHODS:
            raise SystemExit(
                _usage_error(
                    f"--tune-grid {spec!r}: unknown method {target!r}; "
                    f"known: {', '.join(METHODS)}"
                )
            )
        if name not in known:
            raise SystemExit(
                _usage_error(
                    f"--tune-grid {spec!r}: {name!r} is not a parameter of "
                    "MTLMAnnotator (see help(mtlm.MTLMAnnotator))"
                )
            )
        if target and target not in grids:
            raise SystemExit(
                _usage_error(
                    f"--tune-grid {spec!r}: {target} is not among the methods "
                    f"fitted ({', '.join(methods)})"
                )
            )
        if (target, name) in given:  # the later one would silently win
            raise SystemExit(
                _usage_error(
                    f"--tune-grid {spec!r}: {given[target, name]!r} already gives "
                    "these values; list them all in one option"
                )
            )
        given[target, name] = spec
        parsed = _parse_values(values)
        for m in [target] if target else methods:
            grids[m][name] = parsed
    scoring = args.tune_scoring or "f1"
    holdout = 0.1 if args.tune_holdout is None else args.tune_holdout
    # Bad values are usage errors: report them before any data is read.
    try:
        check_holdout(holdout)
    except ValueError as exc:
        raise SystemExit(_usage_error(f"--tune-holdout: {exc}")) from exc
    for m in methods:
        try:
            checked_grid(grids[m], MTLMAnnotator(m))
        except ValueError as exc:
            raise SystemExit(_usage_error(f"--tune-grid ({m}): {exc}")) from exc
    return grids, scoring, holdout


def _parse_values(text):
    """``4,8`` or ``l1,chi2``; values holding commas (JSON dicts) when the
    whole list reads as JSON, e.g. ``{"a": "l2", "b": "l1"},"chi2"``."""
    try:
        return json.loads(f"[{text}]")
    except ValueError:
        return [_parse_value(v) for v in text.split(",")]


def _parse_value(text):
    text = text.strip()
    if text in ("None", "none"):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _fit_or_tune(est, X, Y, tune):
    """fit, or tune with this method's grid; the tune summary (or None)."""
    if tune is None:
        est.fit(X, Y)
        return None
    grids, scoring, holdout = tune
    t0 = time.perf_counter()
    est.tune(X, Y, grids[est.method], holdout=holdout, scoring=scoring)
    total = time.perf_counter() - t0
    res = est.tune_results_
    grid = []
    for i, params in enumerate(res["params"]):
        row = {"params": params}
        for key in ("score", "rank", "f1", "miap", "n_plus", "tau", "n_iter"):
            row[key] = res[key][i].item()
        row["converged"] = bool(res["converged"][i])
        row["fit_s"] = float(res["fit_time"][i] + res["score_time"][i])
        grid.append(row)
    return {
        "best_params": est.best_params_,
        "holdout_score": est.best_score_,
        "scoring": scoring,
        "holdout": holdout,
        "n_holdout": int(est.tune_holdout_indices_.size),
        "search_s": est.tune_time_,
        "refit_s": total - est.tune_time_,
        "best_index": est.best_index_,
        "grid": grid,
    }


def _build_parser():
    from mtlm._annotator import METHODS

    parser = argparse.ArgumentParser(
        prog="mtlm",
        description="Image annotation with multi-task label-specific local metrics.",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks and debug logging"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    ev = sub.add_parser(
        "evaluate",
        help="fit each method on the training split, "
        "annotate the test split and print P/R/F1/N+/MAP",
    )
    ev.add_argument(
        "--dataset",
        default="corel5k",
        help="'corel5k' (embedded), a MULAN .arff file or folder, or an "
        ".npz laid out as in the README (default: corel5k)",
    )
    ev.add_argument(
        "--methods",
        default="jec",
        help="comma-separated methods (default: jec); known: " + ", ".join(METHODS),
    )
    ev.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    _add_fit_options(ev)
    ev.add_argument(
        "--plot",
        metavar="DIR",
        help="write PNG figures to DIR (needs the 'plot' extra): per-label "
        "F1 against label frequency, and the learned weights per method",
    )
    ev.add_argument("--quiet", action="store_true", help="no progress on stderr")
    _add_scheduler(ev)
    _add_tune_options(ev)

    fit = sub.add_parser(
        "fit", help="fit one method on a dataset's training split and save the model"
    )
    fit.add_argument(
        "--dataset",
        default="corel5k",
        help="'corel5k', a MULAN .arff file or folder, or an .npz",
    )
    fit.add_argument("--method", default="jec", help="one of: " + ", ".join(METHODS))
    fit.add_argument(
        "--out", required=True, metavar="MODEL.npz", help="where to write the model"
    )
    _add_fit_options(fit)
    fit.add_argument(
        "--probability",
        action="store_true",
        help="also fit per-label sigmoids on leave-self-out training scores, for "
        "'annotate --threshold' (about the cost of annotating the training set)",
    )
    _add_scheduler(fit)
    _add_tune_options(fit)

    ann = sub.add_parser("annotate", help="annotate images with a saved model")
    ann.add_argument("--model", required=True, metavar="MODEL.npz")
    ann.add_argument(
        "--features",
        required=True,
        metavar="FILE.npz",
        help="one array per feature block, keyed by the feature name "
        "(a diagonal model: key 'x'); optional 'image_ids'",
    )
    how = ann.add_mutually_exclusive_group()
    how.add_argument(
        "--top",
        type=int,
        default=None,
        help="labels per image (default: the model's n_labels)",
    )
    how.add_argument(
        "--threshold",
        type=float,
        default=None,
        metavar="P",
        help="instead, every label with probability >= P (the most probable one "
        "if none passes); needs a model fitted with --probability",
    )
    ann.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_n_jobs(ann)
    _add_scheduler(ann)
    for subparser in (ev, fit, ann):  # main() reports unknown options on it
        subparser.set_defaults(subparser=subparser)
    return parser


def _add_scheduler(sub):
    sub.add_argument(
        "--scheduler",
        metavar="ADDRESS|local",
        help="run the O(n^2) steps on Dask (needs the 'dask' extra): a scheduler "
        "address such as tcp://10.0.0.5:8786, or 'local' for worker processes on "
        "this machine (default: no Dask)",
    )
    sub.add_argument(
        "--n-workers",
        type=int,
        default=None,
        help="with --scheduler local: worker processes (default: Dask's)",
    )


@contextlib.contextmanager
def _dask_backend(args):
    """Estimator parameters of the backend; with --scheduler, a Dask client is open."""
    if args.scheduler is None:
        yield {}
        return
    from mtlm._dask import _import_distributed, dask_client

    _import_distributed()  # raises the ImportError naming the extra
    if not args.debug:  # after the import, which sets its own levels
        logging.getLogger("distributed").setLevel(logging.ERROR)
    with dask_client(args.scheduler, n_workers=args.n_workers):
        # None: the current client (this one), so that clone() still works.
        yield {"backend": "dask", "dask_client": None}


def _load_data(name):
    from mtlm import load_dataset

    try:
        return load_dataset(name)
    except (ValueError, OSError) as exc:
        raise DataError(f"--dataset {name}: {exc}") from exc


def _load_tune_data(args, tune):
    """The dataset, with a hold-out count that it cannot give reported by option."""
    from mtlm._tuning import check_holdout

    data = _load_data(args.dataset)
    if tune is not None:
        try:
            check_holdout(tune[2], data.Y_train.shape[0])
        except ValueError as exc:
            raise DataError(f"--tune-holdout: {exc}") from exc
    return data


def _fit(args):
    from mtlm import METHODS, MTLMAnnotator

    if args.method not in METHODS:
        raise SystemExit(
            _usage_error(
                f"--method: unknown method {args.method!r}; known: {', '.join(METHODS)}"
            )
        )
    tune = _tune_settings(args, [args.method])
    _check_output_file("--out", args.out)  # before the fit, not after it
    data = _load_tune_data(args, tune)
    est = MTLMAnnotator(
        args.method,
        n_labels=args.n_labels,
        metrics=data.metrics,
        n_jobs=args.n_jobs,
        random_state=args.seed,
        probability=args.probability,
    )
    t0 = time.perf_counter()
    with _dask_backend(args) as backend:
        est.set_params(**backend)
        tuned = _fit_or_tune(est, data.X_train, data.Y_train, tune)
    info = {"dataset": data.name, "fit_s": time.perf_counter() - t0}
    if tuned is not None:
        info["tune"] = tuned
        print(_tune_table({args.method: tuned}, args.n_labels))
    try:
        est.save(args.out, label_names=data.label_names, info=info)
    except (OSError, ValueError) as exc:
        raise DataError(f"--out {args.out}: {exc}") from exc
    print(
        f"saved {args.method} model ({len(data.label_names)} labels, "
        f"{len(data.feature_names)} feature type(s)) to {args.out}"
    )
    return 0


def _read_features(path, est):
    from mtlm.datasets import read_npz_arrays

    try:
        arrays = read_npz_arrays(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"--features {path}: cannot read it ({exc})") from exc
    names = est.base_distances_.feature_names_
    missing = [f for f in names if f not in arrays]
    if missing:
        raise DataError(
            f"--features {path}: missing feature block(s) {missing}; "
            f"the model needs {names}"
        )
    extra = sorted(set(arrays) - set(names) - {"image_ids"})
    if extra:  # a misspelt block name would otherwise pass unnoticed
        logger.warning(
            "--features %s: ignoring array(s) %s, not feature blocks of the model %s",
            path,
            extra,
            names,
        )
    # a model whose feature block is called "image_ids" reads that key as
    # features: its images are then numbered
    ids = None if "image_ids" in names else arrays.get("image_ids")
    X = (
        arrays[names[0]]
        if est.base_distances_.diagonal_
        else {f: arrays[f] for f in names}
    )
    return X, ids


def _annotate(args):
    import numpy as np

    from mtlm import load_model
    from mtlm.metrics import threshold_annotation

    try:
        est = load_model(args.model)
    except (OSError, ValueError) as exc:
        raise DataError(f"--model {args.model}: {exc}") from exc
    top = est.n_labels if args.top is None else args.top
    if top < 1:
        raise SystemExit(_usage_error("--top must be >= 1"))
    if args.threshold is not None:
        if not 0.0 <= args.threshold <= 1.0:  # also rejects nan
            raise SystemExit(
                _usage_error("--threshold must be a probability in [0, 1]")
            )
        if not est.probability:
            raise DataError(
                f"--threshold: the model {args.model} has no label probabilities; "
                "fit it with 'mtlm fit --probability'"
            )
    if args.n_jobs is not None:
        est.set_params(n_jobs=args.n_jobs)
    X, ids = _read_features(args.features, est)
    try:
        with _dask_backend(args) as backend:
            est.set_params(**backend)
            if args.threshold is None:
                scores = est.decision_function(X)
            else:
                scores = est.predict_proba(X)
    except ValueError as exc:
        raise DataError(f"--features {args.features}: {exc}") from exc
    names = est.label_names_ or [str(m) for m in range(scores.shape[1])]
    if ids is not None and (ids.ndim != 1 or len(ids) != len(scores)):
        raise DataError(
            f"--features {args.features}: image_ids must be 1-D with one id per "
            f"image ({len(scores)}), got shape {ids.shape}"
        )
    ids = (
        [_id_text(i) for i in ids.tolist()]
        if ids is not None
        else [str(i) for i in range(len(scores))]
    )
    order = np.argsort(-scores, axis=1, kind="stable")
    if args.threshold is None:
        keep = [o[:top] for o in order]
    else:
        sets = threshold_annotation(scores, args.threshold)
        keep = [o[sets[i, o] > 0] for i, o in enumerate(order)]
    result = [
        {
            "image": ids[i],
            "labels": [
                {"label": names[m], "score": float(scores[i, m])} for m in keep[i]
            ],
        }
        for i in range(len(scores))
    ]
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        _check_text_cells(ids, names, args.features)
        for r in result:
            cells = " ".join(f"{x['label']}:{x['score']:.4f}" for x in r["labels"])
            print(f"{r['image']}\t{cells}")
    return 0


def _id_text(image_id):
    """An image id as text (ids saved as bytes print as 'a', not b'a')."""
    if isinstance(image_id, bytes):
        return image_id.decode("utf-8", errors="replace")
    return str(image_id)


def _check_text_cells(ids, names, features):
    """The text output is ``id<TAB>label:score label:score ...``, one line per image."""
    bad_id = next((i for i in ids if any(c in i for c in "\t\n\r")), None)
    if bad_id is not None:
        raise DataError(
            f"--features {features}: image id {bad_id!r} holds a tab or line break, "
            "which the text output cannot show; use --json"
        )
    bad_name = next((m for m in names if not m or any(c.isspace() for c in m)), None)
    if bad_name is not None:
        raise DataError(
            f"label name {bad_name!r} is empty or holds white space, which the text "
            "output cannot show; use --json"
        )


def _check_test_split(data, dataset):
    """evaluate scores the test split: say before any fit if it cannot."""
    if data.n_test == 0:
        raise DataError(f"--dataset {dataset}: the test split is empty")
    if not data.Y_test.sum():
        raise DataError(
            f"--dataset {dataset}: no test image has a label, so nothing can be "
            "evaluated"
        )


def _evaluate(args):
    import numpy as np

    from mtlm import METHODS, MTLMAnnotator
    from mtlm.metrics import annotation_scores, top_k_annotation

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    methods = list(dict.fromkeys(methods))  # each method once
    unknown = [m for m in methods if m not in METHODS]
    if not methods:
        raise SystemExit(
            _usage_error(f"--methods is empty; give some of: {', '.join(METHODS)}")
        )
    if unknown:
        raise SystemExit(
            _usage_error(
                f"--methods: unknown method(s) {unknown}; known: {', '.join(METHODS)}"
            )
        )
    tune = _tune_settings(args, methods)
    # outputs are checked before the fits, not after them
    if args.json:
        _check_output_file("--json", args.json)
    if args.plot:
        try:
            os.makedirs(args.plot, exist_ok=True)
        except OSError as exc:
            msg = f"--plot {args.plot}: cannot create the folder ({exc})"
            raise DataError(msg) from exc
    data = _load_tune_data(args, tune)
    _check_test_split(data, args.dataset)

    rows, per_label_f1, fitted, tuned = [], {}, {}, {}
    bar = _progress(len(methods), args.quiet)
    with _dask_backend(args) as backend:
        for method in methods:
            bar.set_description(method)
            est = MTLMAnnotator(
                method,
                n_labels=args.n_labels,
                metrics=data.metrics,
                n_jobs=args.n_jobs,
                random_state=args.seed,
                **backend,
            )
            t0 = time.perf_counter()
            summary = _fit_or_tune(est, data.X_train, data.Y_train, tune)
            t1 = time.perf_counter()
            if summary is not None:
                tuned[method] = summary
                t0 = t1 - summary["refit_s"]  # fit_s: the final fit only
            scores = est.decision_function(data.X_test)
            t2 = time.perf_counter()
            Y_pred = top_k_annotation(scores, args.n_labels)
            res = annotation_scores(data.Y_test, Y_pred, scores)
            per_label_f1[method] = _per_label_f1(data.Y_test, Y_pred)
            est.set_params(backend="local", dask_client=None)  # client closes below
            fitted[method] = est
            rows.append(
                {
                    "method": method,
                    "P": res["P"],
                    "R": res["R"],
                    "F1": res["F1"],
                    "N+": int(res["N+"]),
                    "MAP": res.get("MAP", float("nan")),
                    "fit_s": t1 - t0,
                    "predict_s": t2 - t1,
                }
            )
            if summary is not None:
                rows[-1]["tune"] = summary
            bar.update(1)
    bar.close()
    print(_table(rows, data))
    if tuned:
        print()
        print(_tune_table(tuned, args.n_labels))
    if args.plot:
        _write_plots(args.plot, data, per_label_f1, fitted)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                [
                    {
                        k: (float(v) if isinstance(v, np.floating) else v)
                        for k, v in r.items()
                    }
                    for r in rows
                ],
                fh,
                indent=2,
                default=_json_default,
            )
    return 0


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _per_label_f1(Y_true, Y_pred):
    import numpy as np

    from mtlm.metrics import per_label_scores

    res = per_label_scores(Y_true, Y_pred)
    return np.where(res["Ngt"] > 0, res["F1"], np.nan)


def _check_output_file(option, path):
    """DataError unless ``path`` names a file in an existing folder."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise DataError(f"{option} {path}: folder {folder} does not exist")
    if os.path.isdir(path):
        raise DataError(f"{option} {path} is a folder; give a file name")


def _write_plots(folder, data, per_label_f1, fitted):
    import os

    from mtlm import plots

    os.makedirs(folder, exist_ok=True)
    counts = data.Y_train.sum(axis=0)
    paths = [
        plots.plot_f1_vs_frequency(
            per_label_f1, counts, os.path.join(folder, "f1_vs_frequency.png")
        )
    ]
    for method, est in fitted.items():
        paths.append(
            plots.plot_weights(
                est.weights_shared_,
                est.weights_label_,
                data.feature_names,
                os.path.join(folder, f"weights_{method}.png"),
                label_names=data.label_names,
                label_counts=counts,
                title=f"{method}: w* and w* + w_m (40 most frequent labels)",
            )
        )
    for p in paths:
        print(f"wrote {p}", file=sys.stderr)


def _progress(total, quiet):
    from tqdm import tqdm

    return tqdm(total=total, file=sys.stderr, disable=quiet, unit="method")


def _table(rows, data):
    head = (
        f"{data.name}: {len(data.Y_train)} train / {len(data.Y_test)} test images, "
        f"{data.Y_train.shape[1]} labels, {len(data.feature_names)} feature type(s)"
    )
    w = max([10] + [len(r["method"]) for r in rows])  # "global-ldml" is 11
    lines = [head, "  ".join([f"{'method':>{w}}"] + [f"{c:>10}" for c in _COLUMNS[1:]])]
    for r in rows:
        cells = [f"{r['method']:>{w}}"]
        cells += [f"{r[c]:>10.3f}" for c in ("P", "R", "F1")]
        cells += [f"{r['N+']:>10d}", f"{r['MAP']:>10.3f}"]
        cells += [f"{r[c]:>10.1f}" for c in ("fit_s", "predict_s")]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def _tune_table(tuned, n_labels):
    """Every grid point's hold-out scores per method; * marks the chosen one."""
    first = next(iter(tuned.values()))
    measure = {"f1": f"F1@{n_labels}", "miap": "MiAP"}[first["scoring"]]
    lines = [
        f"hold-out selection: {first['n_holdout']} training images held out "
        f"({first['holdout']:g}), best {measure}, then refit on all training "
        "images; * = chosen"
    ]
    head = f"  {'method':>12}  {'params':<34}"
    head += "".join(f"{c:>8}" for c in ("F1", "MiAP", "N+", "tau", "iter", "fit_s"))
    lines.append(head)
    for method, t in tuned.items():
        for i, row in enumerate(t["grid"]):
            star = "*" if i == t["best_index"] else " "
            params = " ".join(f"{k}={v}" for k, v in row["params"].items())
            cells = f"{star} {method:>12}  {params:<34}"
            cells += f"{row['f1']:>8.3f}{row['miap']:>8.3f}{row['n_plus']:>8d}"
            cells += f"{row['tau']:>8.3g}{row['n_iter']:>8d}{row['fit_s']:>8.1f}"
            if not row["converged"]:
                cells += "  (max_iter)"
            lines.append(cells)
        lines.append(
            f"  {method:>12}  chose "
            + " ".join(f"{k}={v}" for k, v in t["best_params"].items())
            + f" (hold-out {measure} {t['holdout_score']:.3f}; search "
            f"{t['search_s']:.1f} s, refit {t['refit_s']:.1f} s)"
        )
    return "\n".join(lines)


#: option -> (its argparse dest, the MTLMAnnotator parameter it sets)
_OPTION_PARAMS = {
    "--n-labels": ("n_labels", "n_labels"),
    "--n-jobs": ("n_jobs", "n_jobs"),
    "--seed": ("seed", "random_state"),
}


def _check_options(args):
    """Usage errors (exit 2) for option values the estimator would reject."""
    from mtlm import MTLMAnnotator

    for option, (dest, param) in _OPTION_PARAMS.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        try:
            MTLMAnnotator(**{param: value})._validate_params()
        except ValueError as exc:
            raise SystemExit(_usage_error(f"{option} {value}: {exc}")) from exc
    if getattr(args, "n_workers", None) is not None and args.scheduler != "local":
        raise SystemExit(_usage_error("--n-workers needs --scheduler local"))


def _usage_error(message):
    print(f"mtlm: error: {message}", file=sys.stderr)
    return 2


def main(argv=None):
    """Run the ``mtlm`` command; return its exit code."""
    parser = _build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # with the subcommand's usage, not the top-level one
        args.subparser.error(f"unrecognized arguments: {' '.join(unknown)}")
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    _check_options(args)
    try:
        return {"evaluate": _evaluate, "fit": _fit, "annotate": _annotate}[
            args.command
        ](args)
    except BrokenPipeError:
        # the reader went away (mtlm annotate ... | head): stop quietly, and
        # keep the interpreter's final flush from failing once more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except DataError as exc:
        if args.debug:
            raise
        print(f"mtlm: {exc}", file=sys.stderr)
        return 1
    except (ValueError, MemoryError, ImportError, OSError) as exc:
        # OSError covers ConnectionError and a scheduler's TimeoutError
        if args.debug:
            raise
        print(f"mtlm: error: {str(exc) or type(exc).__name__}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

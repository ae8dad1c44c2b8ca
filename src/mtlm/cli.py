"""The ``mtlm`` command line, built on the library."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

__all__ = ["main"]

logger = logging.getLogger("mtlm")

_COLUMNS = ("method", "P", "R", "F1", "N+", "MAP", "fit_s", "predict_s")


class DataError(Exception):
    """Bad data or files: exit code 1 with a one-line message."""


def _build_parser():
    from mtlm._annotator import METHODS

    parser = argparse.ArgumentParser(
        prog="mtlm",
        description="Image annotation with multi-task label-specific local metrics.",
    )
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks and debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    ev = sub.add_parser("evaluate", help="fit each method on the training split, "
                        "annotate the test split and print P/R/F1/N+/MAP")
    ev.add_argument("--dataset", default="corel5k",
                    help="'corel5k' (embedded), a MULAN .arff file or folder, or an "
                    ".npz laid out as in the README (default: corel5k)")
    ev.add_argument("--methods", default="jec",
                    help="comma-separated methods (default: jec); known: " + ", ".join(METHODS))
    ev.add_argument("--n-labels", type=int, default=5, help="labels per image (5)")
    ev.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    ev.add_argument("--n-jobs", type=int, default=None,
                    help="threads (default: OpenMP's; -1 = all cores)")
    ev.add_argument("--seed", type=int, default=0, help="random_state (0)")
    ev.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parser


def _evaluate(args):
    import numpy as np

    from mtlm import METHODS, MTLMAnnotator, load_dataset
    from mtlm.metrics import annotation_scores, top_k_annotation

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise SystemExit(_usage_error(
            f"--methods: unknown method(s) {unknown}; known: {', '.join(METHODS)}"))
    try:
        data = load_dataset(args.dataset)
    except (ValueError, OSError) as exc:
        raise DataError(f"--dataset {args.dataset}: {exc}") from exc

    rows = []
    bar = _progress(len(methods), args.quiet)
    for method in methods:
        bar.set_description(method)
        est = MTLMAnnotator(method, n_labels=args.n_labels, metrics=data.metrics,
                            n_jobs=args.n_jobs, random_state=args.seed)
        t0 = time.perf_counter()
        est.fit(data.X_train, data.Y_train)
        t1 = time.perf_counter()
        scores = est.decision_function(data.X_test)
        t2 = time.perf_counter()
        res = annotation_scores(data.Y_test, top_k_annotation(scores, args.n_labels),
                                scores)
        rows.append({"method": method, "P": res["P"], "R": res["R"], "F1": res["F1"],
                     "N+": int(res["N+"]), "MAP": res.get("MAP", float("nan")),
                     "fit_s": t1 - t0, "predict_s": t2 - t1})
        bar.update(1)
    bar.close()
    print(_table(rows, data))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([{k: (float(v) if isinstance(v, np.floating) else v)
                        for k, v in r.items()} for r in rows], fh, indent=2)
    return 0


def _progress(total, quiet):
    from tqdm import tqdm

    return tqdm(total=total, file=sys.stderr, disable=quiet, unit="method")


def _table(rows, data):
    head = (f"{data.name}: {len(data.Y_train)} train / {len(data.Y_test)} test images, "
            f"{data.Y_train.shape[1]} labels, {len(data.feature_names)} feature type(s)")
    lines = [head, "  ".join(f"{c:>10}" for c in _COLUMNS)]
    for r in rows:
        cells = [f"{r['method']:>10}"]
        cells += [f"{r[c]:>10.3f}" for c in ("P", "R", "F1")]
        cells += [f"{r['N+']:>10d}", f"{r['MAP']:>10.3f}"]
        cells += [f"{r[c]:>10.1f}" for c in ("fit_s", "predict_s")]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def _usage_error(message):
    print(f"mtlm: error: {message}", file=sys.stderr)
    return 2


def main(argv=None):
    """Run the ``mtlm`` command; return its exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "evaluate":
            return _evaluate(args)
    except DataError as exc:
        if args.debug:
            raise
        print(f"mtlm: {exc}", file=sys.stderr)
        return 1
    except (ValueError, MemoryError) as exc:
        if args.debug:
            raise
        print(f"mtlm: error: {exc}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

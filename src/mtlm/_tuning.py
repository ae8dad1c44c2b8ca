"""Hold-out hyper-parameter selection for :class:`~mtlm.MTLMAnnotator`.

:meth:`MTLMAnnotator.tune <mtlm.MTLMAnnotator.tune>` splits the training set
once into a fit part and a hold-out part, fits every grid point on the fit
part exactly as :meth:`~mtlm.MTLMAnnotator.fit` would (``tau`` included,
chosen on fit-part images), scores the annotation of the hold-out images and
refits the best point on the whole training set.  Hold-out images are never
in a fit: they see no training label of their own, and test data is never
used.

Work shared between grid points of one split:

* the base distances (normalisers and prepared blocks), built once per
  ``(metrics, normalize)`` pair, i.e. once unless the grid searches those;
* the training constraints (LDML pairs, LMNN triplets), built once per
  constraint key (:func:`mtlm._ldml.ldml_constraints_key`,
  :func:`mtlm._lmnn.lmnn_constraints_key`): points that differ only in the
  regularisation, ``mu``, ``margin`` or the solver settings reuse them;
* the learned metric, across points that differ only in parameters used
  after learning (``k`` when the constraints do not use it, ``tau``, ``vote``,
  ``vote_scale``, ``n_tune``, ``tau_select``).

Grid points are visited grouped by those keys, so at most one constraint set
is held at a time; results are reported in grid order.
"""

from __future__ import annotations

import itertools
import logging
import numbers
import time
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from mtlm import _ldml, _lmnn
from mtlm._caller import warn_at_caller
from mtlm._distances import BaseDistances
from mtlm._validation import (
    block_columns,
    check_choice,
    check_feature_blocks,
    check_label_matrix,
)
from mtlm.metrics import annotation_scores, top_k_annotation
from mtlm_fast import effective_n_threads

__all__ = ["DEFAULT_GRIDS", "SCORINGS", "default_grid", "tune"]

logger = logging.getLogger(__name__)

#: Searched when ``param_grid`` is None.  Small on purpose: one regularisation
#: parameter per learned method and the pool size ``k``.
DEFAULT_GRIDS = {
    "jec": {"k": [2, 4, 8]},
    "mtlm-ldml": {"gamma_label": [1.0, 30.0, 1000.0], "k": [4, 8]},
    "local-ldml": {"gamma_label": [1.0, 30.0, 1000.0], "k": [4, 8]},
    "global-ldml": {"gamma_shared": [1.0, 30.0, 1000.0], "k": [4, 8]},
    "mtlm-lmnn": {"mu": [0.1, 0.25, 1.0], "k": [4, 8]},
    "local-lmnn": {"mu": [0.1, 0.25, 1.0], "k": [4, 8]},
    "global-lmnn": {"gamma_shared": [0.1, 1.0, 10.0], "k": [4, 8]},
}

#: ``scoring`` -> key of :func:`mtlm.metrics.annotation_scores`.
SCORINGS = {"f1": "F1", "miap": "MiAP"}

#: Parameters a grid may not search: they choose the problem or the machine,
#: not the model (``n_labels`` is also the scoring's cut-off).
_NOT_SEARCHED = (
    "method",
    "n_labels",
    "n_jobs",
    "random_state",
    "backend",
    "dask_client",
)

#: Parameters used only after learning (pool and vote); the constraint key
#: covers ``k`` where the constraints use it.
_VOTE_ONLY = (
    "k",
    "tau",
    "vote",
    "vote_scale",
    "n_tune",
    "tau_select",
    "probability",
)

#: Parameters that only choose the training constraints; the constraint key
#: holds the ones the chosen scheme uses.
_CONSTRAINTS_ONLY = ("constraints", "k_pos", "k_neg", "overlap", "max_dissimilar")


def default_grid(method):
    """The grid searched for ``method`` when ``param_grid`` is None.

    Parameters
    ----------
    method : str
        One of :data:`mtlm.METHODS`.

    Returns
    -------
    grid : dict of str to list
        A fresh copy of :data:`DEFAULT_GRIDS` ``[method]``.
    """
    return {name: list(values) for name, values in DEFAULT_GRIDS[method].items()}


# -- checking --------------------------------------------------------------------
def _expand_grid(param_grid, est):
    """Grid points (list of dicts) of a dict or a list of dicts of value lists."""
    if param_grid is None:
        param_grid = default_grid(est.method)
    if isinstance(param_grid, Mapping):
        grids = [param_grid]
    elif isinstance(param_grid, Sequence) and not isinstance(param_grid, str):
        grids = list(param_grid)
        if not grids:
            raise ValueError("param_grid is empty: give at least one parameter.")
        for g in grids:
            if not isinstance(g, Mapping):
                raise ValueError(
                    f"param_grid must be a dict of value lists or a list of such "
                    f"dicts; it holds {g!r}."
                )
    else:
        raise ValueError(
            f"param_grid must be None, a dict of value lists or a list of such "
            f"dicts; got {param_grid!r}."
        )
    known = est.get_params(deep=False)
    points = []
    for g in grids:
        if not g:
            raise ValueError(
                "param_grid is empty: give at least one parameter with its values, "
                'e.g. {"k": [4, 8]}.'
            )
        for name, values in g.items():
            if name in _NOT_SEARCHED:
                raise ValueError(
                    f"param_grid cannot search {name!r}: {', '.join(_NOT_SEARCHED)} "
                    "are fixed during a search (set them on the estimator)."
                )
            if name not in known:
                raise ValueError(
                    f"param_grid: {name!r} is not a parameter of MTLMAnnotator; "
                    f"known: {', '.join(p for p in known if p not in _NOT_SEARCHED)}."
                )
            if (
                isinstance(values, (str, bytes, Mapping))
                or not isinstance(values, (Sequence, np.ndarray))
                or len(values) == 0
            ):
                raise ValueError(
                    f"param_grid[{name!r}] must be a non-empty list of values, "
                    f"got {values!r}."
                )
        names = list(g)
        for combo in itertools.product(*(list(g[k]) for k in names)):
            points.append(dict(zip(names, combo)))
    return points


def checked_grid(param_grid, est):
    """(points, one checked fresh annotator per point) of ``param_grid``.

    Raises ValueError naming the first bad point or entry.
    """
    points = _expand_grid(param_grid, est)
    return points, [_context(est, p) for p in points]


def _context(est, point):
    """A fresh annotator with ``point`` applied, its parameters checked."""
    params = {**est.get_params(deep=False), **point}  # no deep copy: a client is kept
    ctx = type(est)(**params)
    try:
        ctx._validate_params()
        if ctx.method in _lmnn.LMNN_METHODS:
            _lmnn.check_lmnn_params(ctx)
    except ValueError as exc:
        raise ValueError(f"param_grid point {point}: {exc}") from exc
    return ctx


def check_holdout(holdout, n=None):
    """Number of hold-out images of ``holdout`` among ``n`` (None: form only).

    A fraction in (0, 1), or a count (an int, or an integral float >= 2 such
    as 30.0 from the CLI; 1.0 is read as neither) in [1, n - 1].
    """
    if n is not None and n < 2:
        raise ValueError(f"a hold-out split needs at least 2 training images, got {n}.")
    big = np.inf if n is None else n - 1
    if isinstance(holdout, (bool, np.bool_)):
        ok, n_hold = False, 0
    elif isinstance(holdout, numbers.Integral):
        ok, n_hold = 1 <= holdout <= big, int(holdout)
    elif isinstance(holdout, numbers.Real) and float(holdout).is_integer():
        ok = 2 <= holdout <= big
        n_hold = int(holdout) if ok else 0
    elif isinstance(holdout, numbers.Real):
        ok = 0.0 < holdout < 1.0  # False for NaN
        n_hold = 0
        if ok and n is not None:
            n_hold = min(max(int(round(float(holdout) * n)), 1), n - 1)
    else:
        ok, n_hold = False, 0
    if not ok:
        span = "[1, n - 1]" if n is None else f"[1, n - 1] = [1, {n - 1}]"
        hint = (
            " (1.0 is read as neither: give 1 for one image)"
            if not isinstance(holdout, bool) and holdout == 1.0
            else ""
        )
        raise ValueError(
            f"holdout must be a fraction in (0, 1) or a number of images in "
            f"{span}{hint}; got {holdout!r}."
        )
    return n_hold


def _split(n, holdout, Y, rng):
    """Sorted (fit rows, hold-out rows) of one random split."""
    n_hold = check_holdout(holdout, n)
    perm = rng.permutation(n)
    hold, fit = np.sort(perm[:n_hold]), np.sort(perm[n_hold:])
    for rows, part in ((hold, "hold-out"), (fit, "fit")):
        if not Y[rows].any():
            raise ValueError(
                f"holdout={holdout!r}: the {part} part of the split ({rows.size} of "
                f"{n} images) has no labelled image; change holdout or random_state."
            )
    return fit, hold


# -- keys of shared work ----------------------------------------------------------
def _distances_key(ctx):
    return (repr(ctx.metrics), ctx.normalize)


def _learning_steps(method):
    """(constraints key, build, solve) of a learned method; None for JEC."""
    if method in _ldml.LDML_METHODS:
        return (
            _ldml.ldml_constraints_key,
            lambda ctx, t: _ldml.ldml_constraints(ctx, t),
            lambda ctx, c, t: _ldml.learn_ldml(ctx, c, t),
        )
    if method in _lmnn.LMNN_METHODS:
        return (
            _lmnn.lmnn_constraints_key,
            lambda ctx, t: _lmnn.lmnn_constraints(ctx, t),
            lambda ctx, c, t: _lmnn.learn_lmnn(ctx, c, t),
        )
    return None


def _constraints_key(ctx):
    steps = _learning_steps(ctx.method)
    return None if steps is None else steps[0](ctx)


def _learning_key(ctx):
    params = ctx.get_params(deep=False)
    skip = set(_VOTE_ONLY) | set(_NOT_SEARCHED) | set(_CONSTRAINTS_ONLY)
    return (
        _constraints_key(ctx),
        tuple((k, repr(v)) for k, v in sorted(params.items()) if k not in skip),
    )


def _visit_order(contexts):
    """Grid indices grouped by base distances, then by constraints."""
    first = {}
    keys = []
    for i, ctx in enumerate(contexts):
        kd = _distances_key(ctx)
        kc = (kd, _constraints_key(ctx))
        keys.append((first.setdefault(kd, i), first.setdefault(kc, i), i))
    return [k[2] for k in sorted(keys)]


# -- the search ------------------------------------------------------------------
def tune(
    est,
    X,
    y,
    param_grid=None,
    *,
    holdout=0.1,
    scoring="f1",
    random_state=None,
    refit=True,
):
    """Hold-out search; see :meth:`mtlm.MTLMAnnotator.tune`.  Returns ``est``."""
    from mtlm._annotator import _check_random_state, equal_weights, forget_fit

    est._validate_params()
    check_choice(scoring, "scoring", tuple(SCORINGS))
    if not isinstance(refit, (bool, np.bool_)):
        raise ValueError(f"refit must be a bool, got {refit!r}.")
    blocks, names, diagonal = check_feature_blocks(X, "X")
    columns = block_columns(X, names)
    n = blocks[0].shape[0]
    Y = check_label_matrix(y, n, "y", allow_empty=False)
    points, contexts = checked_grid(param_grid, est)
    if random_state is not None:
        _check_random_state(random_state)  # names the argument
    rng = check_random_state(est.random_state if random_state is None else random_state)
    fit_rows, hold_rows = _split(n, holdout, Y, rng)
    n_threads = effective_n_threads(est.n_jobs)
    fit_blocks = [b[fit_rows] for b in blocks]
    hold_blocks = [b[hold_rows] for b in blocks]
    Y_fit, Y_hold = Y[fit_rows], Y[hold_rows]
    logger.info(
        "tune %s: %d grid point(s), fit on %d images, scored (%s) on %d hold-out",
        est.method,
        len(points),
        fit_rows.size,
        scoring,
        hold_rows.size,
    )

    t_search = time.perf_counter()
    rows = [None] * len(points)
    dkey = ckey = cons = prepared = hold_prepared = bd = None
    learned_cache = {}
    n_not_converged = 0
    for i in _visit_order(contexts):
        ctx = contexts[i]
        t0 = time.perf_counter()
        if _distances_key(ctx) != dkey:
            dkey, ckey, cons, learned_cache = _distances_key(ctx), None, None, {}
            bd = BaseDistances(metrics=ctx.metrics, normalize=ctx.normalize)
            bd._fit_blocks(fit_blocks, names, diagonal, ctx.n_jobs, columns=columns)
            prepared = [bd._prepare(b, m) for b, m in zip(fit_blocks, bd.metrics_)]
            hold_prepared = [
                bd._prepare(b, m) for b, m in zip(hold_blocks, bd.metrics_)
            ]
        ctx._set_training_data(bd, fit_blocks, Y_fit, prepared=prepared)
        lkey = _learning_key(ctx)
        converged = True
        if lkey in learned_cache:
            learned, converged = learned_cache[lkey]
        elif ctx.method == "jec":
            learned = equal_weights(bd.n_base_, Y_fit.shape[1])
        else:
            _, build, solve = _learning_steps(ctx.method)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                if lkey[0] != ckey:
                    ckey, cons = None, None  # free the previous set first
                    cons = build(ctx, n_threads)
                    ckey = lkey[0]
                learned = solve(ctx, cons, n_threads)
            for w in caught:
                if issubclass(w.category, ConvergenceWarning):
                    converged = False
                else:
                    warn_at_caller(w.message, w.category)
            n_not_converged += not converged
            learned_cache[lkey] = (learned, converged)
        ctx._set_weights(learned)
        ctx._choose_tau(n_threads)
        t1 = time.perf_counter()
        scores = ctx._scores(hold_prepared, [ctx.tau_], n_threads)[0]
        res = annotation_scores(Y_hold, top_k_annotation(scores, ctx.n_labels), scores)
        t2 = time.perf_counter()
        rows[i] = dict(
            score=res[SCORINGS[scoring]],
            f1=res["F1"],
            miap=res["MiAP"],
            n_plus=res["N+"],
            tau=ctx.tau_,
            n_iter=ctx.n_iter_,
            converged=converged,
            fit_time=t1 - t0,
            score_time=t2 - t1,
        )
        logger.info(
            "tune %s %s: hold-out F1 %.3f, MiAP %.3f, N+ %d (tau %.3g, %d iter, "
            "%.1f s)",
            est.method,
            points[i],
            res["F1"],
            res["MiAP"],
            res["N+"],
            ctx.tau_,
            ctx.n_iter_,
            t2 - t0,
        )
        contexts[i] = None  # its prepared blocks may be the last reference
    del cons, learned_cache, prepared, hold_prepared, bd
    if n_not_converged:
        warn_at_caller(
            f"{n_not_converged} of {len(points)} grid point(s) stopped at max_iter "
            "before converging (see tune_results_['converged']); raise max_iter.",
            ConvergenceWarning,
        )
    search_time = time.perf_counter() - t_search

    results = _results(points, _point_params(est, points), rows)
    best = int(results["rank"].argmin())  # rank 1; ties to the first grid point
    est.set_params(**points[best])
    logger.info(
        "tune %s: best %s (hold-out %s %.3f)%s",
        est.method,
        points[best],
        scoring,
        results["score"][best],
        f"; refitting on all {n} images" if refit else "",
    )
    if refit:
        est.fit(X, y)
    else:
        forget_fit(est)
    est.tune_results_ = results
    est.best_index_ = best
    est.best_params_ = dict(points[best])
    est.best_score_ = float(results["score"][best])
    est.tune_scoring_ = scoring
    est.tune_holdout_indices_ = hold_rows
    est.tune_time_ = search_time
    return est


def _point_params(est, points):
    """Every searched parameter's value at each point (the estimator's if unset)."""
    names = list(dict.fromkeys(k for p in points for k in p))
    base = est.get_params(deep=False)
    return {k: [p.get(k, base[k]) for p in points] for k in names}


def _results(points, params, rows):
    score = np.array([r["score"] for r in rows], dtype=np.float64)
    # rank 1 = best; equal scores share the lowest rank (as scikit-learn's).
    order = np.argsort(-score, kind="stable")
    rank = np.empty(score.size, dtype=np.int64)
    sorted_scores = score[order]
    first = np.searchsorted(-sorted_scores, -sorted_scores, side="left")
    rank[order] = first + 1
    out = {"params": [dict(p) for p in points]}
    for name, values in params.items():
        out[f"param_{name}"] = list(values)
    out["score"] = score
    out["rank"] = rank
    for key in ("f1", "miap", "tau", "fit_time", "score_time"):
        out[key] = np.array([r[key] for r in rows], dtype=np.float64)
    out["n_plus"] = np.array([r["n_plus"] for r in rows], dtype=np.int64)
    out["n_iter"] = np.array([r["n_iter"] for r in rows], dtype=np.int64)
    out["converged"] = np.array([r["converged"] for r in rows], dtype=bool)
    return out

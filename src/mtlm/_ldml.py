"""MTLM-LDML and its two baselines, from one projected-gradient solver.

The objective (ALGORITHM.md section 4.1, bias folded in as in the appendix)::

    E = gamma_s ||w_*||^2 + sum_m [ gamma_m ||(b_m, w_m)||^2
                                    + c_m sum_{(q,p,s) in P_m} softplus(s D'_m(q, p)) ]
    D'_m(q, p) = (w_* + w_m) . d(q, p) - b_m

with c_m = 1, or 1 / |P_m| when ``normalize_loss=True``.  Three methods come
out of the same code (section 4.5):

``"mtlm-ldml"``   w_* and every (b_m, w_m) learned; w_* starts at 1/F, w_m at 0.
``"local-ldml"``  w_* fixed at 0, independent (b_m, w_m) starting at 1/F.
``"global-ldml"`` one task on image-level constraints: w_* and one bias.

Labels that are not tasks (too few images, see :mod:`mtlm._constraints`)
keep their initial w_m: 0 under MTLM (the shared metric only) and 1/F under
the local method (the equal-weight metric).

Optimisation is projected gradient descent with a bold-driver step (section
4.3): every vector is updated at once, clipped at 0; a step that lowers E is
accepted and the step grows by 1.01, otherwise it is rejected and halved.

Step sizes (``step_size``):

``"block"`` (default)
    Every block (w_*, each w_m, each b_m) has its own base step, set by the
    section 4.3 rule ``0.1 max(||x0||_inf, 1/F) / ||G(x0)||_inf`` from that
    block's own gradient; the bold driver scales all of them by one common
    factor.  The gradient of w_* sums over all labels and is far larger
    than any one label's, so with a single step w_m barely moves
    (issue 3, pitfall d); per-block steps remove that throttle while
    keeping E monotone.
``"single"``
    One step for every vector, as in the appendix.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from mtlm._caller import warn_at_caller
from mtlm._constraints import build_constraints
from mtlm_fast import _ldml

__all__ = [
    "LDMLProblem",
    "ldml_objective",
    "ldml_gradient",
    "solve_ldml",
    "ldml_constraints",
    "ldml_constraints_key",
    "learn_ldml",
    "fit_ldml",
]

logger = logging.getLogger(__name__)

LDML_METHODS = ("mtlm-ldml", "local-ldml", "global-ldml")
STEP_SIZES = ("block", "single")


class LDMLProblem:
    """The learned tasks of a :class:`~mtlm._constraints.Constraints` set.

    Only active tasks enter the objective; their CSR lists are packed
    contiguously for the K3 kernel.

    Parameters
    ----------
    cons : Constraints
    normalize_loss : bool
        Divide each task's data term by its number of pairs.
    """

    def __init__(self, cons, normalize_loss=False):
        self.tasks = np.flatnonzero(cons.active).astype(np.intp)
        self.n_tasks = cons.n_tasks
        self.d = cons.store.d
        parts_p, parts_s = [], []
        ptr = np.zeros(self.tasks.size + 1, dtype=np.int64)
        for i, t in enumerate(self.tasks):
            sl = slice(cons.ptr[t], cons.ptr[t + 1])
            parts_p.append(cons.pair[sl])
            parts_s.append(cons.sign[sl])
            ptr[i + 1] = ptr[i] + (cons.ptr[t + 1] - cons.ptr[t])
        if ptr[-1] > np.iinfo(np.int32).max:
            raise ValueError("too many label pairs for int32 indices; reduce k")
        self.ptr = ptr.astype(np.int32)
        self.pair = np.ascontiguousarray(
            np.concatenate(parts_p) if parts_p else np.zeros(0), dtype=np.int32
        )
        self.sign = np.ascontiguousarray(
            np.concatenate(parts_s) if parts_s else np.zeros(0), dtype=np.int8
        )
        counts = np.diff(self.ptr).astype(np.float64)
        self.scale = (
            1.0 / np.maximum(counts, 1.0) if normalize_loss else np.ones_like(counts)
        )

    @property
    def n_base(self):
        return self.d.shape[1]

    def data_terms(self, w_shared, w_label, bias, n_threads=1):
        """K3: per-task loss (Ta,), gradient (Ta, F + 1) and shared sum (F,)."""
        Ta, F = self.tasks.size, self.n_base
        W = np.ascontiguousarray(w_shared[None, :] + w_label, dtype=np.float64)
        grad = np.empty((Ta, F + 1))
        loss = np.empty(Ta)
        gs = np.empty(F)
        _ldml.ldml_grad(
            self.d,
            self.ptr,
            self.pair,
            self.sign,
            W,
            np.ascontiguousarray(bias, dtype=np.float64),
            self.scale,
            grad,
            loss,
            gs,
            n_threads,
        )
        return loss, grad, gs


def _penalty(w_shared, w_label, bias, gamma_shared, gamma_label, regularize_bias):
    e = gamma_shared * w_shared @ w_shared + gamma_label * np.sum(w_label * w_label)
    if regularize_bias:
        e += gamma_label * bias @ bias
    return float(e)


def ldml_objective(
    problem,
    w_shared,
    w_label,
    bias,
    *,
    gamma_shared,
    gamma_label,
    regularize_bias=True,
    n_threads=1,
):
    """E at (w_*, w_m, b_m) of the active tasks; see the module docstring."""
    loss, _, _ = problem.data_terms(w_shared, w_label, bias, n_threads)
    return float(loss.sum()) + _penalty(
        w_shared, w_label, bias, gamma_shared, gamma_label, regularize_bias
    )


def ldml_gradient(
    problem,
    w_shared,
    w_label,
    bias,
    *,
    gamma_shared,
    gamma_label,
    regularize_bias=True,
    n_threads=1,
):
    """E and its full gradient (section 4.1).

    Returns
    -------
    E : float
    G_shared : ndarray of shape (F,)
    G_label : ndarray of shape (Ta, F)
    G_bias : ndarray of shape (Ta,)
    """
    loss, grad, gs = problem.data_terms(w_shared, w_label, bias, n_threads)
    E = float(loss.sum()) + _penalty(
        w_shared, w_label, bias, gamma_shared, gamma_label, regularize_bias
    )
    G_shared = 2.0 * gamma_shared * w_shared + gs
    G_label = 2.0 * gamma_label * w_label + grad[:, 1:]
    G_bias = grad[:, 0] + (2.0 * gamma_label * bias if regularize_bias else 0.0)
    return E, G_shared, G_label, G_bias


def _base_step(x, G, F):
    """Section 4.3 rule per row of x: 0.1 max(||x||_inf, 1/F) / ||G||_inf.

    A row with a zero gradient gets the step of a unit gradient.
    """
    num = 0.1 * np.maximum(np.abs(x).max(axis=1), 1.0 / F)
    g = np.abs(G).max(axis=1)
    return num / np.where(g > 0, g, 1.0)


def solve_ldml(
    problem,
    *,
    shared=True,
    label_specific=True,
    gamma_shared=1.0,
    gamma_label=1.0,
    max_iter=500,
    tol=1e-6,
    step_size="block",
    regularize_bias=True,
    n_threads=1,
):
    """Projected gradient descent with the bold driver (section 4.3).

    Parameters
    ----------
    problem : LDMLProblem
    shared : bool
        Learn w_* (else it stays 0 and w_m starts at 1/F).
    label_specific : bool
        Learn w_m (else it stays at its start; the biases are still learned).
    gamma_shared, gamma_label : float
    max_iter : int
    tol : float
        Stop after an accepted step whose relative decrease is below ``tol``.
    step_size : {"block", "single"}
    regularize_bias : bool
    n_threads : int

    Returns
    -------
    w_shared : ndarray of shape (F,)
    w_label : ndarray of shape (Ta, F)
    bias : ndarray of shape (Ta,)
    n_iter : int
    objective : ndarray
        E at the start, then after each accepted step.
    """
    F, Ta = problem.n_base, problem.tasks.size
    w0 = 1.0 / F
    ws = np.full(F, w0) if shared else np.zeros(F)
    wl = np.zeros((Ta, F)) if shared else np.full((Ta, F), w0)
    # b_m = median of D_0 over the task's pairs.
    D0 = problem.d.astype(np.float64) @ np.full(F, w0)
    bias = (
        np.array(
            [
                np.median(D0[problem.pair[problem.ptr[i] : problem.ptr[i + 1]]])
                for i in range(Ta)
            ]
        )
        if Ta
        else np.zeros(0)
    )
    kw = dict(
        gamma_shared=gamma_shared if shared else 0.0,
        gamma_label=gamma_label,
        regularize_bias=regularize_bias,
        n_threads=n_threads,
    )
    if Ta == 0:
        return ws, wl, bias, 0, np.zeros(0)

    E, Gs, Gl, Gb = ldml_gradient(problem, ws, wl, bias, **kw)
    if step_size == "single":
        gmax = max(
            np.abs(Gs).max() if shared else 0.0,
            np.abs(Gl).max() if label_specific else 0.0,
            np.abs(Gb).max(),
        )
        xmax = max(np.abs(ws).max(), np.abs(wl).max(), np.abs(bias).max())
        eta0 = 0.1 * max(xmax, w0) / gmax if gmax > 0 else 1.0
        eta_s, eta_l, eta_b = eta0, np.full(Ta, eta0), np.full(Ta, eta0)
    else:
        eta_s = float(_base_step(ws[None, :], Gs[None, :], F)[0])
        eta_l = _base_step(wl, Gl, F)
        eta_b = _base_step(bias[:, None], Gb[:, None], F)
    if not shared:
        eta_s = 0.0
    if not label_specific:
        eta_l = np.zeros(Ta)
    rho = 1.0
    trace = [E]
    n_iter = 0
    converged = False
    t0 = time.perf_counter()
    for it in range(1, max_iter + 1):
        n_iter = it
        ws_new = np.maximum(ws - rho * eta_s * Gs, 0.0)
        wl_new = np.maximum(wl - rho * eta_l[:, None] * Gl, 0.0)
        b_new = np.maximum(bias - rho * eta_b * Gb, 0.0)
        E_new, Gs_new, Gl_new, Gb_new = ldml_gradient(
            problem, ws_new, wl_new, b_new, **kw
        )
        if E_new < E:
            decrease = (E - E_new) / abs(E) if E != 0 else 0.0
            ws, wl, bias, E = ws_new, wl_new, b_new, E_new
            Gs, Gl, Gb = Gs_new, Gl_new, Gb_new
            trace.append(E)
            rho *= 1.01
            if decrease < tol:
                converged = True
                break
        else:
            rho *= 0.5
            if rho < 1e-12:
                converged = True
                break
    if not converged:
        warn_at_caller(
            f"LDML stopped at max_iter={max_iter} before the relative decrease "
            f"of the objective fell below tol={tol:g}; raise max_iter.",
            ConvergenceWarning,
        )
    logger.info(
        "LDML: %d iterations (%d accepted), E %.6g -> %.6g, %.2f s",
        n_iter,
        len(trace) - 1,
        trace[0],
        trace[-1],
        time.perf_counter() - t0,
    )
    return ws, wl, bias, n_iter, np.asarray(trace)


def ldml_scheme(est):
    """``est.constraints``, None read as LDML's default ``"2pknn"``."""
    return "2pknn" if est.constraints is None else est.constraints


def ldml_constraints_key(est):
    """What the constraints of ``est`` depend on, besides the training data.

    Grid points with equal keys (on the same data) share one
    :func:`ldml_constraints` result; the regularisation and solver settings
    only enter :func:`learn_ldml`.
    """
    scheme = ldml_scheme(est)
    two = scheme == "2pknn"
    return (
        "ldml",
        est.method == "global-ldml",
        scheme,
        est.k if two else None,
        None if two else (est.k_pos, est.k_neg),
        est.overlap if two else None,
        est.max_dissimilar if two else None,
    )


def ldml_constraints(est, n_threads):
    """The constraints that ``est`` (a fit context) asks for."""
    t0 = time.perf_counter()
    neighbours, _, n_threads = est._neighbourhood_functions(n_threads)
    cons = build_constraints(
        est.base_distances_,
        est._train_blocks,
        est.Y_train_,
        scheme=ldml_scheme(est),
        k=est.k,
        k_pos=est.k_pos,
        k_neg=est.k_neg,
        overlap=est.overlap,
        max_dissimilar=est.max_dissimilar,
        image_level=est.method == "global-ldml",
        n_threads=n_threads,
        neighbours=neighbours,
    )
    logger.info("constraints built in %.2f s", time.perf_counter() - t0)
    return cons


def learn_ldml(est, cons, n_threads):
    """Solve the problem of ``est.method`` on prebuilt constraints.

    Returns a :class:`~mtlm._annotator.LearnedMetric`.  Constraints depend
    only on the data, ``constraints``, ``k``, ``k_pos``, ``k_neg``,
    ``overlap``, ``max_dissimilar`` and whether the method is global, so a
    parameter search over the regularisation can reuse them.
    """
    from mtlm._annotator import LearnedMetric

    method = est.method
    image_level = method == "global-ldml"
    problem = LDMLProblem(cons, normalize_loss=est.normalize_loss)
    if problem.tasks.size == 0:
        scheme = ldml_scheme(est)
        need = (
            f"more than k={est.k} images"
            if scheme == "2pknn"
            else "2 images and a similar or dissimilar neighbour"
        )
        warn_at_caller(
            f"no constraint to learn from (constraints={scheme!r}: a label needs "
            f"{need}): the metric stays at its initial value; lower k.",
            UserWarning,
        )
    max_iter = 500 if est.max_iter is None else est.max_iter
    shared = method != "local-ldml"
    ws, wl, bias, n_iter, trace = solve_ldml(
        problem,
        shared=shared,
        label_specific=not image_level,
        gamma_shared=est.gamma_shared,
        gamma_label=est.gamma_label,
        max_iter=max_iter,
        tol=est.tol,
        step_size=est.step_size,
        regularize_bias=est.regularize_bias,
        n_threads=n_threads,
    )
    M = est.Y_train_.shape[1]
    F = problem.n_base
    # tasks without a dissimilar pair: their loss is lowest at distance 0
    similar_only = np.ones(cons.n_tasks, dtype=bool)
    task_of_pair = np.repeat(problem.tasks, np.diff(problem.ptr))
    similar_only[task_of_pair[problem.sign < 0]] = False
    if image_level:
        # One metric for every label; the task's bias plays no part in the vote.
        b = bias[0] if bias.size else 0.0
        _warn_zero_metrics(ws[None, :], similar_only[problem.tasks].all())
        return LearnedMetric(ws, np.zeros((M, F)), np.full(M, b), n_iter, trace)
    W_label = np.zeros((M, F)) if shared else np.full((M, F), 1.0 / F)
    B = np.zeros(M)
    W_label[problem.tasks] = wl
    B[problem.tasks] = bias
    _warn_zero_metrics(ws[None, :] + W_label, similar_only)
    return LearnedMetric(ws, W_label, B, n_iter, trace)


def _warn_zero_metrics(W, similar_only):
    """Warn when LDML drove a metric to zero (its votes are flat).

    ``similar_only`` (per row of ``W``) marks tasks with no dissimilar pair.
    """
    dead = np.flatnonzero(W.sum(axis=1) <= 0.0)
    if dead.size == 0:
        return
    what = (
        "the shared metric"
        if W.shape[0] == 1
        else f"the metric of {dead.size} label(s) (first: {dead[:5].tolist()})"
    )
    if np.all(np.asarray(similar_only)[dead] if W.shape[0] > 1 else similar_only):
        why = (
            "none of its pairs is dissimilar (no neighbour lacks the labels), "
            "and a similar pair's logistic loss is lowest at distance 0"
        )
    else:
        why = "lower gamma_shared / gamma_label"
    warn_at_caller(
        f"LDML drove {what} to zero: every training image is at distance 0 and "
        f"votes equally; {why}.",
        RuntimeWarning,
    )


def fit_ldml(est, n_threads):
    """Learner for :class:`~mtlm.MTLMAnnotator` (registered in ``_LEARNERS``).

    Builds the constraints of ``est.constraints`` and solves the problem of
    ``est.method``; returns a :class:`~mtlm._annotator.LearnedMetric`.
    """
    return learn_ldml(est, ldml_constraints(est, n_threads), n_threads)

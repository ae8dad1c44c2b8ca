import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning

from mtlm import _reference_lmnn as ref
from mtlm._annotator import MTLMAnnotator
from mtlm._distances import BaseDistances
from mtlm._lmnn import (
    _ActiveState,
    build_triplets,
    fit_lmnn,
    gradients,
    objective_terms,
)
from mtlm_fast import _lmnn as K

MODES = ["mtlm", "local", "global"]


def make_data(rng, n=60, M=6, p=0.3, ties=True):
    X = {"a": rng.random((n, 5)), "b": rng.random((n, 4))}
    if ties:  # coarse values make equal distances; duplicates make distance 0
        X = {k: np.round(v * 3) / 3 for k, v in X.items()}
        for v in X.values():
            v[5] = v[4]
            v[7] = v[4]
    Y = (rng.random((n, M)) < p).astype(np.uint8)
    Y[:, -1] = 0
    Y[:3, -1] = 1  # a label with fewer than k_pos + 1 images
    bd = BaseDistances().fit(X)
    blocks = bd.check(X)
    return bd, blocks, Y


def triplets(rng, mode="mtlm", k_pos=3, k_neg=5, n_threads=1, **kw):
    bd, blocks, Y = make_data(rng, **kw)
    return (
        bd,
        blocks,
        Y,
        build_triplets(
            bd,
            blocks,
            Y,
            k_pos,
            k_neg,
            global_task=mode == "global",
            n_threads=n_threads,
        ),
    )


def _lists_of(ts):
    """(q, m) -> (targets, impostors) rebuilt from a triplet set."""
    got = {}
    lq, lp = ts.store.q[ts.lp_idx], ts.store.p[ts.lp_idx]
    for t_i in range(ts.n_tasks):
        m = int(ts.task_labels[t_i])
        a, nt, b = ts.lp_ptr[t_i], ts.n_target[t_i], ts.lp_ptr[t_i + 1]
        for pos in range(a, b):
            key = (int(lq[pos]), m)
            got.setdefault(key, ([], []))[0 if pos < a + nt else 1].append(int(lp[pos]))
    return got


# -- neighbour selection ---------------------------------------------------------
@pytest.mark.parametrize("global_task", [False, True])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_selection_matches_reference(rng, global_task, n_threads):
    bd, blocks, Y = make_data(rng)
    k_pos, k_neg = 3, 5
    ts = build_triplets(
        bd, blocks, Y, k_pos, k_neg, global_task=global_task, n_threads=n_threads
    )
    F = bd.n_base_
    d = np.empty((Y.shape[0], Y.shape[0], F), dtype=np.float32)
    bd.pairwise_prepared(blocks, blocks, d, 1)
    labels = None if global_task else ts.task_labels
    want = ref.select_triplet_neighbours(
        d, np.full(F, 1 / F), Y, k_pos, k_neg, global_task=global_task, labels=labels
    )
    got = _lists_of(ts)
    assert set(got) == {k for k, v in want.items() if v[0] or v[1]}
    for key, (t, i) in got.items():
        assert t == [int(x) for x in want[key][0]], key
        assert i == [int(x) for x in want[key][1]], key


@pytest.mark.parametrize("global_task", [False, True])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize(
    "overlap, max_dissimilar",
    [("dissimilar", None), ("dissimilar", 4), ("both", None), ("shared", 6)],
)
def test_2pknn_triplets_match_reference(
    rng, global_task, n_threads, overlap, max_dissimilar
):
    bd, blocks, Y = make_data(rng, n=40)
    k = 3
    ts = build_triplets(
        bd,
        blocks,
        Y,
        scheme="2pknn",
        k=k,
        overlap=overlap,
        max_dissimilar=max_dissimilar,
        global_task=global_task,
        n_threads=n_threads,
    )
    F = bd.n_base_
    d = np.empty((Y.shape[0], Y.shape[0], F), dtype=np.float32)
    bd.pairwise_prepared(blocks, blocks, d, 1)
    want = ref.select_2pknn_triplets(
        d,
        Y,
        k,
        overlap=overlap,
        max_dissimilar=max_dissimilar,
        global_task=global_task,
    )
    got = _lists_of(ts)
    assert set(got) == {key for key, v in want.items() if v[0] or v[1]}
    for key, (t, i) in got.items():
        assert t == [int(x) for x in want[key][0]], key
        assert i == [int(x) for x in want[key][1]], key
    if not global_task:  # the label with 3 images (<= k) is no task
        assert Y.shape[1] - 1 not in ts.task_labels
    # every (q, m) row contributes targets x impostors triplets
    n_rows = sum(len(t) * len(i) for t, i in want.values())
    assert ts.n_triplets == n_rows


def test_duplicate_is_a_target_and_self_never(rng):
    bd, blocks, Y = make_data(rng)
    Y[:] = 0
    Y[[4, 5, 7, 9, 11], 0] = 1  # 5 and 7 duplicate image 4
    ts = build_triplets(bd, blocks, Y, 3, 5)
    lq, lp = ts.store.q[ts.lp_idx], ts.store.p[ts.lp_idx]
    tg = lp[: ts.n_target[0]][lq[: ts.n_target[0]] == 4]
    assert list(tg[:2]) == [5, 7]  # distance 0, lower index first
    assert not np.any(lq == lp)


def test_triplet_layout(rng):
    bd, blocks, Y, ts = triplets(rng)
    assert ts.t_ptr[-1] == ts.n_triplets
    assert 5 not in ts.task_labels  # 3 images < k_pos + 1
    lq = ts.store.q[ts.lp_idx]
    for m in range(ts.n_tasks):
        sl = slice(ts.t_ptr[m], ts.t_ptr[m + 1])
        a, b = ts.t_a[sl], ts.t_b[sl]
        nt = ts.n_target[m]
        assert np.all((a >= ts.lp_ptr[m]) & (a < ts.lp_ptr[m] + nt))
        assert np.all((b >= ts.lp_ptr[m] + nt) & (b < ts.lp_ptr[m + 1]))
        assert_array_equal(lq[a], lq[b])  # same query
        key = np.stack([lq[a], a, b], axis=1)  # canonical (q, target, impostor)
        assert np.all(np.diff(key[:, 0]) >= 0)
        lex = np.lexsort((b, a, lq[a]))
        assert_array_equal(lex, np.arange(lex.size))
        tl = ts.store.d[ts.lp_idx[ts.lp_ptr[m] : ts.lp_ptr[m] + nt]]
        assert_allclose(ts.c[m], tl.sum(axis=0, dtype=np.float64), rtol=1e-12)
        # every label's query has k_pos targets and k_neg candidates
        assert sl.stop - sl.start == 3 * 5 * (nt // 3)


# -- K4 against the numpy reference ----------------------------------------------------
@pytest.mark.parametrize("n_threads", [1, 2])
def test_mask_difference_matches_reference(rng, n_threads):
    bd, blocks, Y, ts = triplets(rng)
    T = ts.n_triplets
    for _ in range(5):
        old = (rng.random(T) < 0.5).astype(np.uint8)
        new = (rng.random(T) < 0.5).astype(np.uint8)
        S0 = rng.normal(size=(ts.n_tasks, bd.n_base_))
        S = S0.copy()
        K.mask_difference_update(
            ts.store.d, ts.lp_idx, ts.t_ptr, ts.t_a, ts.t_b, old, new, S, n_threads
        )
        want = S0 + ref.mask_difference(
            ts.store.d, ts.lp_idx, ts.t_ptr, ts.t_a, ts.t_b, old, new
        )
        assert_allclose(S, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("full", [True, False])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_active_update_matches_reference(rng, full, n_threads):
    bd, blocks, Y, ts = triplets(rng)
    F, nT = bd.n_base_, ts.n_tasks
    st = _ActiveState(ts, 0.1, n_threads)
    st.ws[:] = rng.random(ts.n_triplets) < 0.7
    ws0 = st.ws.copy()
    for _ in range(4):
        W = rng.random((nT, F)) / F
        st.update(W, full=full)
        mask, S, hinge = ref.active_set(
            ts.store.d,
            ts.lp_idx,
            ts.lp_ptr,
            ts.t_ptr,
            ts.t_a,
            ts.t_b,
            W,
            0.1,
            None if full else ws0,
        )
        assert_array_equal(st.mask, mask)
        assert_allclose(st.S, S, rtol=1e-10, atol=1e-10)
        assert_allclose(st.hinge, hinge, rtol=1e-10, atol=1e-12)
        assert_array_equal(
            st.n_active, [mask[ts.t_ptr[m] : ts.t_ptr[m + 1]].sum() for m in range(nT)]
        )
        if full:
            assert_array_equal(st.ws, mask)


def _rel(a, b):
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_incremental_equals_scratch_every_iteration(rng, mode, n_threads):
    bd, blocks, Y, ts = triplets(rng, mode=mode, n_threads=n_threads)
    seen = []

    def check(it, accepted, W, state):
        scratch = _ActiveState(ts, state.margin, 1)
        scratch.ws[:] = state.ws
        scratch.recompute(W, full=False)
        assert_array_equal(scratch.mask, state.mask)
        mask, S, hinge = ref.active_set(
            ts.store.d,
            ts.lp_idx,
            ts.lp_ptr,
            ts.t_ptr,
            ts.t_a,
            ts.t_b,
            W,
            state.margin,
            state.ws,
        )
        assert_array_equal(mask, state.mask)
        assert _rel(state.S, scratch.S) < 1e-9
        assert _rel(state.S, S) < 1e-9
        assert _rel(state.hinge, hinge) < 1e-9
        seen.append((it, accepted))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = fit_lmnn(
            ts,
            mode=mode,
            margin=0.5,
            gamma_shared=0.1,
            gamma_label=0.1,
            max_iter=60,
            tol=0.0,
            full_check_every=4,
            n_threads=n_threads,
            callback=check,
        )
    assert len(seen) == res.n_iter > 5
    assert res.objective[-1] < res.objective[0]


def test_rejected_step_restores_mask_and_S(rng):
    bd, blocks, Y, ts = triplets(rng)
    F, nT = bd.n_base_, ts.n_tasks
    st = _ActiveState(ts, 0.3, 2)
    W0 = np.full((nT, F), 1 / F)
    st.update(W0, full=True)
    before = [a.copy() for a in st.save()]
    ws = st.ws.copy()
    saved = st.save()
    assert st.update(rng.random((nT, F)), full=False) > 0
    st.restore(saved)
    for a, b in zip(st.save(), before):
        assert_array_equal(a, b)
    assert_array_equal(st.ws, ws)


def test_threads_give_identical_fits(rng):
    bd, blocks, Y, ts = triplets(rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        r1 = fit_lmnn(ts, margin=0.5, max_iter=40, n_threads=1)
        r2 = fit_lmnn(ts, margin=0.5, max_iter=40, n_threads=2)
    assert_array_equal(r1.w_label, r2.w_label)
    assert_array_equal(r1.objective, r2.objective)


# -- objective and gradient -----------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_subgradient_matches_finite_differences(rng, mode):
    bd, blocks, Y, ts = triplets(rng, mode=mode)
    F, nT = bd.n_base_, ts.n_tasks
    kw = dict(mu=1.3, gamma_shared=0.7, gamma_label=0.4)
    learn_s, learn_l = mode != "local", mode != "global"
    margin = 0.3
    d = ts.store.d.astype(np.float64)
    dmax = np.abs(d).max()
    h = 1e-6
    n_checked = 0
    for _ in range(20):
        w_s = rng.random(F) / F if learn_s else np.zeros(F)
        w_l = rng.random((nT, F)) / F if learn_l else np.zeros((nT, F))
        W = w_s[None] + w_l
        D = ref.task_distances(ts.store.d, ts.lp_idx, ts.lp_ptr, W)
        z = margin + D[ts.t_a] - D[ts.t_b]
        if np.abs(z).min() < 100 * h * dmax * F:
            continue  # too close to a hinge kink
        mask, S, hinge = ref.active_set(
            ts.store.d, ts.lp_idx, ts.lp_ptr, ts.t_ptr, ts.t_a, ts.t_b, W, margin
        )
        E = objective_terms(ts, w_s, w_l, hinge, mode=mode, **kw)
        E_ref = ref.lmnn_objective(
            ts, w_s, w_l, margin, learn_shared=learn_s, learn_label=learn_l, **kw
        )
        assert E == pytest.approx(E_ref, rel=1e-12)
        Gs, Gl = gradients(ts, w_s, w_l, S, mode=mode, **kw)
        for _ in range(3):
            us = rng.normal(size=F) if learn_s else np.zeros(F)
            ul = rng.normal(size=(nT, F)) if learn_l else np.zeros((nT, F))

            def f(t, us=us, ul=ul, w_s=w_s, w_l=w_l):
                return ref.lmnn_objective(
                    ts,
                    w_s + t * us,
                    w_l + t * ul,
                    margin,
                    learn_shared=learn_s,
                    learn_label=learn_l,
                    **kw,
                )

            fd = (f(h) - f(-h)) / (2 * h)
            an = Gs @ us + np.sum(Gl * ul)
            assert an == pytest.approx(fd, rel=1e-5, abs=1e-6)
        n_checked += 1
    assert n_checked >= 3


# -- special cases ---------------------------------------------------------------
def separated(rng, n_per=12):
    # Two tight clusters far apart on every feature; label 0 = cluster A,
    # label 1 = cluster B: every target is far nearer than every impostor.
    A = rng.random((n_per, 6)) * 0.01
    B = 1 + rng.random((n_per, 6)) * 0.01
    X = {"a": np.vstack([A, B])[:, :3], "b": np.vstack([A, B])[:, 3:]}
    Y = np.zeros((2 * n_per, 3), dtype=np.uint8)
    Y[:n_per, 0] = 1
    Y[n_per:, 1] = 1
    Y[:2, 2] = 1  # 2 images < k_pos + 1: no task, keeps the shared metric
    return X, Y


@pytest.mark.parametrize("method", ["mtlm-lmnn", "local-lmnn", "global-lmnn"])
def test_separated_labels_fit_with_zero_hinge(rng, method):
    X, Y = separated(rng)
    est = MTLMAnnotator(
        method,
        k_pos=3,
        k_neg=5,
        margin=0.1,
        label_sum="at_most",  # a label without a task: w_m = 0, shared metric only
        n_jobs=1,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.fit(X, Y)
    assert est.n_triplets_ > 0
    assert np.all(est.n_active_ == 0)
    assert np.all(np.isfinite(est.weights_shared_))
    assert np.all(np.isfinite(est.weights_label_))
    assert est.converged_
    if method == "mtlm-lmnn":
        assert_array_equal(est.weights_label_[2], 0)  # shared metric only
        assert est.weights_shared_.sum() == pytest.approx(1.0)
    if method == "local-lmnn":
        assert_allclose(est.weights_label_[2], 0.5)  # keeps w0 = 1/F
    pred = est.predict(X)
    assert pred.shape == Y.shape


def test_zero_hinge_objective_is_pull_only(rng):
    X, Y = separated(rng)
    bd = BaseDistances().fit(X)
    blocks = bd.check(X)
    ts = build_triplets(bd, blocks, Y, 3, 5)
    res = fit_lmnn(ts, margin=0.1, gamma_shared=0.0, gamma_label=0.0)
    assert res.converged and res.n_active.sum() == 0
    # With no active triplet the label terms only pull: w_m stays 0 and the
    # shared weights move to the feature with the smallest target distances.
    assert_array_equal(res.w_label, 0)
    pull = (ts.c / ts.n_target[:, None]).sum(axis=0)
    assert res.w_shared[np.argmin(pull)] > 1 / bd.n_base_


def test_annotator_attributes_and_convergence_warning(rng):
    _, _, Y = make_data(rng, ties=False)
    X = {"a": rng.random((60, 5)), "b": rng.random((60, 4))}
    est = MTLMAnnotator(
        "mtlm-lmnn",
        max_iter=2,
        k_pos=3,
        k_neg=4,
        margin=1.0,
        label_sum="at_most",
        random_state=0,
    )
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        est.fit(X, Y)
    assert est.n_iter_ == 2
    assert est.n_active_.shape == (Y.shape[1],)
    assert est.n_active_[-1] == 0
    assert_array_equal(est.weights_label_[-1], 0)


@pytest.mark.parametrize(
    "param, value, match",
    [
        ("k_pos", 0, "k_pos must be >= 1"),
        ("k_neg", 1.5, "k_neg must be an int"),
        ("mu", -1.0, "mu must be >= 0"),
        ("label_budget", 0.0, "label_budget must be > 0"),
        ("full_check_every", 0, "full_check_every must be >= 1"),
        ("max_iter", 0, "max_iter must be >= 1"),
        ("label_sum", "less", "label_sum must be one of"),
    ],
)
def test_bad_parameters(rng, param, value, match):
    X = {"a": rng.random((20, 3))}
    Y = (rng.random((20, 3)) < 0.5).astype(np.uint8)
    with pytest.raises(ValueError, match=match):
        MTLMAnnotator("mtlm-lmnn", **{param: value}).fit(X, Y)


@pytest.mark.parametrize("label_sum", ["at_most", "equal"])
def test_projection_keeps_the_scale(rng, label_sum):
    bd, blocks, Y, ts = triplets(rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = fit_lmnn(
            ts,
            margin=0.5,
            gamma_shared=0.0,
            gamma_label=0.0,
            label_budget=0.7,
            label_sum=label_sum,
            max_iter=80,
        )
    assert res.w_shared.min() >= 0
    assert res.w_shared.sum() == pytest.approx(1.0)
    assert res.w_label.min() >= 0
    if label_sum == "equal":
        assert_allclose(res.w_label.sum(axis=1), 0.7)
    else:
        assert np.all(res.w_label.sum(axis=1) <= 0.7 + 1e-12)
    assert res.n_iter > 1


def test_equal_budget_label_without_task_follows_shared(rng):
    _, _, Y = make_data(rng, ties=False)
    X = {"a": rng.random((60, 5)), "b": rng.random((60, 4))}
    est = MTLMAnnotator(
        "mtlm-lmnn",
        label_sum="equal",
        label_budget=0.5,
        max_iter=30,
        k_neg=5,
        margin=0.5,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, Y)
    assert_allclose(est.weights_label_[-1], 0.5 * est.weights_shared_)
    assert_allclose(est.weights_label_.sum(axis=1), 0.5)


def test_equal_label_sum_needs_a_budget():
    rng = np.random.default_rng(0)
    X = {"a": rng.random((20, 3))}
    Y = (rng.random((20, 3)) < 0.5).astype(np.uint8)
    est = MTLMAnnotator("mtlm-lmnn", label_budget=None, label_sum="equal")
    with pytest.raises(ValueError, match='label_sum="equal" needs a label_budget'):
        est.fit(X, Y)


@pytest.mark.parametrize("method", ["mtlm-lmnn", "global-lmnn"])
def test_constraints_default_is_label_for_lmnn_and_2pknn_is_used(rng, method):
    bd, blocks, Y = make_data(rng, ties=False)
    X = {"a": rng.random((60, 5)), "b": rng.random((60, 4))}
    fits = {
        c: MTLMAnnotator(method, constraints=c, max_iter=30, k=3).fit(X, Y)
        for c in (None, "label", "2pknn")
    }
    for attr in ("weights_shared_", "weights_label_", "objective_"):
        assert_array_equal(getattr(fits[None], attr), getattr(fits["label"], attr))
    assert fits["2pknn"].n_triplets_ != fits["label"].n_triplets_
    assert np.all(np.isfinite(fits["2pknn"].decision_function(X)))
    # the 2pknn triplets are the ones build_triplets makes with k, max_dissimilar
    est = fits["2pknn"]
    ts = build_triplets(
        est.base_distances_,
        est.base_distances_.check(X),
        Y,
        scheme="2pknn",
        k=3,
        max_dissimilar=50,
        global_task=method == "global-lmnn",
    )
    assert est.n_triplets_ == ts.n_triplets

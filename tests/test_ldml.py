"""LDML learner: K3 kernel, gradient, descent, edge cases (ALGORITHM.md 4.1-4.5)."""

import os
import warnings

import numpy as np
import pytest
from _simd import simd as using_simd
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning

from mtlm import _reference
from mtlm._annotator import MTLMAnnotator
from mtlm._constraints import Constraints
from mtlm._ldml import LDMLProblem, ldml_gradient, ldml_objective, solve_ldml
from mtlm._pairstore import PairStore
from mtlm.metrics import annotation_scores
from mtlm_fast import _ldml

LDML = ["mtlm-ldml", "local-ldml", "global-ldml"]
COREL = "/work/shared/data/corel5k/corel5k_color10.npz"
LEVELS = _ldml.simd_levels()
VECTOR_LEVELS = [lv for lv in LEVELS if lv != "scalar"]


def simd(level):
    return using_simd(_ldml, level)


def _random_pairs(rng, n_pairs=300, F=5, M=7, empty=(3,)):
    d = (rng.random((n_pairs, F), dtype=np.float32) * 2).astype(np.float32)
    counts = rng.integers(1, 80, M)
    counts[list(empty)] = 0
    ptr = np.zeros(M + 1, dtype=np.int32)
    np.cumsum(counts, out=ptr[1:])
    pair = rng.integers(0, n_pairs, ptr[-1]).astype(np.int32)
    sign = rng.choice(np.array([-1, 1], dtype=np.int8), ptr[-1])
    return d, ptr, pair, sign


def _kernel(d, ptr, pair, sign, W, bias, scale, n_threads):
    M, F = W.shape
    grad, loss, gs = np.empty((M, F + 1)), np.empty(M), np.empty(F)
    _ldml.ldml_grad(d, ptr, pair, sign, W, bias, scale, grad, loss, gs, n_threads)
    return grad, loss, gs


def test_kernel_matches_reference(rng):
    d, ptr, pair, sign = _random_pairs(rng)
    M, F = ptr.size - 1, d.shape[1]
    # Weights spread so that both branches of the stable forms are used.
    W = rng.random((M, F)) * 3
    bias = rng.random(M) * 10
    scale = rng.random(M) + 0.5
    ref = _reference.ldml_grad(d, ptr, pair, sign, W, bias, scale)
    out = {nt: _kernel(d, ptr, pair, sign, W, bias, scale, nt) for nt in (1, 2)}
    for got, want in zip(out[1], ref):
        assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    for a, b in zip(out[1], out[2]):
        assert_array_equal(a, b)  # bit-identical for any thread count
    # An empty label has zero loss and gradient.
    assert out[1][1][3] == 0 and not out[1][0][3].any()
    # The shared sum is the label-order sum of the label rows.
    assert_allclose(out[1][2], ref[0][:, 1:].sum(axis=0), rtol=1e-12)


def test_kernel_extreme_margins_are_finite():
    d = np.array([[1e4], [0.0]], dtype=np.float32)
    ptr = np.array([0, 2], dtype=np.int32)
    pair = np.array([0, 1], dtype=np.int32)
    sign = np.array([1, -1], dtype=np.int8)
    grad, loss, gs = _kernel(
        d, ptr, pair, sign, np.array([[10.0]]), np.array([1e3]), np.ones(1), 1
    )
    # softplus(1e5 - 1e3) ~ 99000 and softplus(1e3) = 1e3 without overflow.
    assert_allclose(loss[0], 1e5 - 1e3 + 1e3, rtol=1e-12)
    assert np.isfinite(grad).all() and np.isfinite(gs).all()


# F < 4 takes the scalar path at every level; 4 | F or not; F > 16 takes
# more than one register slab in pass 3.
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("F", [1, 3, 4, 5, 10, 16, 19, 37])
def test_every_simd_level_matches_reference(level, F, rng):
    # Label sizes around the 128-pair blocks and the 4/8-pair groups.
    d = (rng.random((400, F), dtype=np.float32) * 2).astype(np.float32)
    counts = np.array([0, 1, 3, 4, 7, 8, 9, 127, 128, 129, 300, 517])
    ptr = np.zeros(counts.size + 1, dtype=np.int32)
    np.cumsum(counts, out=ptr[1:])
    pair = rng.integers(0, d.shape[0], ptr[-1]).astype(np.int32)
    sign = rng.choice(np.array([-1, 1], dtype=np.int8), ptr[-1])
    M = counts.size
    W = rng.random((M, F)) * 12 / F
    bias = rng.random(M) * 10
    scale = rng.random(M) + 0.5
    ref = _reference.ldml_grad(d, ptr, pair, sign, W, bias, scale)
    with simd(level):
        out = {nt: _kernel(d, ptr, pair, sign, W, bias, scale, nt) for nt in (1, 2)}
    for got, want in zip(out[1], ref):
        assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    for a, b in zip(out[1], out[2]):
        assert_array_equal(a, b)
    assert out[1][1][0] == 0 and not out[1][0][0].any()


@pytest.mark.skipif(len(VECTOR_LEVELS) < 2, reason="one vector level only")
def test_vector_levels_give_the_same_bits(rng):
    d, ptr, pair, sign = _random_pairs(rng, F=11)
    M, F = ptr.size - 1, d.shape[1]
    W, bias, scale = rng.random((M, F)), rng.random(M) * 5, rng.random(M) + 0.5
    outs = []
    for level in VECTOR_LEVELS:
        with simd(level):
            outs.append(_kernel(d, ptr, pair, sign, W, bias, scale, 1))
    for other in outs[1:]:
        for a, b in zip(outs[0], other):
            assert_array_equal(a, b)


def test_simd_level_switch():
    assert _ldml.simd_level() == LEVELS[-1]  # the best one by default
    with pytest.raises(ValueError, match="not available"):
        _ldml._set_simd_level("avx512")


def _ulps(a, b):
    """Distance in representable doubles between non-negative a and b."""
    return np.abs(a.view(np.int64) - b.view(np.int64))


@pytest.mark.parametrize("level", LEVELS)
def test_exp_log1p_match_libm(level):
    rng = np.random.default_rng(0)
    tiny = np.finfo(np.float64).smallest_subnormal
    # exp on x <= 0: 0, subnormal and tiny arguments, the reduction's
    # boundaries (+-ln2/2), results that are subnormal (x < -708.4) or round
    # to 0 (x < -745.13), and far beyond.
    x = np.concatenate(
        [
            -rng.random(20000) * 750,
            -rng.random(5000) * 0.7,
            -np.logspace(-320, 5, 3000),
            [0.0, -0.0, -tiny, -1e-300, -1e-17, -np.log(2) / 2],
            [-np.log(2) * 1.5, -708.3, -708.4, -709.0, -744.0, -745.0, -745.13],
            [-745.1332191019411, -745.14, -746.0, -1e5, -np.finfo(float).max],
            [-np.inf],
        ]
    )
    with simd(level):
        e, _ = _ldml._exp_log1p(x)
    assert np.isfinite(e).all()
    assert _ulps(e, np.exp(x)).max() <= 1
    # log1p on [0, 1]: 0, subnormals, below and at 2^-53, the range split at
    # 1 + u = sqrt(2), and 1.
    s1 = np.sqrt(2) - 1
    u = np.concatenate(
        [
            rng.random(20000),
            np.logspace(-320, 0, 3000),
            [0.0, tiny, 1e-300, 2.0**-54, 2.0**-53, 2.0**-52, 1e-8, 1.0],
            [s1, np.nextafter(s1, 0), np.nextafter(s1, 1)],
        ]
    )
    with simd(level):
        _, lp = _ldml._exp_log1p(u)
    assert np.isfinite(lp).all()
    assert _ulps(lp, np.log1p(u)).max() <= 2


@pytest.mark.parametrize("level", LEVELS)
def test_kernel_extreme_margins_every_level(level):
    # F = 4 so that the vector levels run: |z| from 0 to 1e5, on both sides.
    F = 4
    d = np.zeros((6, F), dtype=np.float32)
    d[:, 0] = [1e4, 0.0, 1.0, 2.0, 800.0, 1e-30]
    ptr = np.array([0, 12], dtype=np.int32)
    pair = np.tile(np.arange(6, dtype=np.int32), 2)
    sign = np.repeat(np.array([1, -1], dtype=np.int8), 6)
    W = np.zeros((1, F))
    W[0, 0] = 1.0
    bias = np.array([2.0])
    scale = np.ones(1)
    ref = _reference.ldml_grad(d, ptr, pair, sign, W, bias, scale)
    with simd(level):
        got = _kernel(d, ptr, pair, sign, W, bias, scale, 1)
    for g, r in zip(got, ref):
        assert np.isfinite(g).all()
        assert_allclose(g, r, rtol=1e-13, atol=1e-300)


def _problem(rng, normalize_loss=False, M=6, F=4):
    d, ptr, pair, sign = _random_pairs(rng, n_pairs=120, F=F, M=M, empty=(2,))
    n = d.shape[0]
    store = PairStore(
        q=np.arange(n, dtype=np.int32), p=np.arange(n, dtype=np.int32), d=d
    )
    active = np.diff(ptr) > 0
    cons = Constraints(store=store, ptr=ptr, pair=pair, sign=sign, active=active)
    return LDMLProblem(cons, normalize_loss=normalize_loss)


@pytest.mark.parametrize("normalize_loss", [False, True])
@pytest.mark.parametrize("regularize_bias", [True, False])
def test_gradient_matches_finite_differences(normalize_loss, regularize_bias):
    rng = np.random.default_rng(0)
    prob = _problem(rng, normalize_loss)
    Ta, F = prob.tasks.size, prob.n_base
    ws = rng.random(F) * 0.5 + 0.1
    wl = rng.random((Ta, F)) * 0.3 + 0.05
    b = rng.random(Ta) + 0.5
    kw = dict(gamma_shared=0.7, gamma_label=1.3, regularize_bias=regularize_bias)
    _, Gs, Gl, Gb = ldml_gradient(prob, ws, wl, b, **kw)
    x0 = np.concatenate([ws, wl.ravel(), b])

    def E(x):
        return ldml_objective(
            prob, x[:F], x[F : F + Ta * F].reshape(Ta, F), x[F + Ta * F :], **kw
        )

    h = 1e-5
    fd = np.empty_like(x0)
    for i in range(x0.size):
        e = np.zeros_like(x0)
        e[i] = h
        fd[i] = (E(x0 + e) - E(x0 - e)) / (2 * h)
    G = np.concatenate([Gs, Gl.ravel(), Gb])
    assert np.linalg.norm(G - fd) / np.linalg.norm(G) < 1e-5
    assert np.abs(Gb).max() > 0  # the bias entries are part of the check


def _synthetic(rng, n=120, M=6):
    """Colour-like histograms whose labels depend on the features."""
    blocks = {"a": rng.random((n, 8)), "b": rng.random((n, 6)), "c": rng.random((n, 4))}
    Y = np.zeros((n, M), dtype=np.uint8)
    Y[np.arange(n), blocks["a"][:, :M].argmax(axis=1)] = 1
    Y[np.arange(n), (blocks["b"][:, :3].argmax(axis=1) + 3) % M] = 1
    return blocks, Y


@pytest.mark.parametrize("method", LDML)
@pytest.mark.parametrize("step_size", ["block", "single"])
def test_objective_never_increases(method, step_size):
    rng = np.random.default_rng(0)
    X, Y = _synthetic(rng)
    est = MTLMAnnotator(
        method, k=2, max_iter=60, step_size=step_size, n_tune=50, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, Y)
    obj = est.objective_
    assert obj.size > 5
    assert np.all(np.diff(obj) < 0)
    assert obj[-1] < 0.99 * obj[0]
    assert np.all(est.weights_shared_ >= 0) and np.all(est.weights_label_ >= 0)
    assert np.all(est.bias_ >= 0)
    if method == "local-ldml":
        assert not est.weights_shared_.any()
    if method == "global-ldml":
        assert not est.weights_label_.any()
    if method == "mtlm-ldml":
        assert est.weights_label_.any() and est.weights_shared_.any()
    scores = est.decision_function(X)
    assert np.isfinite(scores).all()


@pytest.fixture
def corel_subset():
    if not os.path.exists(COREL):
        pytest.skip("Corel5K colour features not available")
    z = np.load(COREL)
    names = [str(f) for f in z["feature_names"]][:4]
    rows = np.arange(400)
    X = {f: z[f"X_train_{f}"][rows] for f in names}
    return X, z["Y_train"][rows]


def test_objective_never_increases_on_corel_subset(corel_subset):
    X, Y = corel_subset
    est = MTLMAnnotator("mtlm-ldml", max_iter=40, n_tune=100, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, Y)
    assert np.all(np.diff(est.objective_) < 0)
    assert np.isfinite(est.weights_label_).all()


def test_max_iter_warns():
    rng = np.random.default_rng(1)
    X, Y = _synthetic(rng)
    est = MTLMAnnotator("mtlm-ldml", k=2, max_iter=2, n_tune=30)
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        est.fit(X, Y)
    assert est.n_iter_ == 2


def test_tol_stops_before_max_iter():
    rng = np.random.default_rng(1)
    X, Y = _synthetic(rng)
    est = MTLMAnnotator("global-ldml", k=2, max_iter=5000, tol=1e-3, n_tune=30)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est.fit(X, Y)
    assert est.n_iter_ < 5000
    o = est.objective_
    assert (o[-2] - o[-1]) / o[-2] < 1e-3


@pytest.mark.parametrize("method", LDML)
@pytest.mark.parametrize("constraints", ["2pknn", "label"])
def test_rare_empty_labels_and_unlabelled_image(method, constraints):
    rng = np.random.default_rng(2)
    X, Y = _synthetic(rng, n=80, M=6)
    Y = np.concatenate([Y, np.zeros((80, 2), dtype=np.uint8)], axis=1)
    Y[[5, 9], 6] = 1  # label 6: 2 images (< k + 1 = 4)
    # label 7: no image at all
    Y[11] = 0  # image 11: no label
    est = MTLMAnnotator(
        method, k=3, max_iter=20, constraints=constraints, n_tune=40, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, Y)
    for a in (est.weights_shared_, est.weights_label_, est.bias_, est.objective_):
        assert np.isfinite(a).all()
    F = est.base_distances_.n_base_
    if method == "mtlm-ldml":
        # Not a task: shared metric only.
        assert not est.weights_label_[7].any() and est.bias_[7] == 0
        if constraints == "2pknn":
            assert not est.weights_label_[6].any()
    if method == "local-ldml":
        assert_allclose(est.weights_label_[7], 1.0 / F)  # equal weights
    scores = est.decision_function(X)
    assert np.isfinite(scores).all()
    assert est.predict(X).sum(axis=1).tolist() == [5] * 80


def test_solver_without_tasks():
    rng = np.random.default_rng(0)
    prob = _problem(rng, M=3)
    prob.tasks = prob.tasks[:0]
    ws, wl, b, n_iter, trace = solve_ldml(prob)
    assert n_iter == 0 and wl.shape == (0, prob.n_base) and trace.size == 0


@pytest.mark.parametrize(
    "param, value, match",
    [
        ("gamma_shared", -1.0, "gamma_shared must be >= 0"),
        ("gamma_label", "x", "gamma_label must be a real number"),
        ("max_iter", 0, "max_iter must be >= 1"),
        ("tol", -1e-3, "tol must be >= 0"),
        ("constraints", "triplets", "constraints must be one of"),
        ("overlap", "none", "overlap must be one of"),
        ("k_pos", 0, "k_pos must be >= 1"),
        ("max_dissimilar", 0, "max_dissimilar must be >= 1"),
        ("k_neg", 1.5, "k_neg must be an int"),
        ("step_size", "adam", "step_size must be one of"),
        ("normalize_loss", 1, "normalize_loss must be a bool"),
        ("regularize_bias", "yes", "regularize_bias must be a bool"),
    ],
)
def test_parameter_validation(param, value, match):
    rng = np.random.default_rng(0)
    X, Y = _synthetic(rng, n=30)
    with pytest.raises(ValueError, match=match):
        MTLMAnnotator("mtlm-ldml", **{param: value}).fit(X, Y)


def test_save_load_round_trip(tmp_path):
    from mtlm import load_model

    rng = np.random.default_rng(3)
    X, Y = _synthetic(rng)
    est = MTLMAnnotator("mtlm-ldml", k=2, max_iter=15, gamma_label=30.0, n_tune=40)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, Y)
    back = load_model(est.save(tmp_path / "m.npz"))
    assert back.get_params()["gamma_label"] == 30.0
    assert_array_equal(back.weights_label_, est.weights_label_)
    assert_array_equal(back.decision_function(X), est.decision_function(X))


def test_vote_scale_label_equalises_label_scales():
    # W_m = c_m w: under vote_scale="label" every label votes with mean(c) w,
    # and the pools (rankings) do not depend on c_m.
    rng = np.random.default_rng(4)
    X, Y = _synthetic(rng)
    est = MTLMAnnotator(
        "mtlm-ldml", k=2, max_iter=5, tau=0.3, n_tune=30, vote_scale="label"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, Y)
    M = Y.shape[1]
    w = est.weights_shared_ + est.weights_label_[0]
    c = np.linspace(0.5, 4.0, M)
    est.weights_shared_ = np.zeros_like(w)
    est.weights_label_ = c[:, None] * w
    scaled = est.decision_function(X)
    est.weights_label_ = np.tile(c.mean() * w, (M, 1))
    assert_allclose(scaled, est.decision_function(X), rtol=1e-9, atol=1e-12)
    est.weights_label_ = c[:, None] * w
    est.set_params(vote_scale="none")
    assert not np.allclose(est.decision_function(X), scaled)
    # a label whose metric is 0 leaves the others' temperature as it was
    est.set_params(vote_scale="label")
    zero = c.copy()
    zero[-1] = 0.0
    est.weights_label_ = zero[:, None] * w
    got = est.decision_function(X)
    est.weights_label_ = np.tile(zero[:-1].mean() * w, (M, 1))
    est.weights_label_[-1] = 0.0
    assert_allclose(got, est.decision_function(X), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", ["jec", "global-ldml"])
def test_vote_scale_has_no_effect_with_one_shared_metric(method):
    rng = np.random.default_rng(5)
    X, Y = _synthetic(rng)
    est = MTLMAnnotator(method, k=2, max_iter=5, tau=0.3, vote_scale="label")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, Y)
    scaled = est.decision_function(X)
    est.set_params(vote_scale="none")
    assert_array_equal(est.decision_function(X), scaled)


def test_a_metric_regularised_to_zero_warns_and_votes_finitely():
    # label 0 on every image, gamma_label=30 pulls the global task's bias and
    # the projection leaves every weight at exactly 0: every distance is 0.
    # tau="auto" scaled its grid by sum(w) = 0 and gave NaN scores.
    rng = np.random.default_rng(0)
    X = {"a": rng.random((30, 3)), "b": rng.random((30, 2))}
    Y = np.ones((30, 3), np.uint8)
    Y[:, 1:] = rng.random((30, 2)) < 0.5
    est = MTLMAnnotator("global-ldml", k=2, max_iter=50, gamma_label=30.0, n_tune=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.warns(RuntimeWarning, match="LDML drove the shared metric to zero"):
            est.fit(X, Y)
    assert not est.weights_shared_.any()
    assert np.isfinite(est.tau_) and est.tau_ > 0
    scores = est.decision_function(X)
    # all distances 0: every pool image votes alike, whatever tau
    est.set_params(tau=123.0)
    est._choose_tau(1)
    assert_allclose(est.decision_function(X), scores, rtol=1e-12)
    assert np.all(np.isfinite(scores))


@pytest.mark.parametrize("method", ["mtlm-ldml", "local-ldml", "mtlm-lmnn"])
def test_auto_tau_survives_all_zero_label_metrics(method):
    rng = np.random.default_rng(6)
    X, Y = _synthetic(rng)
    est = MTLMAnnotator(method, k=2, max_iter=5, n_tune=30, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, Y)
    est.weights_shared_ = np.zeros_like(est.weights_shared_)
    est.weights_label_ = np.zeros_like(est.weights_label_)
    est._choose_tau(1)
    assert np.isfinite(est.tau_) and est.tau_ > 0
    assert np.all(np.isfinite(est.decision_function(X)))


@pytest.mark.parametrize("method", ["mtlm-ldml", "global-ldml", "mtlm-lmnn"])
def test_held_out_tau_is_the_best_relative_tau_of_a_fit_without_the_held_out(method):
    # Replayed with the public API: with normalize="none" the base distances
    # do not depend on the images, so a plain fit on the other images learns
    # exactly the metric the tau choice learns internally.
    rng = np.random.default_rng(7)
    X, Y = _synthetic(rng, n=100)
    params = dict(k=2, max_iter=30, normalize="none", n_tune=15, random_state=3)
    params["tau_select"] = "held-out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = MTLMAnnotator(method, **params).fit(X, Y)
        n = Y.shape[0]
        hold = np.sort(np.random.RandomState(3).choice(n, 15, replace=False))
        rest = np.setdiff1d(np.arange(n), hold)
        sub = MTLMAnnotator(method, tau=1.0, **params)
        sub.fit({f: b[rest] for f, b in X.items()}, Y[rest])
    relative = np.geomspace(0.005, 2.0, 16)
    # the grid's scale: the mean learned distance of training pairs, with the
    # base-distance means of the full training set
    means = est.base_distances_.base_means_
    sub_scale = ((sub.weights_shared_ + sub.weights_label_) @ means).mean()
    if not sub.weights_label_.any():
        sub_scale = sub.weights_shared_ @ means
    f1 = []
    for t in sub_scale * relative:
        sub.tau_ = t  # the fitted temperature (set_params changes only tau)
        pred = sub.predict({f: b[hold] for f, b in X.items()})
        f1.append(annotation_scores(Y[hold], pred)["F1"])
    assert_allclose(est.tau_scores_, f1, rtol=0, atol=1e-12)
    W = est.weights_shared_[None, :] + est.weights_label_
    scale = (W @ means).mean() if est.weights_label_.any() else W[0] @ means
    assert est.tau_ == pytest.approx(scale * relative[int(np.argmax(f1))], rel=1e-12)


def test_held_out_tau_falls_back_to_leave_self_out_on_tiny_data():
    rng = np.random.default_rng(8)
    X, Y = _synthetic(rng, n=4, M=2)
    Y[:, 0] = 1
    kw = dict(k=1, max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = MTLMAnnotator("mtlm-ldml", tau_select="held-out", **kw)
        a.fit(X, Y)  # 4 // 5 = 0 images to hold out
        b = MTLMAnnotator("mtlm-ldml", tau_select="leave-self-out", **kw).fit(X, Y)
    assert a.tau_ == b.tau_ and np.isfinite(a.tau_)
    assert_array_equal(a.tau_scores_, b.tau_scores_)


def test_jec_ignores_tau_select():
    rng = np.random.default_rng(9)
    X, Y = _synthetic(rng)
    a = MTLMAnnotator("jec", random_state=0, n_tune=40).fit(X, Y)
    b = MTLMAnnotator("jec", random_state=0, n_tune=40, tau_select="held-out")
    b.fit(X, Y)
    assert a.tau_ == b.tau_
    assert_array_equal(a.tau_scores_, b.tau_scores_)

"""The Dask path gives the local result exactly, survives a dead worker, fails."""

import os
import signal
import socket
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.exceptions import ConvergenceWarning

distributed = pytest.importorskip("distributed")

from mtlm import MTLMAnnotator  # noqa: E402
from mtlm._dask import (  # noqa: E402
    dask_client,
    dask_group_neighbours,
    dask_pool_scores,
    resolve_client,
)
from mtlm._distances import BaseDistances  # noqa: E402
from mtlm._neighbourhoods import LabelGroups, group_neighbours, pool_scores  # noqa: E402
from mtlm._npyfolder import load_npy_folder, save_npy_folder  # noqa: E402

COREL = "/work/shared/data/corel5k/corel5k_color10.npz"


@pytest.fixture(scope="module")
def client():
    # Two worker processes with one thread each, on loopback only.
    with dask_client("local", n_workers=2, threads_per_worker=1, timeout=60) as c:
        c.wait_for_workers(2, timeout=60)
        yield c


def _synthetic(seed=0, n=300, nq=120, dims=(6, 10, 4), M=9, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = {f"f{i}": rng.random((n, d)).astype(dtype) for i, d in enumerate(dims)}
    Xq = {f"f{i}": rng.random((nq, d)).astype(dtype) for i, d in enumerate(dims)}
    Y = (rng.random((n, M)) < 0.2).astype(np.uint8)
    Y[:, 0] = 0  # an empty label
    Y[:2, 1], Y[2:, 1] = 1, 0  # a label with fewer than k images
    return X, Xq, Y


def _assert_same(got, ref):
    for g, r in zip(got, ref, strict=True):
        assert g.dtype == r.dtype
        assert_array_equal(g, r)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("metrics", ["l1", "hellinger"])
@pytest.mark.parametrize("block_rows", [7, None])
def test_group_neighbours_matches_local(client, dtype, metrics, block_rows):
    X, _, Y = _synthetic(dtype=dtype)
    bd = BaseDistances(metrics=metrics).fit(X)
    P = bd.check(X)
    groups = LabelGroups.from_labels(Y)
    W = np.random.default_rng(1).random((Y.shape[1], bd.n_base_))
    excl = np.arange(Y.shape[0])
    ref = group_neighbours(bd, P, P, W, groups, 3, exclude=excl)
    done = []
    got = dask_group_neighbours(
        bd,
        P,
        P,
        W,
        groups,
        3,
        exclude=excl,
        client=client,
        block_rows=block_rows,
        progress=done.append,
    )
    _assert_same(got, ref)
    assert sum(done) == Y.shape[0]


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("raw", [False, True])
def test_pool_scores_matches_local(client, shared, raw):
    X, Xq, Y = _synthetic(seed=3)
    bd = BaseDistances().fit(X)
    P, Pq = bd.check(X), bd.check(Xq)
    groups = LabelGroups.from_labels(Y)
    rng = np.random.default_rng(4)
    W_pool = rng.random((1 if shared else Y.shape[1], bd.n_base_))
    W_vote = rng.random(W_pool.shape)
    taus = [0.05, 0.3, 2.0]
    ref = pool_scores(bd, Pq, P, W_pool, W_vote, groups, Y, 4, taus, raw=raw)
    got = dask_pool_scores(
        bd,
        Pq,
        P,
        W_pool,
        W_vote,
        groups,
        Y,
        4,
        taus,
        raw=raw,
        client=client,
        block_rows=13,
    )
    assert_array_equal(got, ref)


def test_diagonal_mode_matches_local(client):
    rng = np.random.default_rng(5)
    X, Y = rng.random((200, 7)), (rng.random((200, 5)) < 0.3).astype(np.uint8)
    bd = BaseDistances().fit(X)
    P = bd.check(X)
    groups = LabelGroups.from_labels(Y)
    W = rng.random((1, 7))
    ref = group_neighbours(bd, P, P, W, groups, 2, exclude=np.arange(200))
    got = dask_group_neighbours(
        bd, P, P, W, groups, 2, exclude=np.arange(200), client=client
    )
    _assert_same(got, ref)


def _corel_subset(n_train=600, n_test=150, n_blocks=4):
    if not os.path.exists(COREL):
        pytest.skip(f"{COREL} is absent")
    with np.load(COREL, allow_pickle=False) as z:
        names = [str(f) for f in z["feature_names"][:n_blocks]]
        X = {f: z[f"X_train_{f}"][: n_train + n_test] for f in names}
        Y = z["Y_train"][: n_train + n_test].astype(np.uint8)
    Xtr = {f: x[:n_train] for f, x in X.items()}
    Xte = {f: x[n_train:] for f, x in X.items()}
    return Xtr, Y[:n_train], Xte, Y[n_train:]


def test_corel5k_fit_and_predict_match_local(client):
    Xtr, Ytr, Xte, _ = _corel_subset()
    est = MTLMAnnotator(k=3, n_tune=200, random_state=0).fit(Xtr, Ytr)
    W = est._metric_weights()
    bd = est.base_distances_
    args = (
        bd,
        bd.check(Xte),
        est._train_blocks,
        W,
        W,
        est._groups,
        est.Y_train_,
        est.k,
        [est.tau_],
    )
    # prediction
    got = dask_pool_scores(*args, client=client)[0]
    assert_array_equal(got, est.decision_function(Xte))
    # the leave-self-out votes that choose tau
    sample = np.arange(0, Ytr.shape[0], 3)
    Pq = [b[sample] for b in est._train_blocks]
    tune = (est.base_distances_, Pq, *args[2:8], est.tau_grid_)
    assert_array_equal(
        dask_pool_scores(*tune, exclude=sample, client=client),
        pool_scores(*tune, exclude=sample),
    )
    # training neighbourhoods of a per-label metric
    Wl = np.random.default_rng(0).random((Ytr.shape[1], est.base_distances_.n_base_))
    nb = (est.base_distances_, est._train_blocks, est._train_blocks, Wl, est._groups, 5)
    excl = np.arange(Ytr.shape[0])
    _assert_same(
        dask_group_neighbours(*nb, exclude=excl, client=client),
        group_neighbours(*nb, exclude=excl),
    )


@pytest.mark.parametrize("method", ["jec", "mtlm-ldml"])
def test_estimator_backend_dask_is_bitwise_local(client, method):
    # backend="dask" routes the training neighbourhoods (2pknn constraints),
    # the tau votes and prediction through the cluster: same bits as local.
    Xtr, Ytr, Xte, _ = _corel_subset(n_train=300, n_test=40)
    params = dict(k=3, n_tune=100, max_iter=15, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        local = MTLMAnnotator(method, **params).fit(Xtr, Ytr)
        dist = MTLMAnnotator(method, backend="dask", **params).fit(Xtr, Ytr)
    assert_array_equal(dist.weights_label_, local.weights_label_)
    assert dist.tau_ == local.tau_
    assert_array_equal(dist.decision_function(Xte), local.decision_function(Xte))


def test_memory_mapped_training_data(client, tmp_path):
    X, Xq, Y = _synthetic(seed=7, dtype=np.float32)
    save_npy_folder(tmp_path / "train", X, Y)
    Xm, Ym = load_npy_folder(tmp_path / "train")
    assert list(Xm) == list(X)
    assert all(isinstance(x, np.memmap) for x in Xm.values())
    bd = BaseDistances().fit(Xm)
    Pm = bd.check(Xm)
    assert all(np.shares_memory(p, x) for p, x in zip(Pm, Xm.values(), strict=True))
    P, Pq = bd.check(X), bd.check(Xq)
    groups = LabelGroups.from_labels(Ym)
    W = np.ones((1, bd.n_base_))
    ref = pool_scores(bd, Pq, P, W, W, groups, Y, 3, [0.5])
    assert_array_equal(pool_scores(bd, Pq, Pm, W, W, groups, Ym, 3, [0.5]), ref)
    assert_array_equal(
        dask_pool_scores(bd, Pq, Pm, W, W, groups, Ym, 3, [0.5], client=client), ref
    )


def test_npy_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        load_npy_folder(tmp_path / "nope")
    with pytest.raises(ValueError, match="no feature block"):
        load_npy_folder(tmp_path)
    np.save(tmp_path / "a.npy", np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"lacks \['Y.npy'\]"):
        load_npy_folder(tmp_path)
    np.save(tmp_path / "Y.npy", np.ones((3, 1), np.uint8))
    (tmp_path / "features.txt").write_text("a\na\n")
    with pytest.raises(ValueError, match=r"block\(s\) \['a'\] listed more than once"):
        load_npy_folder(tmp_path)


def test_bad_client_and_arguments(client):
    X, _, Y = _synthetic()
    bd = BaseDistances().fit(X)
    P = bd.check(X)
    groups = LabelGroups.from_labels(Y)
    W = np.ones((1, bd.n_base_))
    with pytest.raises(TypeError, match="client must be a distributed.Client"):
        dask_group_neighbours(bd, P, P, W, groups, 3, client=42)
    with pytest.raises(ValueError, match="block_rows"):
        dask_group_neighbours(bd, P, P, W, groups, 3, client=client, block_rows=0)
    with pytest.raises(ValueError, match="scheduler must be"):
        with dask_client(""):
            pass


def _closed_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def test_unreachable_scheduler_fails_fast():
    address = f"tcp://127.0.0.1:{_closed_port()}"
    t0 = time.perf_counter()
    with pytest.raises(ConnectionError, match="cannot reach the Dask scheduler"):
        with dask_client(address, timeout=2):
            pass
    assert time.perf_counter() - t0 < 10


@pytest.mark.parametrize("address", ["bogus", "tcp://bogus", "localhost:x"])
def test_a_malformed_address_fails_at_once_without_a_stray_client(address, tmp_path):
    # a Client whose constructor fails leaves a finaliser that blocks 20 s at
    # exit and prints a traceback: the address is checked first, in a child
    # interpreter so that its exit is part of the test
    code = (
        "import mtlm\n"
        "try:\n"
        f"    mtlm.dask_client({address!r}).__enter__()\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
    )
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,  # not the repository root, whose mtlm_fast/ has no builds
    )
    assert time.perf_counter() - t0 < 15
    assert "is not a Dask scheduler address" in out.stdout
    assert out.returncode == 0 and "Traceback" not in out.stderr


def test_client_by_address_or_current(client):
    X, _, Y = _synthetic(seed=9)
    bd = BaseDistances().fit(X)
    P = bd.check(X)
    groups = LabelGroups.from_labels(Y)
    W = np.ones((1, bd.n_base_))
    ref = group_neighbours(bd, P, P, W, groups, 2)
    # an address of the current client's scheduler resolves to that client
    assert resolve_client(client.scheduler.address) is client
    assert resolve_client(client.scheduler.address.split("://")[1]) is client
    _assert_same(
        dask_group_neighbours(bd, P, P, W, groups, 2, client=client.scheduler.address),
        ref,
    )
    _assert_same(dask_group_neighbours(bd, P, P, W, groups, 2), ref)  # current client
    t0 = time.perf_counter()
    with pytest.raises(ConnectionError, match="cannot reach the Dask scheduler"):
        resolve_client(f"127.0.0.1:{_closed_port()}", timeout=2)
    assert time.perf_counter() - t0 < 10


def test_missing_dask_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import now fails
    with pytest.raises(ImportError, match=r"pip install 'mtlm\[dask\]'"):
        with dask_client("local"):
            pass
    X, _, Y = _synthetic()
    bd = BaseDistances().fit(X)
    P = bd.check(X)
    with pytest.raises(ImportError, match=r"mtlm\[dask\]"):
        dask_group_neighbours(bd, P, P, np.ones((1, 3)), LabelGroups.from_labels(Y), 2)


def _holds_training_data(dask_worker):
    return any(str(key).startswith("BaseDistances-") for key in dask_worker.data)


def test_worker_killed_during_neighbourhood_selection(client):
    # Last in the module: it kills a worker (its nanny may start a new one).
    rng = np.random.default_rng(11)
    n = 2500
    X = {f"f{i}": rng.random((n, d)) for i, d in enumerate((40, 60, 30))}
    Y = (rng.random((n, 12)) < 0.15).astype(np.uint8)
    bd = BaseDistances().fit(X)
    P = bd.check(X)
    groups = LabelGroups.from_labels(Y)
    W = rng.random((12, 3))
    excl = np.arange(n)
    ref = group_neighbours(bd, P, P, W, groups, 4, exclude=excl)

    pids = client.run(os.getpid)
    state = {"victim": None, "rows_after": 0}

    def progress(rows):
        if state["victim"] is not None:
            state["rows_after"] += rows
            return
        # After the first block: kill outright a worker that holds the scattered
        # training data (often the only one, once Dask's memory manager has
        # dropped the other replicas), so its running and queued blocks are lost.
        holders = [w for w, yes in client.run(_holds_training_data).items() if yes]
        state["victim"] = pids[sorted(holders or pids)[0]]
        os.kill(state["victim"], signal.SIGKILL)

    got = dask_group_neighbours(
        bd,
        P,
        P,
        W,
        groups,
        4,
        exclude=excl,
        client=client,
        block_rows=25,
        progress=progress,
    )
    _assert_same(got, ref)
    assert state["victim"] is not None and state["rows_after"] > 0
    assert state["victim"] not in client.run(os.getpid).values()

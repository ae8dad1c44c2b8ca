"""The two O(n^2) steps on a dask.distributed cluster.

:func:`dask_group_neighbours` and :func:`dask_pool_scores` take the arguments
of :func:`mtlm._neighbourhoods.group_neighbours` and
:func:`mtlm._neighbourhoods.pool_scores` plus a ``client``. The fitted base
distances, the prepared training blocks, the label groups (and the training
labels) are scattered to every worker once per call; the query rows are cut
into blocks and each block is one task that runs the local function on its
slice, so the same Cython kernels compute every row. Each task returns only
its small result (the k nearest of every group, or the scores), which is
written into the output at the block's rows: the output is bit-identical to
the local path, whatever the order in which tasks finish.

Query slices travel inside the task itself (not as scattered data), so a
worker that dies mid-run loses nothing the scheduler cannot recompute: its
blocks are simply run again elsewhere.

Dask is an optional dependency (``pip install 'mtlm[dask]'``); this module
imports it only when a function is called.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import uuid

import numpy as np

from mtlm._neighbourhoods import group_neighbours, neighbour_arrays, pool_scores
from mtlm._validation import check_float, check_int

__all__ = ["dask_client", "dask_group_neighbours", "dask_pool_scores", "resolve_client"]

logger = logging.getLogger(__name__)

_EXTRA_HINT = "install the extra with: pip install 'mtlm[dask]'"

#: Query features shipped with one task (the bytes of its rows, all blocks).
_TASK_BYTES = 8 * 2**20
#: At least this many tasks per worker thread, so that work balances.
_TASKS_PER_SLOT = 4
#: Tasks submitted ahead per worker thread (the rest wait in this process).
_IN_FLIGHT_PER_SLOT = 2


def _import_distributed():
    """Return the ``distributed`` module, or raise an ImportError naming the extra."""
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            "the Dask backend needs dask.distributed, which is not installed; "
            f"{_EXTRA_HINT}"
        ) from exc
    return distributed


#: Clients opened by :func:`resolve_client` from an address, by address.
_CLIENTS = {}


def resolve_client(client, *, timeout=10.0):
    """The client to use: a given one, one on an address, or the current one.

    Parameters
    ----------
    client : distributed.Client, str or None
        A client; a scheduler address (a client on it is opened once and
        reused); or None for the current client (:func:`distributed.get_client`).
    timeout : float, default=10.0
        Seconds to wait for a scheduler given by its address.

    Returns
    -------
    client : distributed.Client
    """
    distributed = _import_distributed()
    if client is None:
        try:
            return distributed.get_client()
        except ValueError as exc:
            raise ValueError(
                "no Dask client: pass one (a distributed.Client or a scheduler "
                "address) or open one first, e.g. with mtlm.dask_client()."
            ) from exc
    if isinstance(client, str):
        # A running current client on that scheduler is used as is: a second
        # client on the same scheduler gains nothing (and once left a
        # submission waiting forever in CI).
        current = _current_client(distributed)
        if current is not None and _same_address(current, client):
            return current
        known = _CLIENTS.get(client)
        if known is None or known.status != "running":
            _CLIENTS[client] = known = _connect(distributed, client, timeout)
        return known
    if not isinstance(client, distributed.Client):
        raise TypeError(
            "client must be a distributed.Client, a scheduler address or None, "
            f"got {type(client).__name__}."
        )
    return client


def _current_client(distributed):
    try:
        current = distributed.get_client()
    except ValueError:
        return None
    return current if current.status == "running" else None


def _same_address(client, address):
    mine = client.scheduler.address
    return address == mine or (
        "://" not in address and mine.split("://", 1)[-1] == address
    )


def _connect(distributed, address, timeout):
    from distributed.comm.addressing import get_address_host_port, parse_address

    try:
        scheme, _ = parse_address(address)
        if scheme != "inproc":  # the network schemes need a host and a port
            get_address_host_port(address)
    except ValueError as exc:
        # checked before Client(): a client that fails in its constructor
        # leaves a finaliser that waits 20 s at exit and prints a traceback
        raise ValueError(
            f"{address!r} is not a Dask scheduler address ({exc}); give "
            "HOST:PORT, e.g. 'tcp://127.0.0.1:8786', or 'local'."
        ) from None
    try:
        return distributed.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:  # distributed raises OSError on timeout
        raise ConnectionError(
            f"cannot reach the Dask scheduler at {address!r} within {timeout:g} s "
            f"({exc}); check the address and that 'dask scheduler' is running "
            "there, or use 'local' to start workers on this machine."
        ) from exc


# -- opening a client ------------------------------------------------------------
@contextlib.contextmanager
def dask_client(
    scheduler="local",
    *,
    n_workers=None,
    threads_per_worker=1,
    timeout=10.0,
    memory_limit="auto",
):
    """Open a Dask client on a scheduler address, or on a new local cluster.

    Parameters
    ----------
    scheduler : str, default="local"
        ``"local"``: start a :class:`distributed.LocalCluster` of worker
        processes on this machine (listening on 127.0.0.1 only), closed when
        the block exits. Otherwise the address of a running scheduler
        (``"tcp://host:8786"`` or ``"host:8786"``), which is left running.
    n_workers : int or None, default=None
        Worker processes of a local cluster (None: Dask's choice, about one
        per core divided by ``threads_per_worker``). Ignored for an address.
    threads_per_worker : int, default=1
        Threads of each local worker. Ignored for an address.
    timeout : float, default=10.0
        Seconds to wait for the scheduler before giving up.
    memory_limit : str, float or int, default="auto"
        Memory limit of each local worker (see :class:`distributed.LocalCluster`).

    Yields
    ------
    client : distributed.Client

    Raises
    ------
    ImportError
        If dask.distributed is not installed (the message names the extra).
    ConnectionError
        If the scheduler cannot be reached within ``timeout`` seconds.
    """
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise ValueError(
            f"scheduler must be 'local' or a scheduler address such as "
            f"'tcp://127.0.0.1:8786', got {scheduler!r}."
        )
    timeout = check_float(timeout, "timeout", low=0.0, low_open=True)
    distributed = _import_distributed()
    if scheduler == "local":
        if n_workers is not None:
            check_int(n_workers, "n_workers", low=1)
        check_int(threads_per_worker, "threads_per_worker", low=1)
        with (
            distributed.LocalCluster(
                n_workers=n_workers,
                threads_per_worker=threads_per_worker,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                memory_limit=memory_limit,
                silence_logs=logging.WARNING,
            ) as cluster,
            distributed.Client(cluster, timeout=timeout) as client,
        ):
            logger.info(
                "local Dask cluster: %d worker process(es) at %s",
                len(cluster.workers),
                cluster.scheduler_address,
            )
            try:
                yield client
            finally:
                _forget_clients(cluster.scheduler_address)
        return
    with _connect(distributed, scheduler, timeout) as client:
        try:
            yield client
        finally:
            _forget_clients(client.scheduler.address)


def _forget_clients(address):
    """Close the clients :func:`resolve_client` opened on a scheduler going away."""
    for key, known in list(_CLIENTS.items()):
        if known.scheduler is not None and known.scheduler.address == address:
            del _CLIENTS[key]
            known.close()


# -- sharding --------------------------------------------------------------------
def _task_rows(client, Pq, block_rows):
    """Query rows per task: ~8 MiB of features and >= 4 tasks per worker thread."""
    nq = Pq[0].shape[0]
    if block_rows is not None:
        return check_int(block_rows, "block_rows", low=1)
    row_bytes = sum(b.shape[1] * b.itemsize for b in Pq)
    by_bytes = max(1, _TASK_BYTES // max(row_bytes, 1))
    slots = max(1, sum(client.nthreads().values()))
    by_balance = -(-nq // (_TASKS_PER_SLOT * slots))
    return max(1, min(by_bytes, by_balance))


def _run_blocks(
    client, func, shared, Pq, exclude, rows, kwargs, progress, retries, write
):
    """Submit ``func`` on every block of query rows and ``write`` each result.

    ``shared`` (the positional arguments after the query blocks) is scattered
    to every worker once; ``write(start, stop, result)`` stores a block's
    result in the output, so the order of completion does not matter.

    A task lost with its worker is recomputed by the scheduler. Scattered data
    has no lineage, though: if the last worker holding a copy dies (Dask's
    active memory manager may have dropped the other replicas), the blocks
    that needed it are cancelled; they are then submitted again with the
    shared data scattered afresh, at most ``retries`` times.
    """
    nq = Pq[0].shape[0]
    name = f"mtlm-{func.__name__}-{uuid.uuid4().hex}"
    pending = [(start, min(nq, start + rows)) for start in range(0, nq, rows)]
    for attempt in range(retries + 1):
        pending = _run_attempt(
            client,
            func,
            shared,
            Pq,
            exclude,
            pending,
            kwargs,
            progress,
            retries,
            write,
            f"{name}-{attempt}",
        )
        if not pending:
            return
        logger.warning(
            "%d block(s) of %s lost their scattered training data with a "
            "worker; scattering it again (attempt %d of %d)",
            len(pending),
            func.__name__,
            attempt + 1,
            retries,
        )
    raise RuntimeError(
        f"{len(pending)} block(s) of {func.__name__} could not be computed: workers "
        f"holding the scattered training data died {retries + 1} times."
    )


def _run_attempt(
    client, func, shared, Pq, exclude, spans, kwargs, progress, retries, write, name
):
    """Scatter ``shared``, run the blocks ``spans``; return those that were lost."""
    distributed = _import_distributed()
    # One future per object, a copy on every worker.
    shared = client.scatter(list(shared), broadcast=True, hash=False)
    # Tasks in flight at once: enough to keep every worker thread busy, few
    # enough that the query rows held by the scheduler stay bounded.
    window = _IN_FLIGHT_PER_SLOT * max(1, sum(client.nthreads().values()))
    queue = collections.deque(spans)
    running, lost = {}, []
    done = distributed.as_completed(with_results=True, raise_errors=False)

    def top_up():
        while queue and len(running) < window:
            start, stop = queue.popleft()
            excl = None if exclude is None else exclude[start:stop]
            fut = client.submit(
                func,
                shared[0],
                [np.ascontiguousarray(b[start:stop]) for b in Pq],
                *shared[1:],
                exclude=excl,
                **kwargs,
                key=f"{name}-{start}",
                pure=False,
                retries=retries,
            )
            running[fut] = (start, stop)
            done.add(fut)

    try:
        top_up()
        for fut, result in done:
            start, stop = running.pop(fut)
            top_up()
            if fut.status == "cancelled":  # its scattered inputs were lost
                lost.append((start, stop))
                continue
            if fut.status == "error":
                fut.result()  # raises the task's exception here
            write(start, stop, result)
            fut.release()
            if progress is not None:
                progress(stop - start)
    finally:
        client.cancel(list(running))
    return sorted(lost)


def dask_group_neighbours(
    bd,
    Pq,
    Pp,
    W,
    groups,
    k,
    *,
    exclude=None,
    n_threads=1,
    progress=None,
    client=None,
    block_rows=None,
    retries=3,
):
    """:func:`~mtlm._neighbourhoods.group_neighbours` sharded over a Dask cluster.

    Parameters
    ----------
    bd, Pq, Pp, W, groups, k, exclude, progress
        As in :func:`mtlm._neighbourhoods.group_neighbours`; ``progress`` is
        called in this process as blocks finish, in completion order.
    n_threads : int, default=1
        Threads of the kernels inside each task (match the workers' threads).
    client : distributed.Client, str or None, default=None
        The cluster: a client, a scheduler address, or None for the current
        client (see :func:`resolve_client`).
    block_rows : int or None, default=None
        Query rows per task; None: about 8 MiB of query features per task and
        at least 4 tasks per worker thread.
    retries : int, default=3
        Times a task that raised is run again (a task lost with its worker
        is rescheduled by the scheduler anyway).

    Returns
    -------
    idx : ndarray of shape (nq, M, groups.width(k)), int32
    dist : ndarray of the shape of idx, float64
        Bit-identical to :func:`~mtlm._neighbourhoods.group_neighbours`.
    """
    client = resolve_client(client)
    k = check_int(k, "k", low=1)
    retries = check_int(retries, "retries", low=0)
    nq, M = Pq[0].shape[0], groups.n_groups
    exclude = None if exclude is None else np.ascontiguousarray(exclude, dtype=np.intp)
    W = np.ascontiguousarray(W, dtype=np.float64)
    idx, dist = neighbour_arrays(nq, M, groups.width(k))
    if nq == 0:
        return idx, dist

    def write(start, stop, result):
        idx[start:stop], dist[start:stop] = result

    _run_blocks(
        client,
        group_neighbours,
        [bd, list(Pp), W, groups, k],
        Pq,
        exclude,
        _task_rows(client, Pq, block_rows),
        {"n_threads": n_threads},
        progress,
        retries,
        write,
    )
    return idx, dist


def dask_pool_scores(
    bd,
    Pq,
    Pp,
    W_pool,
    W_vote,
    groups,
    Y,
    k,
    taus,
    *,
    raw=False,
    exclude=None,
    n_threads=1,
    progress=None,
    client=None,
    block_rows=None,
    retries=3,
):
    """:func:`~mtlm._neighbourhoods.pool_scores` sharded over a Dask cluster.

    Parameters
    ----------
    bd, Pq, Pp, W_pool, W_vote, groups, Y, k, taus, raw, exclude, progress
        As in :func:`mtlm._neighbourhoods.pool_scores`.
    n_threads, client, block_rows, retries
        As in :func:`dask_group_neighbours`.

    Returns
    -------
    scores : ndarray of shape (len(taus), nq, M), float64
        Bit-identical to :func:`~mtlm._neighbourhoods.pool_scores`.
    """
    client = resolve_client(client)
    k = check_int(k, "k", low=1)
    retries = check_int(retries, "retries", low=0)
    nq, M = Pq[0].shape[0], groups.n_groups
    exclude = None if exclude is None else np.ascontiguousarray(exclude, dtype=np.intp)
    taus = np.ascontiguousarray(np.atleast_1d(taus), dtype=np.float64)
    W_pool = np.ascontiguousarray(W_pool, dtype=np.float64)
    W_vote = np.ascontiguousarray(W_vote, dtype=np.float64)
    Y = np.ascontiguousarray(Y, dtype=np.uint8)
    scores = np.empty((taus.size, nq, M), dtype=np.float64)
    if nq == 0:
        return scores

    def write(start, stop, result):
        scores[:, start:stop] = result

    _run_blocks(
        client,
        pool_scores,
        [bd, list(Pp), W_pool, W_vote, groups, Y, k, taus],
        Pq,
        exclude,
        _task_rows(client, Pq, block_rows),
        {"raw": bool(raw), "n_threads": n_threads},
        progress,
        retries,
        write,
    )
    return scores

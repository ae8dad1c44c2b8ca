"""Neighbourhood selection on NUS-WIDE-shaped data: local path vs a Dask LocalCluster.

Synthetic data shaped like NUS-WIDE's six low-level features (64, 144, 73,
128, 225 and 500 dims, non-negative histogram-like rows), 81 labels, about
two labels per image. The step timed is the O(n^2) one: the k nearest
training images of every label group for every training image under a
per-label metric (:func:`mtlm._neighbourhoods.group_neighbours`, and
:func:`mtlm._dask.dask_group_neighbours`).

Every configuration runs in a fresh process so that its peak memory
(``ru_maxrss``) is its own; a Dask run also reports the peak of each worker
process (``client.run``) and checks that its result hashes to the local one.

Usage::

    python benchmarks/dask_scale.py                  # n = 5000: local, 1 and 2 workers
    python benchmarks/dask_scale.py --n 5000 10000 --json results.json
    python benchmarks/dask_scale.py --probe-memory   # local peak vs n_train

Only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import subprocess
import sys
import time

import numpy as np

DIMS = (64, 144, 73, 128, 225, 500)  # CH, CORR, EDH, WT, CM55, BoW500
N_LABELS = 81
NUS_TRAIN, NUS_TEST = 161_789, 107_859


def nus_wide_like(n, seed=0, dtype=np.float32):
    """Histogram-like feature blocks and ~2 labels per image with skewed frequencies."""
    rng = np.random.default_rng(seed)
    X = {}
    for i, d in enumerate(DIMS):
        x = np.empty((n, d), dtype=dtype)
        for s in range(0, n, 4096):  # in chunks: no n-sized float64 temporaries
            c = rng.gamma(0.3, size=(min(n, s + 4096) - s, d))  # non-negative, skewed
            x[s : s + c.shape[0]] = c / c.sum(axis=1, keepdims=True)
        X[f"f{i}_{d}"] = x
    freq = 1.0 / np.arange(1, N_LABELS + 1) ** 0.8  # Zipf-like label frequencies
    freq /= freq.sum()
    Y = np.zeros((n, N_LABELS), dtype=np.uint8)
    n_lab = np.clip(rng.poisson(1.0, size=n) + 1, 1, 6)  # mean ~2 labels
    for i in range(n):
        Y[i, rng.choice(N_LABELS, size=n_lab[i], replace=False, p=freq)] = 1
    return X, Y


def _usage():
    """(peak RSS in MiB, CPU seconds) of the calling process (Linux units)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_maxrss / 1024, r.ru_utime + r.ru_stime


def _peak_mib():
    return _usage()[0]


def _digest(idx, dist):
    h = hashlib.sha1(idx.tobytes())
    h.update(dist.tobytes())
    return h.hexdigest()[:16]


def run_one(mode, n, workers, k, n_threads, n_queries=None):
    """One configuration in this process; returns a dict of figures."""
    from mtlm._distances import BaseDistances
    from mtlm._neighbourhoods import LabelGroups, group_neighbours

    X, Y = nus_wide_like(n)
    bd = BaseDistances().fit(X)
    P = bd.check(X)
    groups = LabelGroups.from_labels(Y)
    W = np.random.default_rng(1).random((N_LABELS, bd.n_base_))
    nq = n if n_queries is None else min(n, n_queries)
    Pq = [b[:nq] for b in P]
    excl = np.arange(nq)
    rec = {
        "mode": mode,
        "n_train": n,
        "n_queries": nq,
        "k": k,
        "n_threads": n_threads,
        "workers": workers,
        "load_avg_1m": os.getloadavg()[0],
    }
    base, cpu0 = _usage()
    if mode == "local":
        t0 = time.perf_counter()
        idx, dist = group_neighbours(
            bd, Pq, P, W, groups, k, exclude=excl, n_threads=n_threads
        )
        rec["time_s"] = time.perf_counter() - t0
        rec["peak_mib_main"], cpu1 = _usage()
        rec["cpu_s_main"] = cpu1 - cpu0
    else:
        from mtlm._dask import dask_client, dask_group_neighbours

        t0 = time.perf_counter()
        with dask_client(
            "local", n_workers=workers, threads_per_worker=n_threads, timeout=60
        ) as client:
            client.wait_for_workers(workers, timeout=120)
            client.run(importlib.import_module, "mtlm._neighbourhoods")  # warm imports
            rec["startup_s"] = time.perf_counter() - t0
            before = client.run(_usage)
            cpu0 = _usage()[1]
            t0 = time.perf_counter()
            idx, dist = dask_group_neighbours(
                bd,
                Pq,
                P,
                W,
                groups,
                k,
                exclude=excl,
                n_threads=n_threads,
                client=client,
            )
            rec["time_s"] = time.perf_counter() - t0
            rec["peak_mib_main"], cpu1 = _usage()  # client + scheduler (one process)
            rec["cpu_s_main"] = cpu1 - cpu0
            after = client.run(_usage)
            rec["peak_mib_workers"] = [after[w][0] for w in sorted(after)]
            rec["cpu_s_workers"] = [after[w][1] - before[w][1] for w in sorted(after)]
    rec["peak_mib_before_run"] = base
    rec["data_mib"] = sum(b.nbytes for b in P) / 2**20
    rec["result_mib"] = (idx.nbytes + dist.nbytes) / 2**20
    rec["pairs_per_s"] = nq * n / rec["time_s"]
    cpu = rec["cpu_s_main"] + sum(rec.get("cpu_s_workers", []))
    rec["pairs_per_cpu_s"] = nq * n / cpu
    rec["digest"] = _digest(idx, dist)
    return rec


def _spawn(args):
    cmd = [sys.executable, os.path.abspath(__file__), "--one", *map(str, args)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def extrapolate(rate_per_worker, machines=(1, 4, 16, 64), cores=16):
    """Hours for NUS-WIDE's train-train + test-train pairs at a per-core pair rate."""
    pairs = NUS_TRAIN * (NUS_TRAIN + NUS_TEST)
    return {m: pairs / (rate_per_worker * m * cores) / 3600 for m in machines}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, nargs="+", default=[5000])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--json", metavar="FILE")
    p.add_argument(
        "--probe-memory",
        action="store_true",
        help="local peak memory for growing n_train, 1024 queries",
    )
    p.add_argument(
        "--one",
        nargs=5,
        metavar=("MODE", "N", "WORKERS", "K", "NQ"),
        help=argparse.SUPPRESS,
    )
    a = p.parse_args(argv)
    if a.one:
        mode, n, workers, k, nq = a.one
        rec = run_one(
            mode, int(n), int(workers), int(k), 1, None if nq == "all" else int(nq)
        )
        print(json.dumps(rec))
        return 0

    rows = []
    if a.probe_memory:
        from mtlm._memory import rows_per_block

        for n in (5_000, 10_000, 20_000, 40_000, 80_000):
            r = _spawn(["local", n, 0, a.k, 1024])
            rows.append(r)
            rb = rows_per_block(n * len(DIMS) * 4)
            print(
                f"probe n_train={n:6d}, 1024 queries: peak {r['peak_mib_main']:5.0f}"
                f" MiB, before the run {r['peak_mib_before_run']:5.0f} MiB (features "
                f"{r['data_mib']:.0f} MiB); distance block {rb} rows = "
                f"{rb * n * len(DIMS) * 4 / 2**20:.0f} MiB; {r['time_s']:.1f} s",
                flush=True,
            )
    for n in [] if a.probe_memory else a.n:
        for mode, w in [("local", 0)] + [("dask", w) for w in a.workers]:
            r = _spawn([mode, n, w, a.k, "all"])
            rows.append(r)
            wmem = [round(x) for x in r.get("peak_mib_workers", [])]
            wcpu = [round(x, 1) for x in r.get("cpu_s_workers", [])]
            print(
                f"n={n:6d} {mode:5s} workers={w}: {r['time_s']:6.1f} s wall, "
                f"{r['pairs_per_s'] / 1e6:5.2f} Mpairs/s, "
                f"{r['pairs_per_cpu_s'] / 1e6:5.2f} Mpairs/CPU-s; peak MiB main "
                f"{r['peak_mib_main']:.0f} workers {wmem}; CPU s main "
                f"{r['cpu_s_main']:.1f} workers {wcpu}; startup "
                f"{r.get('startup_s', 0):.1f} s; load {r['load_avg_1m']:.1f}; "
                f"digest {r['digest']}",
                flush=True,
            )
        local = next(r for r in rows if r["n_train"] == n and r["mode"] == "local")
        same = all(r["digest"] == local["digest"] for r in rows if r["n_train"] == n)
        print(f"n={n}: Dask results identical to local: {same}")
        rate = local["pairs_per_cpu_s"]
        hours = extrapolate(rate)
        print(
            f"NUS-WIDE ({NUS_TRAIN} train x {NUS_TRAIN + NUS_TEST} queries) at "
            f"{rate / 1e6:.2f} Mpairs per CPU-s, 16-core machines: "
            + ", ".join(f"{m}: {h:.2f} h" for m, h in hours.items())
        )
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

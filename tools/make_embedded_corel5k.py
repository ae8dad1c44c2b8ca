"""Build ``src/mtlm/data/corel5k.npz`` from the shared ``corel5k_color10.npz``.

The histograms are stored as ``round(sqrt(x) * 65535)`` in uint16 ("sqrt-uint16"),
which ``mtlm.datasets.load_dataset`` decodes as ``(q / 65535) ** 2``.  The script
then measures the largest relative change of pairwise L1 and chi-square distances
that this encoding causes, for every feature type, and prints a Markdown table
(pasted into ``src/mtlm/data/PROVENANCE.md``).

The output is byte-reproducible: the zip entries get a fixed timestamp.

Usage (from the repository root)::

    python tools/make_embedded_corel5k.py [--source PATH] [--out PATH] [--all-pairs]
"""

import argparse
import os
import sys
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SOURCE_CANDIDATES = [
    REPO / ".." / "shared" / "data" / "corel5k" / "corel5k_color10.npz",
    Path("/work/shared/data/corel5k/corel5k_color10.npz"),
]
OUT = REPO / "src" / "mtlm" / "data" / "corel5k.npz"
SCALE = 65535
DESCRIPTION = (
    "Corel5K (Duygulu et al., ECCV 2002) with the TagProp 4500/499 train/test "
    "split and 260-word vocabulary (Guillaumin et al., ICCV 2009); 10 colour-"
    "histogram feature types (3 per-channel histograms per row, each summing to "
    "1) from the annotation package of Zhang et al. (CVPR 2010). Histograms are "
    "stored as round(sqrt(x) * 65535) in uint16; pairwise L1 and chi-square "
    "distances differ from the original float32 data by < 1e-3 relative. No "
    "licence was stated by the sources; research use only. See "
    "mtlm/data/PROVENANCE.md."
)


def encode(X):
    """Return ``round(sqrt(X) * SCALE)`` as uint16; X must lie in [0, 1]."""
    X = np.asarray(X, dtype=np.float64)
    if X.min() < 0 or X.max() > 1:
        raise ValueError("histogram values must lie in [0, 1]")
    return np.rint(np.sqrt(X) * SCALE).astype(np.uint16)


def decode(Q, dtype=np.float32):
    """Inverse of `encode` (the same formula as mtlm.datasets uses)."""
    return ((Q.astype(np.float64) / SCALE) ** 2).astype(dtype)


def l1(A, B):
    return np.abs(A - B).sum(axis=-1)


def chi2(A, B):
    s = A + B
    return np.divide((A - B) ** 2, s, out=np.zeros_like(s), where=s > 0).sum(axis=-1)


def rel_err(d0, d1):
    """Relative error |d1 - d0| / d0; 0 where both are 0, inf where only d0 is."""
    diff = np.abs(d1 - d0)
    out = np.divide(diff, d0, out=np.full_like(diff, np.inf), where=d0 > 0)
    out[(d0 == 0) & (diff == 0)] = 0.0
    return out


def max_rel_err_pairs(X0, X1, i, j):
    """Max relative L1 and chi2 error over the pairs (i[k], j[k])."""
    res = []
    for dist in (l1, chi2):
        err = 0.0
        for s in range(0, len(i), 50_000):
            a, b = i[s : s + 50_000], j[s : s + 50_000]
            err = max(err, rel_err(dist(X0[a], X0[b]), dist(X1[a], X1[b])).max())
        res.append(err)
    return res


def max_rel_err_all(X0, X1):
    """Max relative L1 and chi2 error over all pairs of distinct rows.

    Uses the compiled K1 kernel when mtlm is built (float64 sums, float32
    output: rounding 6e-8 relative), else chunked numpy (much slower).
    """
    try:
        from mtlm_fast import _pairwise
    except ImportError:
        _pairwise = None
    errs = []
    for dist in (l1, chi2):
        if _pairwise is not None:
            code = _pairwise.L1 if dist is l1 else _pairwise.CHI2
            d0 = np.empty((len(X0), len(X0), 1), np.float32)
            d1 = np.empty_like(d0)
            _pairwise.pairwise_into(X0, X0, d0, 0, code, 1.0, os.cpu_count() or 1)
            _pairwise.pairwise_into(X1, X1, d1, 0, code, 1.0, os.cpu_count() or 1)
            R = rel_err(d0[:, :, 0].astype(np.float64), d1[:, :, 0].astype(np.float64))
            np.fill_diagonal(R, 0.0)
            errs.append(R.max())
            continue
        err = 0.0
        for s in range(0, len(X0), 16):
            R = rel_err(
                dist(X0[s : s + 16, None], X0[None]),
                dist(X1[s : s + 16, None], X1[None]),
            )
            idx = np.arange(R.shape[0])
            R[idx, s + idx] = 0.0
            err = max(err, R.max())
        errs.append(err)
    return errs


def write_npz(path, arrays):
    """np.savez_compressed, but with fixed zip timestamps (reproducible bytes)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, arr in arrays.items():
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(arr), allow_pickle=False)


def build(src):
    """Arrays of the embedded file, from the shared npz ``src``."""
    feats = [str(f) for f in src["feature_names"]]
    arrays = {
        "name": np.array("corel5k"),
        "description": np.array(DESCRIPTION),
        "encoding": np.array("sqrt-uint16"),
        "feature_names": np.array(feats),
        "metrics": np.array(["l1"] * len(feats)),
        "label_names": np.asarray(src["labels"]).astype(str),
        "train_ids": np.asarray(src["train_images"]).astype(str),
        "test_ids": np.asarray(src["test_images"]).astype(str),
        "Y_train": np.ascontiguousarray(src["Y_train"], dtype=np.uint8),
        "Y_test": np.ascontiguousarray(src["Y_test"], dtype=np.uint8),
    }
    for f in feats:
        for part in ("train", "test"):
            arrays[f"X_{part}_{f}"] = encode(src[f"X_{part}_{f}"])
    return arrays


def measure(src, arrays, all_pairs, seed=0, n_random=500_000, n_subset=1000):
    """Print a Markdown table of max relative distance errors per feature type."""
    rng = np.random.default_rng(seed)
    print(
        "| feature | d | random pairs L1 | random pairs chi2 | "
        f"all pairs of {n_subset} L1 | all pairs of {n_subset} chi2 |"
        + (" all pairs L1 | all pairs chi2 |" if all_pairs else "")
    )
    print("|---|---|---|---|---|---|" + ("---|---|" if all_pairs else ""))
    worst = 0.0
    for f in [str(f) for f in src["feature_names"]]:
        X0 = np.concatenate([src[f"X_train_{f}"], src[f"X_test_{f}"]])
        X1 = np.concatenate(
            [decode(arrays[f"X_train_{f}"]), decode(arrays[f"X_test_{f}"])]
        )
        X0, X1 = X0.astype(np.float64), X1.astype(np.float64)
        n = len(X0)
        i, j = rng.integers(0, n, n_random), rng.integers(0, n, n_random)
        keep = i != j
        errs = max_rel_err_pairs(X0, X1, i[keep], j[keep])
        sub = rng.choice(n, n_subset, replace=False)
        a, b = np.triu_indices(n_subset, 1)
        errs += max_rel_err_pairs(X0, X1, sub[a], sub[b])
        if all_pairs:
            errs += max_rel_err_all(X0, X1)
        worst = max(worst, *errs)
        print(f"| {f} | {X0.shape[1]} | " + " | ".join(f"{e:.2e}" for e in errs) + " |")
        sys.stdout.flush()
    print(f"\nworst: {worst:.2e}")
    return worst


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--all-pairs",
        action="store_true",
        help="also check all 12.5M pairs of images (slow)",
    )
    args = parser.parse_args(argv)
    source = args.source or next((p for p in SOURCE_CANDIDATES if p.exists()), None)
    if source is None or not Path(source).exists():
        parser.error("shared corel5k_color10.npz not found; pass --source")
    with np.load(source, allow_pickle=False) as src:
        src = dict(src)
    arrays = build(src)
    write_npz(args.out, arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)\n")
    worst = measure(src, arrays, args.all_pairs)
    return 0 if worst < 1e-3 else 1


if __name__ == "__main__":
    sys.exit(main())

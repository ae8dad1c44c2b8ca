"""Training data as a folder of ``.npy`` files, read memory-mapped.

Layout of a folder::

    feats/
        features.txt        one feature-block name per line, in order (optional:
                            without it, the blocks are taken in sorted name order)
        <feature>.npy       one (n, d_f) float32 or float64 C-order array per block
        Y.npy               the (n, M) 0/1 label matrix (uint8 or bool)

A single block named ``x.npy`` (and no other block) is diagonal mode, as
with one 2-D array. :func:`load_npy_folder` opens every file with
``np.load(mmap_mode="r")``: nothing is read until a kernel touches it, the
pages stay in the OS page cache (shared by every process on the machine,
including local Dask workers) and memory use is bounded by the streamed
query blocks, not by the size of the collection.

Blocks stored as float32 or float64 C-order arrays are used in place;
any other dtype or order is converted (copied into memory) by validation,
and so is a block with the ``"hellinger"`` base distance (its square root
is taken once).
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["load_npy_folder", "save_npy_folder"]

_LABELS = "Y.npy"
_ORDER = "features.txt"


def save_npy_folder(folder, X, Y):
    """Write feature blocks and labels in the layout of :func:`load_npy_folder`.

    Parameters
    ----------
    folder : str or path-like
        Created if missing.
    X : dict of str to ndarray of shape (n, d_f), or ndarray of shape (n, d)
        Feature blocks (a single array is written as ``x.npy``).
    Y : ndarray of shape (n, M)
        0/1 labels, written as uint8.

    Returns
    -------
    folder : str
    """
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    blocks = X if isinstance(X, dict) else {"x": X}
    for name in blocks:
        if not name or os.sep in name or name in (".", "..", "Y"):
            raise ValueError(f"feature block name {name!r} cannot be a file name here.")
    for name, block in blocks.items():
        np.save(os.path.join(folder, f"{name}.npy"), np.ascontiguousarray(block))
    np.save(os.path.join(folder, _LABELS), np.asarray(Y, dtype=np.uint8))
    with open(os.path.join(folder, _ORDER), "w") as fh:
        fh.write("".join(f"{name}\n" for name in blocks))
    return folder


def load_npy_folder(folder, mmap_mode="r"):
    """Open a folder of ``.npy`` feature blocks and labels, memory-mapped.

    Parameters
    ----------
    folder : str or path-like
        Laid out as described in this module's docstring.
    mmap_mode : {"r", "c", None}, default="r"
        Passed to :func:`numpy.load`; None reads everything into memory.

    Returns
    -------
    X : dict of str to numpy.memmap, or numpy.memmap
        Feature blocks in order (one array in diagonal mode).
    Y : numpy.memmap of shape (n, M)
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise ValueError(f"{folder!r} is not a folder.")
    order = os.path.join(folder, _ORDER)
    if os.path.exists(order):
        with open(order) as fh:
            names = [line.strip() for line in fh if line.strip()]
    else:
        names = sorted(
            f[:-4] for f in os.listdir(folder) if f.endswith(".npy") and f != _LABELS
        )
    if not names:
        raise ValueError(f"{folder!r} holds no feature block (<feature>.npy).")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"{order}: feature block(s) {twice} listed more than once.")
    missing = [
        f"{n}.npy"
        for n in names
        if not os.path.exists(os.path.join(folder, f"{n}.npy"))
    ]
    if not os.path.exists(os.path.join(folder, _LABELS)):
        missing.append(_LABELS)
    if missing:
        raise ValueError(f"{folder!r} lacks {missing}.")
    X = {
        n: np.load(
            os.path.join(folder, f"{n}.npy"), mmap_mode=mmap_mode, allow_pickle=False
        )
        for n in names
    }
    Y = np.load(os.path.join(folder, _LABELS), mmap_mode=mmap_mode, allow_pickle=False)
    if names == ["x"]:
        return X["x"], Y
    return X, Y

"""Base distances d(q, p), one per feature type (ALGORITHM.md section 1)."""

from __future__ import annotations

import logging

import numpy as np

from mtlm._caller import warn_at_caller
from mtlm._memory import check_allocation
from mtlm._validation import (
    block_columns,
    check_choice,
    check_feature_blocks,
    check_int,
)
from mtlm_fast import _pairwise, effective_n_threads

__all__ = ["BaseDistances", "METRICS"]

logger = logging.getLogger(__name__)

# Name -> (kernel metric code, needs non-negative input, transform, constant factor)
_KERNEL = {
    "l1": (_pairwise.L1, False),
    "chi2": (_pairwise.CHI2, True),
    "l2": (_pairwise.L2, False),
    "sqeuclidean": (_pairwise.SQEUCLIDEAN, False),
    # Hellinger = ||sqrt(x) - sqrt(z)||_2 / sqrt(2): the L2 kernel on sqrt(x).
    "hellinger": (_pairwise.L2, True),
}
METRICS = tuple(_KERNEL)
_NORMALIZE = ("mean", "max", "none")


class BaseDistances:
    """Normalised base distances between images, one per feature type.

    Parameters
    ----------
    metrics : dict of str to str, str or None, default=None
        Base distance of each feature block: ``"l1"``, ``"chi2"``,
        ``"l2"`` (Euclidean), ``"sqeuclidean"`` or ``"hellinger"``. A single
        string applies to every block; None means ``"l1"`` everywhere.
        Ignored in diagonal mode.
    normalize : {"mean", "max", "none"}, default="mean"
        Divide each base distance by its mean (or max) over training pairs
        ``q != p``, learned in :meth:`fit`. Ignored in diagonal mode.
    n_pairs : int, default=1_000_000
        Number of random training pairs used to estimate the normaliser when
        there are more distinct pairs than this (all pairs otherwise).
    random_state : int, default=0
        Seed of the pair sample (a fixed seed keeps the normaliser stable).

    Attributes
    ----------
    feature_names_ : list of str
        Block names in the order of the last axis of :meth:`pairwise`.
    metrics_ : list of str
        Base distance of each block.
    scales_ : ndarray of shape (n_blocks,)
        Factor applied to each raw distance (1 / mean, 1 / max or 1).
    base_means_ : ndarray of shape (n_base,)
        Mean of each (scaled) base distance over the training pair sample:
        1 with ``normalize="mean"``, measured otherwise (and per dimension in
        diagonal mode). It sets the scale of the vote temperatures tried.
    dims_ : list of int
        Columns of each block.
    diagonal_ : bool
        True when fitted on a single 2-D array: then there is one base
        distance per dimension, ``d_f(q, p) = (x_qf - x_pf) ** 2``, and
        ``n_base_ == n_dims``.
    n_base_ : int
        Number of base distances F.

    Notes
    -----
    Histograms are used as given (no re-normalisation): with
    ``normalize="mean"`` or ``"max"`` a constant scale of the input cancels,
    but a scale that differs between rows does not. ALGORITHM.md section 1
    L1-normalises every histogram row; mtlm leaves that to the caller (a
    block may hold other features), so divide rows by their sums first when
    their totals differ. The embedded Corel5K rows each sum to 3 (three
    colour channels of one histogram each), where both readings agree.
    """

    def __init__(
        self, metrics=None, normalize="mean", n_pairs=1_000_000, random_state=0
    ):
        self.metrics = metrics
        self.normalize = normalize
        self.n_pairs = n_pairs
        self.random_state = random_state

    # -- fitting -----------------------------------------------------------------
    def fit(self, X, n_jobs=None):
        """Learn the block layout and each base distance's normaliser.

        Parameters
        ----------
        X : dict of str to array-like of shape (n, d_f), or array-like of shape (n, d)
            Training features.
        n_jobs : int or None, default=None
            Threads for the pair sample (see :func:`mtlm_fast.effective_n_threads`).

        Returns
        -------
        self : BaseDistances
        """
        blocks, names, diagonal = check_feature_blocks(X, "X")
        return self._fit_blocks(
            blocks, names, diagonal, n_jobs, columns=block_columns(X, names)
        )

    def _fit_blocks(self, blocks, names, diagonal, n_jobs=None, columns=None):
        check_choice(self.normalize, "normalize", _NORMALIZE)
        self.columns_ = columns if columns is not None else [None] * len(blocks)
        n_pairs = check_int(self.n_pairs, "n_pairs", low=1)
        check_int(self.random_state, "random_state", low=0, allow_none=True)
        self.feature_names_ = list(names)
        self.diagonal_ = bool(diagonal)
        self.dims_ = [b.shape[1] for b in blocks]
        bigs = [
            _check_magnitude(b, "X" if diagonal else f"X[{f!r}]", diagonal)
            for b, f in zip(blocks, names)
        ]
        if blocks[0].shape[0] > 1 and all((b == b[:1]).all() for b in blocks):
            warn_at_caller(
                "all training images have identical features: every base distance "
                "is 0, so nothing can be learned and every neighbour ties.",
                UserWarning,
            )
        if diagonal:
            self.metrics_ = ["sqdiff"]
            self.n_base_ = self.dims_[0]
            self.scales_ = np.ones(self.n_base_)
            self.base_means_ = _diagonal_means(blocks[0], n_pairs, self.random_state)
            tiny = np.flatnonzero((self.base_means_ > 0) & (self.base_means_ < _TINY))
            if tiny.size:
                raise ValueError(
                    f"X: the squared differences of {tiny.size} dimension(s) (first: "
                    f"{tiny[:5].tolist()}) are below {_TINY:g} and vanish in float32; "
                    "rescale the features."
                )
            return self
        self.metrics_ = self._resolve_metrics(names)
        self.n_base_ = len(names)
        for b, f, m, big in zip(blocks, names, self.metrics_, bigs):
            _check_histogram(b, f"X[{f!r}]", m)
            if self.normalize != "mean":  # raw distances are stored as float32
                _check_unscaled(big, b.shape[1], f"X[{f!r}]", m, self.normalize)
        self.scales_ = np.ones(len(names))
        self.base_means_ = np.ones(len(names))
        qidx, pidx = _pair_sample(blocks[0].shape[0], n_pairs, self.random_state)
        n_threads = effective_n_threads(n_jobs)
        for f, (b, m) in enumerate(zip(blocks, self.metrics_)):
            prepared = self._prepare(b, m, bigs[f])
            stat = 1.0
            if self.normalize != "none":
                stat = self._pair_statistic(prepared, m, qidx, pidx, n_threads)
                if stat > 0:
                    self.scales_[f] = 1.0 / stat
                elif not (b == b[:1]).all():
                    # "max" takes its statistic from distances stored as float32
                    hint = (
                        "" if self.normalize == "mean" else " or use normalize='mean'"
                    )
                    raise ValueError(
                        f"X[{names[f]!r}]: its {m} distances vanish in float32 "
                        f"(values up to {bigs[f]:.3g}); rescale the features{hint}."
                    )
                else:
                    logger.warning(
                        "feature block %r: every training pair is at distance 0; "
                        "it is left unscaled and carries no information.",
                        names[f],
                    )
            if self.normalize != "mean" or stat <= 0:
                # "mean" makes the sample mean 1; otherwise it is measured
                code = _KERNEL[m][0]
                mean = _pairwise.paired_mean(prepared, qidx, pidx, code, n_threads)
                self.base_means_[f] = mean * _constant(m) * self.scales_[f]
                if self.normalize == "none" and 0 < self.base_means_[f] < _TINY:
                    raise ValueError(
                        f"X[{names[f]!r}]: its {m} distances (mean "
                        f"{self.base_means_[f]:.3g}) vanish in float32; rescale the "
                        "features or use normalize='mean'."
                    )
        logger.info("base distances: %s", dict(zip(self.feature_names_, self.metrics_)))
        return self

    def _resolve_metrics(self, names):
        metrics = self.metrics
        if metrics is None:
            metrics = "l1"
        if isinstance(metrics, str):
            check_choice(metrics, "metrics", METRICS)
            return [metrics] * len(names)
        if not hasattr(metrics, "get"):
            raise ValueError(
                f"metrics must be None, a metric name or a dict, got {metrics!r}."
            )
        unknown = [f for f in metrics if f not in names]
        if unknown:
            raise ValueError(
                f"metrics names feature block(s) {unknown} that are not in X "
                f"(blocks: {list(names)})."
            )
        out = []
        for f in names:
            m = metrics.get(f, "l1")
            check_choice(m, f"metrics[{f!r}]", METRICS)
            out.append(m)
        return out

    def _pair_statistic(self, block, metric, qidx, pidx, n_threads):
        code = _KERNEL[metric][0]
        if self.normalize == "mean":
            value = _pairwise.paired_mean(block, qidx, pidx, code, n_threads)
        else:
            out = np.empty((qidx.size, 1), dtype=np.float32)
            _pairwise.paired_into(
                block, block, qidx, pidx, out, 0, code, 1.0, n_threads
            )
            value = float(out.max()) if out.size else 0.0
        return value * _constant(metric)

    # -- computing -------------------------------------------------------------
    def _check_is_fitted(self):
        if not hasattr(self, "scales_"):
            raise ValueError(
                "This BaseDistances instance is not fitted yet; "
                "call fit(X_train) first."
            )

    def check(self, X, name="X"):
        """Validate features against the fitted layout and prepare them for kernels.

        Returns a list of C-contiguous blocks (square roots taken for Hellinger).
        """
        self._check_is_fitted()
        blocks, _, _ = check_feature_blocks(
            X, name, feature_names=self.feature_names_, dims=self.dims_
        )
        for f, want, got in zip(
            self.feature_names_, self.columns_, block_columns(X, self.feature_names_)
        ):
            if want is not None and got is not None and got != want:
                label = name if self.diagonal_ else f"{name}[{f!r}]"
                raise ValueError(
                    f"{label} has columns {_short(got)}, but fit saw "
                    f"{_short(want)}: reorder or rename them as in fit."
                )
        bigs = [
            _check_magnitude(
                b, name if self.diagonal_ else f"{name}[{f!r}]", self.diagonal_
            )
            for b, f in zip(blocks, self.feature_names_)
        ]
        if self.diagonal_:
            return blocks
        out = []
        for b, f, m, big in zip(blocks, self.feature_names_, self.metrics_, bigs):
            _check_histogram(b, f"{name}[{f!r}]", m)
            if self.normalize == "none":
                _check_unscaled(big, b.shape[1], f"{name}[{f!r}]", m, self.normalize)
            out.append(self._prepare(b, m, big))
        return out

    @staticmethod
    def _prepare(block, metric, big=None):
        """``block`` as the kernels take it for ``metric``.

        The float32 kernels sum squares of differences in float32 over runs of
        64 columns, so a float32 block whose squares would overflow or lose
        their digits there is computed in float64 (``big``: its largest
        |value|, measured when None).
        """
        if block.dtype == np.float32 and block.size:
            if big is None:
                big = float(np.abs(block).max())
            if (metric in _SQUARED and big > _F32_SQUARES_MAX) or (
                0 < big < _F32_VALUES_MIN
            ):
                block = block.astype(np.float64)
        return np.sqrt(block) if metric == "hellinger" else block

    def pairwise(self, Xq, Xp=None, n_jobs=None):
        """Normalised base distances between every query and every reference row.

        Parameters
        ----------
        Xq : dict of str to array-like, or array-like
            Query features, laid out as in :meth:`fit`.
        Xp : dict of str to array-like, or array-like, default=None
            Reference features; None means ``Xq`` against itself.
        n_jobs : int or None, default=None
            Threads: None follows OpenMP (``OMP_NUM_THREADS``, threadpoolctl),
            -1 uses every CPU.

        Returns
        -------
        d : ndarray of shape (n_queries, n_references, n_base), dtype float32
        """
        Pq = self.check(Xq, "Xq")
        Pp = Pq if Xp is None else self.check(Xp, "Xp")
        nq, np_ = Pq[0].shape[0], Pp[0].shape[0]
        check_allocation(
            nq * np_ * self.n_base_ * 4,
            f"the base-distance tensor ({nq} x {np_} x {self.n_base_} float32)",
            "pass fewer query rows at a time",
        )
        out = np.empty((nq, np_, self.n_base_), dtype=np.float32)
        self.pairwise_prepared(Pq, Pp, out, effective_n_threads(n_jobs))
        return out

    def pairwise_prepared(self, Pq, Pp, out, n_threads):
        """Fill ``out`` (nq, np, F) from blocks already returned by :meth:`check`."""
        if self.diagonal_:
            a, b = _common_dtype(Pq[0], Pp[0])
            _pairwise.diagonal_into(a, b, out, n_threads)
            return out
        for f, (a, b, m) in enumerate(zip(Pq, Pp, self.metrics_)):
            a, b = _common_dtype(a, b)
            scale = self.scales_[f] * _constant(m)
            _pairwise.pairwise_into(a, b, out, f, _KERNEL[m][0], scale, n_threads)
        return out

    def paired_prepared(self, Pq, Pp, qidx, pidx, n_threads):
        """Base distances of the listed pairs (qidx[r], pidx[r]) -> (n_pairs, F)."""
        qidx = np.ascontiguousarray(qidx, dtype=np.intp)
        pidx = np.ascontiguousarray(pidx, dtype=np.intp)
        out = np.empty((qidx.size, self.n_base_), dtype=np.float32)
        if self.diagonal_:
            a, b = _common_dtype(Pq[0], Pp[0])
            diff = a[qidx].astype(np.float64) - b[pidx]
            out[:] = diff * diff
            return out
        for f, (a, b, m) in enumerate(zip(Pq, Pp, self.metrics_)):
            a, b = _common_dtype(a, b)
            scale = self.scales_[f] * _constant(m)
            _pairwise.paired_into(
                a, b, qidx, pidx, out, f, _KERNEL[m][0], scale, n_threads
            )
        return out


def _constant(metric):
    return 1.0 / np.sqrt(2.0) if metric == "hellinger" else 1.0


def _common_dtype(a, b):
    if a.dtype == b.dtype:
        return a, b
    return a.astype(np.float64), b.astype(np.float64)


def _check_histogram(block, name, metric):
    if _KERNEL[metric][1] and (block < 0).any():
        raise ValueError(
            f"{name} has negative values, but the {metric!r} base distance needs "
            "non-negative histograms; use 'l1' or 'l2' for signed features."
        )


# Largest |feature| for which every base distance stays finite: squared
# differences are stored as float32 in diagonal mode (max 3.4e38), and
# accumulated in float64 (max 1.8e308) over up to ~1e7 columns otherwise.
_MAX_ABS = {True: 1e18, False: 1e150}
_F32_MAX = float(np.finfo(np.float32).max)
# float32 blocks beyond these go to the float64 kernels (see _prepare): 64
# squared differences of values up to 1e17 sum to at most 2.6e36, and values
# below 1e-12 have squares near float32's smallest normal number (1.2e-38)
_SQUARED = ("l2", "sqeuclidean", "chi2")
_F32_SQUARES_MAX = 1e17
_F32_VALUES_MIN = 1e-12
_TINY = 1e-30  # unscaled distances below this lose their digits in float32


def _check_magnitude(block, name, diagonal):
    """Largest |value| of ``block``, after checking it against the limit."""
    limit = _MAX_ABS[bool(diagonal)]
    big = float(np.abs(block).max()) if block.size else 0.0
    if big > limit:
        raise ValueError(
            f"{name} has values up to {big:.3g} in magnitude; the base distances "
            f"would overflow (the limit is {limit:.0e}): rescale the features."
        )
    return big


def _short(cols, n=6):
    return repr(cols) if len(cols) <= n else repr(cols[:n])[:-1] + ", ...]"


def _check_unscaled(big, d, name, metric, normalize="none"):
    """Raw distances are stored as float32 (normalize="none", or while taking
    the max of "max"): bound them from the block's largest |value| ``big`` and
    its ``d`` columns.

    ``|x - z| <= 2 max|x|``, so per metric the largest distance of d columns is
    at most 2 d max (l1, chi2: sum (x - z)^2 / (x + z) <= sum (x + z)),
    2 sqrt(d) max (l2), 4 d max^2 (sqeuclidean); hellinger cannot overflow.
    """
    top = {
        "l1": 2 * d * big,
        "chi2": 2 * d * big,
        "l2": 2 * np.sqrt(d) * big,
        "sqeuclidean": 4 * d * big * big,
    }.get(metric, 0.0)
    if top > _F32_MAX:
        raise ValueError(
            f"{name} has values up to {big:.3g} in magnitude: with "
            f"normalize={normalize!r} its {metric} distances could reach {top:.3g}, "
            f"beyond float32 ({_F32_MAX:.2g}); rescale the features or use "
            "normalize='mean'."
        )


def _diagonal_means(X, n_pairs, seed, chunk=512):
    """Mean of (x_f - z_f)^2 per dimension over a sample of training pairs."""
    qidx, pidx = _pair_sample(X.shape[0], min(n_pairs, 8192), seed)
    total = np.zeros(X.shape[1])
    for a in range(0, qidx.size, chunk):
        q, p = qidx[a : a + chunk], pidx[a : a + chunk]
        diff = X[q].astype(np.float64) - X[p]
        total += np.einsum("ij,ij->j", diff, diff)
    return total / max(qidx.size, 1)


def _pair_sample(n, n_pairs, seed):
    """Pairs q != p: all of them when few, else ``n_pairs`` drawn with ``seed``."""
    total = n * (n - 1) // 2
    if total == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    if total <= n_pairs:
        q, p = np.triu_indices(n, k=1)
        return q.astype(np.intp), p.astype(np.intp)
    rng = np.random.default_rng(seed)
    q = rng.integers(0, n, size=n_pairs)
    p = rng.integers(0, n - 1, size=n_pairs)
    p = p + (p >= q)  # uniform over p != q
    return q.astype(np.intp), p.astype(np.intp)

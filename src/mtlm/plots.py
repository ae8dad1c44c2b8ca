"""Figures for ``mtlm evaluate --plot`` (needs the ``plot`` extra: matplotlib)."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_f1_vs_frequency", "plot_weights"]


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "plotting needs matplotlib: install the extra with pip install 'mtlm[plot]'"
        ) from exc
    return plt


def plot_f1_vs_frequency(per_label_f1, label_counts, path, *, n_bins=8):
    """Per-label F1 against training frequency, one line per method.

    Labels are grouped into frequency bins of equal size (quantiles of the
    training count); each point is the mean per-label F1 of a bin, and the
    faint dots are the labels themselves.

    Parameters
    ----------
    per_label_f1 : dict of str to ndarray of shape (M,)
        Method name -> per-label F1 on the test split (NaN for labels absent
        from the test split; they are left out).
    label_counts : ndarray of shape (M,)
        Training images of each label.
    path : str or path-like
        PNG file to write.
    n_bins : int, default=8
    """
    plt = _pyplot()
    counts = np.asarray(label_counts, dtype=float)
    order = np.argsort(counts, kind="stable")
    bins = np.array_split(order, min(n_bins, counts.size))
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    jitter = np.random.default_rng(0).uniform(-0.04, 0.04, counts.size)
    for method, f1 in per_label_f1.items():
        f1 = np.asarray(f1, dtype=float)
        x = [np.median(counts[b]) for b in bins]
        y = [np.nanmean(f1[b]) if np.isfinite(f1[b]).any() else np.nan for b in bins]
        line = ax.plot(x, y, marker="o", label=method)[0]
        ok = np.isfinite(f1)
        ax.scatter(
            counts[ok] * (1 + jitter[ok]),
            f1[ok],
            s=5,
            alpha=0.25,
            color=line.get_color(),
        )
    ax.set_xscale("log")
    ax.set_xlabel("training images of the label (log scale; bins of equal size)")
    ax.set_ylabel("per-label F1 on the test split")
    ax.set_title("Per-label F1 against label frequency")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_weights(
    weights_shared,
    weights_label,
    feature_names,
    path,
    *,
    label_names=None,
    label_counts=None,
    max_labels=40,
    title=None,
):
    """Heatmap of the learned weights: the shared w_* and w_* + w_m per label.

    Parameters
    ----------
    weights_shared : ndarray of shape (F,)
    weights_label : ndarray of shape (M, F)
    feature_names : list of str
    path : str or path-like
        PNG file to write.
    label_names : list of str or None
    label_counts : ndarray of shape (M,) or None
        When given, the ``max_labels`` most frequent labels are shown.
    max_labels : int, default=40
    title : str or None
    """
    plt = _pyplot()
    wl = np.asarray(weights_label, dtype=float)
    M = wl.shape[0]
    names = list(label_names) if label_names is not None else [str(m) for m in range(M)]
    rows = np.arange(M)
    if label_counts is not None:
        rows = np.argsort(-np.asarray(label_counts), kind="stable")
    rows = rows[:max_labels]
    data = np.vstack([weights_shared, weights_shared + wl[rows]])
    ylabels = ["w* (shared)"] + [f"{names[m]}" for m in rows]
    fig, ax = plt.subplots(
        figsize=(1.2 + 0.5 * len(feature_names), 1.5 + 0.22 * len(ylabels)), dpi=120
    )
    im = ax.imshow(data, aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(feature_names)), feature_names, rotation=60, ha="right")
    ax.set_yticks(range(len(ylabels)), ylabels, fontsize=7)
    ax.axhline(0.5, color="white", lw=2)
    fig.colorbar(im, ax=ax, label="weight")
    ax.set_title(title or "Learned weights per feature type")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path

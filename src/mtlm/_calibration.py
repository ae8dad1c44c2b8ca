"""Word-specific sigmoids (ALGORITHM.md section 5.3, TagProp's sigma).

``p(t, m) = sigmoid(a_m * score(t, m) + b_m)``, with ``(a_m, b_m)`` fitted per
label by L2-regularised logistic regression (``a_m`` penalised as in
scikit-learn's ``LogisticRegression``, ``b_m`` not) on the leave-self-out
scores of the training images, under ``a_m >= 0``: a probability never falls
as the score rises, so each label's ranking (MAP, MiAP) is kept or, where the
training scores carry no signal (``a_m = 0``), the label gets its frequency.
The scores of different labels become comparable as probabilities, for
thresholds (section 5.4).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit, logit

__all__ = ["PROBABILITY_C", "fit_label_sigmoids", "label_probabilities"]

#: Inverse L2 strength of the per-label fits.  Chosen on two random hold-outs
#: of the Corel5K training split by the hold-out log-loss summed over labels
#: (JEC 13.67 / 12.52 / 12.09 / 12.05 / 12.06 at C = 0.1 / 1 / 10 / 100 / 1e4,
#: MTLM-LDML 13.76 / 12.54 / 12.00 / 11.94 / 11.94).
PROBABILITY_C = 100.0


def _fit_one(s, y, C):
    """argmin over a >= 0, b of a^2 / 2 + C * sum(log-loss), divided by C * n."""
    n = s.size
    scale = 1.0 / (C * n)  # same minimiser, objective of order 1

    def f(theta):
        a, b = theta
        z = a * s + b
        # log-loss = -y log sigma(z) - (1 - y) log sigma(-z)
        loss = -(y * log_expit(z) + (1 - y) * log_expit(-z)).mean()
        r = expit(z) - y
        grad = np.array([a * scale + (r * s).mean(), r.mean()])
        return 0.5 * a * a * scale + loss, grad

    b0 = logit(np.clip(y.mean(), 1e-12, 1 - 1e-12))
    res = minimize(
        f,
        np.array([0.0, b0]),
        jac=True,
        method="L-BFGS-B",
        bounds=[(0.0, None), (None, None)],
        options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 1000},
    )
    return res.x


def fit_label_sigmoids(scores, Y, C=PROBABILITY_C, score_scale=None):
    """Per-label ``(a_m, b_m)`` from training scores and labels.

    Parameters
    ----------
    scores : ndarray of shape (n, M)
        Leave-self-out scores of the training images.
    Y : ndarray of shape (n, M), 0/1
    C : float
        Inverse regularisation strength of ``a_m`` (as in scikit-learn).
    score_scale : ndarray of shape (M,) or None
        Each label's scores are fitted divided by it (positive entries), and
        ``a_m`` is returned for the undivided scores. Raw votes can be as
        small as 1e-16, where the penalty on ``a_m`` would flatten every
        sigmoid; None fits the scores as they are (normalised votes).

    Returns
    -------
    coef, intercept : ndarray of shape (M,), float64
        ``coef >= 0``.  A label every image carries, or none carries, gets
        ``a_m = 0`` and ``b_m`` the logit of its smoothed frequency
        ``(count + 1/2) / (n + 1)``.
    """
    n, M = Y.shape
    scores = np.asarray(scores, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    counts = Y.sum(axis=0)
    coef = np.zeros(M)
    intercept = logit((counts + 0.5) / (n + 1.0))
    unit = np.ones(M)
    if score_scale is not None:
        score_scale = np.asarray(score_scale, dtype=np.float64)
        unit = np.where(score_scale > 0, score_scale, 1.0)
    for m in np.flatnonzero((counts > 0) & (counts < n)):
        a, intercept[m] = _fit_one(scores[:, m] / unit[m], Y[:, m], C)
        coef[m] = a / unit[m]
    return coef, intercept


def label_probabilities(scores, coef, intercept):
    """``sigmoid(coef * scores + intercept)``, label-wise, shape of ``scores``."""
    return expit(scores * coef[None, :] + intercept[None, :])

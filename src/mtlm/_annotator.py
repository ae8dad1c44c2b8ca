"""The scikit-learn-style annotator: fit label metrics, vote, annotate."""

from __future__ import annotations

import importlib
import logging
import warnings
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from mtlm._calibration import fit_label_sigmoids, label_probabilities
from mtlm._caller import warn_at_caller
from mtlm._distances import BaseDistances
from mtlm._neighbourhoods import LabelGroups, group_neighbours, pool_scores
from mtlm._validation import (
    block_columns,
    check_choice,
    check_feature_blocks,
    check_float,
    check_int,
    check_label_matrix,
)
from mtlm.metrics import annotation_scores, top_k_annotation
from mtlm_fast import effective_n_threads

__all__ = ["MTLMAnnotator", "METHODS"]

logger = logging.getLogger(__name__)

#: Learned methods: name -> "module:function". The function takes the
#: annotator (fit context: ``base_distances_``, ``_train_blocks``, ``_groups``,
#: ``Y_train_`` and the parameters) and the thread count, and returns a
#: :class:`LearnedMetric`.
_LEARNERS = {
    "mtlm-lmnn": "mtlm._lmnn:learn",
    "local-lmnn": "mtlm._lmnn:learn",
    "global-lmnn": "mtlm._lmnn:learn",
    "mtlm-ldml": "mtlm._ldml:fit_ldml",
    "local-ldml": "mtlm._ldml:fit_ldml",
    "global-ldml": "mtlm._ldml:fit_ldml",
}

#: Methods that :class:`MTLMAnnotator` knows.
METHODS = ("jec", *_LEARNERS)


@dataclass(frozen=True)
class LearnedMetric:
    """What a learner returns: the weights and the optimisation trace."""

    weights_shared: np.ndarray  # (F,)
    weights_label: np.ndarray  # (M, F)
    bias: np.ndarray  # (M,)
    n_iter: int
    objective: np.ndarray  # objective after each accepted step
    extra: dict = field(default_factory=dict)  # more fitted attributes (name_ -> value)


def forget_fit(est):
    """Drop what a fit left on ``est`` (public fitted and private training state)."""
    private = ("_train_blocks", "_train_blocks_raw", "_groups")
    for name in [a for a in vars(est) if a.endswith("_") or a in private]:
        delattr(est, name)


def equal_weights(n_base, n_labels):
    """JEC's metric: ``w_* = 1/F`` for every label, nothing learned."""
    return LearnedMetric(
        np.full(n_base, 1.0 / n_base),
        np.zeros((n_labels, n_base)),
        np.zeros(n_labels),
        0,
        np.zeros(0),
    )


def _run_learner(est, n_threads):
    module, func = _LEARNERS[est.method].split(":")
    return getattr(importlib.import_module(module), func)(est, n_threads)


_VOTES = ("normalized", "raw")
_TAU_SELECTS = ("leave-self-out", "held-out")
#: Relative temperatures searched by tau="auto" (times the typical distance).
_TAU_GRID = np.geomspace(0.005, 2.0, 16)
_BACKENDS = ("local", "dask")


class MTLMAnnotator(BaseEstimator):
    """Annotate images with labels by nearest neighbours under per-label metrics.

    Every label m ranks training images by
    ``D_m(q, p) = (w_* + w_m) . d(q, p)``, where ``d`` holds one normalised
    base distance per feature type. A test image's pool is the union over
    labels of the ``k`` nearest images carrying each label, under that
    label's metric; label m is scored by the vote
    ``sum_p exp(-D_m(t, p) / tau) Y[p, m] / sum_p exp(-D_m(t, p) / tau)``
    over the pool (ALGORITHM.md sections 3 and 5).

    Parameters
    ----------
    method : str, default="jec"
        ``"jec"``: equal weights ``1/F`` for every label (no learning).
        ``"mtlm-lmnn"``, ``"local-lmnn"``, ``"global-lmnn"``: LMNN-learned
        metrics, shared + per label, per label only, or one global metric
        (see ``mtlm._lmnn``).
        ``"mtlm-ldml"``: shared plus label-specific weights learned jointly
        by LDML (ALGORITHM.md section 4.1). ``"local-ldml"``: independent
        per-label LDML metrics, no shared part. ``"global-ldml"``: one LDML
        metric on image-level constraints, used for every label.
    n_labels : int, default=5
        Labels given to each image by :meth:`predict`.
    metrics : dict, str or None, default=None
        Base distance per feature block (see :class:`BaseDistances`); None
        means ``"l1"``. Ignored for a single 2-D array (diagonal mode).
    normalize : {"mean", "max", "none"}, default="mean"
        Normaliser of each base distance, learned on training pairs.
    k : int, default=4
        Neighbours taken from each label group for the pool, and for the
        ``"2pknn"`` training constraints.
    gamma_shared : float, default=1.0
        Regularisation weight of the shared weights ``||w_*||^2``.
    gamma_label : float, default=30.0
        Regularisation weight of each label's ``||(b_m, w_m)||^2``. 30 was
        chosen on 8 random hold-outs of the Corel5K training split
        (``benchmarks/holdout_cv.py``): against 1, hold-out F1 .246 -> .251
        for MTLM-LDML (7 of 8 splits) and .241 -> .247 for local-LDML; for
        MTLM-LMNN .234 -> .233 (no effect within noise).
    max_iter : int or None, default=None
        Iteration cap of the learner; None means the method's default
        (500 for LDML, 1000 for LMNN).
    tol : float, default=1e-6
        Stop after an accepted step whose relative decrease of the objective
        is below ``tol``.
    constraints : {"2pknn", "label"} or None, default=None
        Training constraints (ALGORITHM.md section 3); None is the method's
        own: ``"2pknn"`` for LDML, ``"label"`` for LMNN. ``"2pknn"``: per
        image the ``k`` nearest of each label group, similar for the image's
        labels and dissimilar for the others (shared by every label of the
        image for LDML; for LMNN label m's targets are the ``k`` nearest of
        its group, its impostor candidates the image's dissimilar images
        that lack m). ``"label"``: per (image, label) the ``k_pos`` nearest
        images with the label (LMNN targets) and the ``k_neg`` nearest
        without it (LMNN impostor candidates).
    overlap : {"dissimilar", "both", "shared"}, default="dissimilar"
        ``"2pknn"`` only: an image in both lists of a query is removed from
        the dissimilar list only, or from both; ``"shared"`` also drops every
        dissimilar image that carries one of the query's labels.
    max_dissimilar : int or None, default=50
        ``"2pknn"`` only: dissimilar images kept per training image, the
        nearest under equal weights; None keeps every candidate (the
        precursor's rule: ~680 per image on Corel5K, 98 % of the pairs).
    step_size : {"block", "single"}, default="block"
        LDML bold-driver step: one base step per block (w_*, each w_m, each
        b_m) from its own initial gradient, or one step for all.
    normalize_loss : bool, default=False
        Divide each label's LDML data term by its number of pairs.
    regularize_bias : bool, default=True
        Include the bias ``b_m`` in the label regulariser.
    tau : float or "auto", default="auto"
        Vote temperature. ``"auto"`` picks it from a grid scaled to the
        learned distances, by F1 at ``n_labels`` of leave-self-out votes on
        (a sample of) the training images; test data is never used.
    vote : {"normalized", "raw"}, default="normalized"
        ``"raw"`` drops the per-label denominator (2PKNN's own form).
    vote_scale : {"label", "none"}, default="label"
        With per-label metrics, ``"label"`` divides each label's vote
        distances by its total weight ``sum(w_* + w_m)`` (relative to the
        mean over the labels whose weight is not 0), so that one ``tau``
        means the same sharpness for
        every label; the pools are unchanged. With ``"none"`` a label whose
        learned metric is several times larger votes almost 1-NN and is
        over-predicted. No effect with one shared metric (JEC, global).
        Chosen on 8 random hold-outs of the Corel5K training split
        (``benchmarks/holdout_cv.py``): ``"label"`` raised MTLM-LDML's
        hold-out F1 on 8 of 8 (mean .239 -> .246) and local-LDML's
        (.235 -> .241); LMNN, whose weights have a fixed scale, did not move
        (.234 -> .235).
    n_tune : int, default=1000
        Training images used to choose ``tau`` when it is ``"auto"``.
    tau_select : {"leave-self-out", "held-out"}, default="leave-self-out"
        How ``tau="auto"`` scores its grid. ``"leave-self-out"``: ``n_tune``
        training images vote among the other training images under the
        learned metric. That metric was fitted to those very images, so the
        choice may favour a ``tau`` that suits them better than new images.
        ``"held-out"`` removes that bias: ``n_tune`` images (at most a fifth
        of the training set) are set aside, the metric is learned once more
        on the others (the fit costs about twice as much), the held-out
        images vote among them, and the chosen temperature, relative to the
        typical learned distance, is applied to the metric learned on all
        images. On 8 hold-outs of the Corel5K training split
        (``benchmarks/holdout_cv.py``) it changed F1 by -.001 to +.001 for
        every method, so it is not the default. JEC learns nothing and
        always uses leave-self-out.
    probability : bool, default=False
        Also fit the word-specific sigmoids of ALGORITHM.md section 5.3
        (TagProp's sigma): per label, ``p = sigmoid(a_m * score + b_m)`` by
        L2-regularised logistic regression on the leave-self-out scores of
        every training image (about the cost of annotating the training
        set once), so that :meth:`predict_proba` gives probabilities that
        compare across labels, e.g. for :func:`mtlm.metrics.threshold_annotation`.
        The slopes are kept >= 0, so a label's ranking never flips. On four
        random hold-outs of the Corel5K training split the hold-out log-loss
        (summed over labels) is 12.05 (JEC) and 11.93 (MTLM-LDML) against
        15.09 for label frequencies alone. ``predict`` (top ``n_labels`` by
        score) is unchanged: ranking by the probabilities lowered top-5 F1
        there (JEC .248 -> .226, MTLM-LDML .257 -> .235), as TagProp's
        sigmoid favours frequent labels.
    k_pos, k_neg : int, default=3, 20
        ``constraints="label"`` only: per (image, label) the targets (from
        the label's group) and impostor candidates (images lacking the label)
        of LMNN, or LDML's similar and dissimilar neighbours.
    mu : float, default=0.25
        LMNN push weight. 0.25 was chosen on 8 random hold-outs of the
        Corel5K training split (``benchmarks/holdout_cv.py``): MTLM-LMNN's
        hold-out F1 .233 at 1, .245 at 0.25 (8 of 8 splits), .236 at 0.1
        (``label_sum="at_most"``; with ``"equal"`` .2458 / .2493 / .2442);
        local- and global-LMNN moved by less than .001.
    margin : float, default=0.1
        LMNN margin, as a fraction of the mean initial distance of the
        stored pairs (the weights have a fixed scale, see ``mtlm._lmnn``).
    label_budget : float or None, default=1.0
        MTLM-LMNN: the sum of each w_m (``label_sum="equal"``) or its cap
        (``"at_most"``, where None keeps only w_m >= 0).
    label_sum : {"equal", "at_most"}, default="equal"
        MTLM-LMNN: ``sum(w_m) == label_budget`` or ``<= label_budget``. With
        ``"at_most"`` the hinge drives every w_m to 0 on Corel5K and MTLM-LMNN
        is the shared metric alone; with ``"equal"`` each w_m keeps the budget
        and, under ``gamma_label=30``, stays near 1/F (the regulariser's
        minimum on the simplex), so each label's metric is w_* blended with
        equal weights. On 8 random hold-outs of the Corel5K training split
        (``benchmarks/holdout_cv.py``) hold-out F1 .2451 ("at_most") -> .2493
        ("equal", 7 of 8 splits); budget 0.25 .2476, 2 .2514 (3 of 8 over 1),
        4 .2455; mu = 0.25 stays best (.2442 / .2453 / .2458 at 0.1 / 0.5 / 1);
        gamma_label 1 / 0.1 (label-specific w_m) .2465 / .2418.
    full_check_every : int, default=10
        LMNN: iterations between full checks of every candidate triplet.
    n_jobs : int or None, default=None
        Threads for the kernels: None follows OpenMP (``OMP_NUM_THREADS``,
        ``threadpoolctl.threadpool_limits``), -1 uses every CPU.
    random_state : int, RandomState or None, default=None
        Seed of the sample used to choose ``tau``.
    backend : {"local", "dask"}, default="local"
        Where the O(n^2) steps (neighbourhood selection, pool and vote) run:
        in this process, streamed over query blocks, or sharded over a
        dask.distributed cluster (``pip install 'mtlm[dask]'``). Both give
        bit-identical results.
    dask_client : str, distributed.Client or None, default=None
        With ``backend="dask"``: a scheduler address, a client, or None for the
        current client (:func:`distributed.get_client`). Prefer an address or
        None: :func:`sklearn.base.clone` cannot deep-copy a client. Each task
        runs the kernels with one thread; give the workers one thread per core.

    Attributes
    ----------
    base_distances_ : BaseDistances
        Fitted base distances (layout and normalisers).
    weights_shared_ : ndarray of shape (F,)
        Shared weights w_*.
    weights_label_ : ndarray of shape (M, F)
        Label-specific weights w_m.
    bias_ : ndarray of shape (M,)
        Label thresholds (0 for methods without a bias).
    tau_ : float
        Vote temperature used for prediction.
    tau_grid_ : ndarray or None
        Temperatures tried when ``tau="auto"`` (with ``tau_scores_``, their F1).
    n_iter_ : int
        Learning iterations (0 for JEC).
    objective_ : ndarray
        Objective after each accepted step (empty for JEC). For LMNN it is
        taken over the working set of impostors, so it may rise at a full
        re-check (every ``full_check_every`` iterations), when impostors that
        entered since the last check are counted.
    n_labels_in_ : int
        Number of labels M seen in fit.
    label_counts_ : ndarray of shape (M,)
        Training images of each label.
    proba_coef_, proba_intercept_ : ndarray of shape (M,)
        With ``probability=True``: the sigmoid of each label (``a_m``, ``b_m``).
    n_active_ : ndarray of shape (M,) or (1,)
        LMNN: active triplets per label at the end ((1,) for global-lmnn).
    n_triplets_ : int
        LMNN: candidate triplets.
    """

    def __init__(
        self,
        method="jec",
        *,
        n_labels=5,
        metrics=None,
        normalize="mean",
        k=4,
        gamma_shared=1.0,
        gamma_label=30.0,
        max_iter=None,
        tol=1e-6,
        constraints=None,
        overlap="dissimilar",
        max_dissimilar=50,
        step_size="block",
        normalize_loss=False,
        regularize_bias=True,
        tau="auto",
        vote="normalized",
        vote_scale="label",
        n_tune=1000,
        tau_select="leave-self-out",
        probability=False,
        k_pos=3,
        k_neg=20,
        mu=0.25,
        margin=0.1,
        label_budget=1.0,
        label_sum="equal",
        full_check_every=10,
        n_jobs=None,
        random_state=None,
        backend="local",
        dask_client=None,
    ):
        self.method = method
        self.n_labels = n_labels
        self.metrics = metrics
        self.normalize = normalize
        self.k = k
        self.gamma_shared = gamma_shared
        self.gamma_label = gamma_label
        self.max_iter = max_iter
        self.tol = tol
        self.constraints = constraints
        self.overlap = overlap
        self.max_dissimilar = max_dissimilar
        self.k_pos = k_pos
        self.k_neg = k_neg
        self.step_size = step_size
        self.normalize_loss = normalize_loss
        self.regularize_bias = regularize_bias
        self.tau = tau
        self.vote = vote
        self.vote_scale = vote_scale
        self.n_tune = n_tune
        self.tau_select = tau_select
        self.probability = probability
        self.mu = mu
        self.margin = margin
        self.label_budget = label_budget
        self.label_sum = label_sum
        self.full_check_every = full_check_every
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.backend = backend
        self.dask_client = dask_client

    def __sklearn_is_fitted__(self):
        # tune(refit=False) leaves tune_results_ etc. on an unfitted estimator
        return hasattr(self, "weights_shared_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = False  # Y is an (n, M) label matrix
        return tags

    # -- parameters --------------------------------------------------------------
    def _validate_params(self):
        check_choice(self.method, "method", METHODS)
        _check_random_state(self.random_state)
        self._validate_predict_params()
        check_int(self.n_tune, "n_tune", low=1)
        check_choice(self.tau_select, "tau_select", _TAU_SELECTS)
        check_float(self.gamma_shared, "gamma_shared", low=0.0)
        check_float(self.gamma_label, "gamma_label", low=0.0)
        check_int(self.max_iter, "max_iter", low=1, allow_none=True)
        check_float(self.tol, "tol", low=0.0)
        if self.constraints is not None:
            check_choice(self.constraints, "constraints", ("2pknn", "label"))
        check_choice(self.overlap, "overlap", ("dissimilar", "both", "shared"))
        check_int(self.max_dissimilar, "max_dissimilar", low=1, allow_none=True)
        check_int(self.k_pos, "k_pos", low=1)
        check_int(self.k_neg, "k_neg", low=1)
        check_choice(self.step_size, "step_size", ("block", "single"))
        for name in ("normalize_loss", "regularize_bias", "probability"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}.")
        if not (isinstance(self.tau, str) and self.tau == "auto"):
            check_float(self.tau, "tau", low=0.0, low_open=True)
        # every method's parameters, also those this method ignores: a bad
        # value is an error whatever the method (and a later set_params would
        # otherwise find it only after the training data were replaced)
        from mtlm._lmnn import check_lmnn_params

        check_lmnn_params(self)

    def _validate_predict_params(self):
        """The parameters prediction reads, which set_params may have changed."""
        check_int(self.n_labels, "n_labels", low=1)
        check_int(self.k, "k", low=1)
        check_choice(self.vote, "vote", _VOTES)
        check_choice(self.vote_scale, "vote_scale", ("label", "none"))
        check_choice(self.backend, "backend", _BACKENDS)
        effective_n_threads(self.n_jobs)

    # -- fitting -----------------------------------------------------------------
    def fit(self, X, y):
        """Learn the base-distance normalisers, the label metrics and ``tau``.

        Parameters
        ----------
        X : dict of str to array-like of shape (n, d_f), or array-like of shape (n, d)
            Training features: feature blocks by name, or one array (diagonal mode).
        y : array-like or sparse matrix of shape (n, M)
            Training label matrix Y, 0/1 (an image may have no label).

        Returns
        -------
        self : MTLMAnnotator
        """
        self._validate_params()
        blocks, names, diagonal = check_feature_blocks(X, "X")
        n = blocks[0].shape[0]
        Y = check_label_matrix(y, n, "y", allow_empty=False)
        n_threads = effective_n_threads(self.n_jobs)
        # a fit forgets everything an earlier fit or search left (an LMNN
        # fit's n_active_ must not survive a refit as JEC)
        forget_fit(self)
        if Y.shape[1] == 1 and self.vote == "normalized":
            warn_at_caller(
                "y has a single label: the pool holds only images that carry it, "
                'so every normalised vote is 1; use vote="raw" for scores that rank.',
                UserWarning,
            )

        try:
            bd = BaseDistances(metrics=self.metrics, normalize=self.normalize)
            bd._fit_blocks(
                blocks, names, diagonal, self.n_jobs, columns=block_columns(X, names)
            )
            self._set_training_data(bd, blocks, Y)
            F, M = bd.n_base_, Y.shape[1]
            if self.method == "jec":
                learned = equal_weights(F, M)
            else:
                learned = _run_learner(self, n_threads)
            self._set_weights(learned)
            self._choose_tau(n_threads)
            self._fit_probability(n_threads)
        except BaseException:
            # all or nothing: a half-replaced model (new data, old weights)
            # would predict garbage
            forget_fit(self)
            raise
        return self

    def tune(
        self,
        X,
        y,
        param_grid=None,
        *,
        holdout=0.1,
        scoring="f1",
        random_state=None,
        refit=True,
    ):
        """Choose parameters on a hold-out part of the training set, then fit.

        The training set is split once at random into a fit part and a
        hold-out part. Every grid point is fitted on the fit part as
        :meth:`fit` would (``tau`` included, chosen on fit-part images) and
        scored on the annotation of the hold-out images, which are never in a
        fit. The best point is set on the estimator (:meth:`get_params` shows
        it) and the estimator is refitted on all of ``X``. Test data play no
        part. Base distances are built once for the split, constraints once
        per constraint-relevant setting (``k`` for ``"2pknn"``, ``k_pos``,
        ``k_neg``, ...) and learned metrics are reused across points that
        differ only in the vote (``k`` for LMNN, ``tau``, ...).

        Parameters
        ----------
        X : dict of str to array-like of shape (n, d_f), or array-like of shape (n, d)
            Training features, as in :meth:`fit`.
        y : array-like or sparse matrix of shape (n, M)
            Training label matrix, as in :meth:`fit`.
        param_grid : dict of str to list, list of such dicts, or None, default=None
            Values to try per parameter; every combination of one dict is a
            grid point, a list of dicts searches the union (as
            :class:`sklearn.model_selection.ParameterGrid`, but in the given
            key order). Parameters not in a point keep the estimator's values.
            None uses :func:`mtlm.default_grid` ``(method)``: a regularisation
            parameter (``gamma_label`` for MTLM/local LDML, ``gamma_shared``
            for the global methods, ``mu`` for MTLM/local LMNN) and
            ``k in {4, 8}``; JEC searches ``k in {2, 4, 8}``. ``method``,
            ``n_labels``, ``n_jobs``, ``random_state``, ``backend`` and
            ``dask_client`` cannot be searched.
        holdout : float or int, default=0.1
            Size of the hold-out part: a fraction in (0, 1) of the images, or
            a number of images.
        scoring : {"f1", "miap"}, default="f1"
            Hold-out measure to maximise: F1 of the top-``n_labels``
            annotation, or MiAP of the label scores
            (:func:`mtlm.metrics.annotation_scores`). Ties go to the first
            grid point.
        random_state : int, RandomState or None, default=None
            Seed of the split; None uses the estimator's ``random_state``.
        refit : bool, default=True
            Fit on all of ``X`` with the best parameters. False only records
            the search (and sets the best parameters): the estimator is left
            unfitted, any earlier fit forgotten, e.g. to repeat the search over
            several splits cheaply.

        Returns
        -------
        self : MTLMAnnotator
            Fitted on all of ``X`` with the best parameters (unless
            ``refit=False``).

        Raises
        ------
        ValueError
            On an unknown or unsearchable parameter, an empty grid or value
            list, a bad value in a grid point, a ``holdout`` outside (0, 1)
            (or [1, n - 1] images), a split part without any labelled image,
            or a bad ``scoring``.

        Notes
        -----
        Besides the attributes of :meth:`fit`, sets

        ``tune_results_`` : dict
            One entry per grid point, in grid order: ``"params"`` (dicts),
            ``"param_<name>"`` (the value used for every searched name),
            ``"score"`` (hold-out ``scoring``), ``"rank"`` (1 = best),
            ``"f1"``, ``"miap"``, ``"n_plus"`` (hold-out F1, MiAP and N+),
            ``"tau"``, ``"n_iter"``, ``"converged"`` (False if the learner
            stopped at ``max_iter``), ``"fit_time"`` and ``"score_time"``
            (seconds; the fit time of the first point of a constraint set
            includes building it).
        ``best_params_`` : dict
            The chosen grid point.
        ``best_score_`` : float
            Its hold-out score.
        ``best_index_`` : int
            Its index in ``tune_results_``.
        ``tune_scoring_`` : str
            ``scoring``.
        ``tune_holdout_indices_`` : ndarray of int
            Rows of ``X`` held out during the search.
        ``tune_time_`` : float
            Seconds of the search, without the final refit.

        A later :meth:`fit` removes them. The search uses the estimator's
        ``n_jobs`` and backend; logging (``mtlm._tuning`` at INFO) reports
        every point.

        Examples
        --------
        >>> est = MTLMAnnotator("mtlm-ldml", random_state=0)  # doctest: +SKIP
        >>> est.tune(X, Y, {"gamma_label": [1, 30, 1000]})  # doctest: +SKIP
        >>> est.best_params_, est.get_params()["gamma_label"]  # doctest: +SKIP
        """
        from mtlm._tuning import tune

        return tune(
            self,
            X,
            y,
            param_grid,
            holdout=holdout,
            scoring=scoring,
            random_state=random_state,
            refit=refit,
        )

    def _set_training_data(self, bd, blocks, Y, prepared=None):
        """Keep what prediction needs: base distances, training images, groups.

        ``prepared`` (the blocks already through ``bd._prepare``) spares the
        preparation when several fits share one set of base distances.
        """
        self.base_distances_ = bd
        self._train_blocks_raw = blocks
        if prepared is None:
            prepared = [bd._prepare(b, m) for b, m in zip(blocks, bd.metrics_)]
        self._train_blocks = prepared
        self._groups = LabelGroups.from_labels(Y)
        self.Y_train_ = Y
        self.n_labels_in_ = Y.shape[1]
        self.label_counts_ = self._groups.sizes.astype(np.intp)
        self.n_features_in_ = int(sum(bd.dims_))

    def _set_weights(self, learned):
        self.weights_shared_ = np.asarray(learned.weights_shared, dtype=np.float64)
        self.weights_label_ = np.asarray(learned.weights_label, dtype=np.float64)
        self.bias_ = np.asarray(learned.bias, dtype=np.float64)
        self.n_iter_ = int(learned.n_iter)
        self.objective_ = np.asarray(learned.objective, dtype=np.float64)
        for name, value in learned.extra.items():  # e.g. LMNN's n_active_
            setattr(self, name, value)

    def _set_fitted(self, bd, blocks, Y, learned, tau, tau_grid=None, tau_scores=None):
        """Restore a fitted state (used by :func:`mtlm.load_model`)."""
        self._set_training_data(bd, blocks, Y)
        self._set_weights(learned)
        self.tau_ = tau
        self.tau_grid_ = tau_grid
        self.tau_scores_ = tau_scores

    def save(self, path, *, label_names=None, info=None):
        """Write the fitted model to a pickle-free ``.npz`` file.

        Parameters
        ----------
        path : str or path-like
            Destination; written atomically (temporary file, then rename).
        label_names : list of str or None
            Names of the M labels, stored with the model.
        info : dict or None
            JSON-serialisable extra metadata (e.g. evaluation scores).

        Returns
        -------
        path : str
        """
        check_is_fitted(self, "weights_shared_")
        from mtlm._persistence import save_model

        return save_model(self, path, label_names=label_names, info=info)

    def _metric_weights(self):
        """(1, F) when every label shares one metric, else (M, F)."""
        if not self.weights_label_.any():
            return self.weights_shared_[None, :]
        return self.weights_shared_[None, :] + self.weights_label_

    def _choose_tau(self, n_threads):
        if not (isinstance(self.tau, str) and self.tau == "auto"):
            self.tau_ = float(self.tau)
            self.tau_grid_ = None
            self.tau_scores_ = None
            return
        rng = check_random_state(self.random_state)
        grid = (
            _typical_distance(self._metric_weights(), self.base_distances_.base_means_)
            * _TAU_GRID
        )
        held_out = self.tau_select == "held-out" and self.method != "jec"
        scored = self._tau_held_out(rng, n_threads) if held_out else None
        if scored is None:  # leave-self-out (also when no held-out split works)
            scored = self._tau_leave_self_out(rng, grid, n_threads)
        f1, n_scored, how = scored
        best = int(np.argmax(f1))
        self.tau_grid_ = grid
        self.tau_ = float(grid[best])
        self.tau_scores_ = f1
        logger.info(
            "tau chosen on %d training images (%s): %.4g (F1 %.3f)",
            n_scored,
            how,
            self.tau_,
            f1[best],
        )

    def _fit_probability(self, n_threads):
        """The label sigmoids on every training image's leave-self-out scores."""
        if not self.probability:
            return
        n = self.Y_train_.shape[0]
        scores = self._scores(
            self._train_blocks, [self.tau_], n_threads, exclude=np.arange(n)
        )[0]
        # raw votes have no fixed range: fit each label on its scores / max
        scale = scores.max(axis=0) if self.vote == "raw" else None
        self.proba_coef_, self.proba_intercept_ = fit_label_sigmoids(
            scores, self.Y_train_, score_scale=scale
        )

    def _tau_leave_self_out(self, rng, grid, n_threads):
        """F1 per tau of ``grid`` of training images voting among the others."""
        n = self.Y_train_.shape[0]
        sample = np.sort(rng.choice(n, size=min(n, self.n_tune), replace=False))
        Pq = [b[sample] for b in self._train_blocks]
        scores = self._scores(Pq, grid, n_threads, exclude=sample)
        f1 = _f1_per_tau(self.Y_train_[sample], scores, self.n_labels)
        return f1, sample.size, "leave-self-out"

    def _tau_held_out(self, rng, n_threads):
        """F1 per relative tau of held-out images under a metric learned without them.

        None when the split leaves no labelled image on either side.
        """
        Y = self.Y_train_
        n = Y.shape[0]
        n_hold = min(self.n_tune, n // 5)
        if n_hold == 0:
            return None
        hold = np.sort(rng.choice(n, size=n_hold, replace=False))
        rest = np.setdiff1d(np.arange(n), hold)
        if not Y[hold].any() or not Y[rest].any():
            return None
        sub = type(self)(**self.get_params(deep=False))
        sub._set_training_data(
            self.base_distances_,
            [b[rest] for b in self._train_blocks_raw],
            Y[rest],
            prepared=[b[rest] for b in self._train_blocks],
        )
        with warnings.catch_warnings():
            # the fit on all images reports convergence and zero metrics itself
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            learned = _run_learner(sub, n_threads)
        sub._set_weights(learned)
        grid = (
            _typical_distance(sub._metric_weights(), self.base_distances_.base_means_)
            * _TAU_GRID
        )
        scores = sub._scores([b[hold] for b in self._train_blocks], grid, n_threads)
        return _f1_per_tau(Y[hold], scores, self.n_labels), hold.size, "held out"

    def _neighbourhood_functions(self, n_threads):
        """``(group_neighbours, pool_scores, n_threads)`` of the chosen backend.

        Both functions have the signatures of :mod:`mtlm._neighbourhoods`;
        learners call the first one for their training neighbourhoods.
        """
        if self.backend == "local":
            return group_neighbours, pool_scores, n_threads
        from mtlm._dask import dask_group_neighbours, dask_pool_scores, resolve_client

        client = resolve_client(self.dask_client)
        return (
            partial(dask_group_neighbours, client=client),
            partial(dask_pool_scores, client=client),
            1,
        )

    def _scores(self, Pq, taus, n_threads, exclude=None):
        W = self._metric_weights()
        _, pool_scores, n_threads = self._neighbourhood_functions(n_threads)
        W_vote = W
        if self.vote_scale == "label" and W.shape[0] > 1:
            # Same effective temperature for every label: D_m / tau with
            # D_m scaled to the mean total weight (pools are unchanged). A
            # label whose metric is 0 has nothing to scale and is left out of
            # the mean, so that it does not change the others' temperature.
            s = W.sum(axis=1)
            pos = s > 0
            mean = s[pos].mean() if pos.any() else 1.0
            W_vote = W * np.where(pos, mean / np.where(pos, s, 1.0), 1.0)[:, None]
        return pool_scores(
            self.base_distances_,
            Pq,
            self._train_blocks,
            W,
            W_vote,
            self._groups,
            self.Y_train_,
            self.k,
            taus,
            raw=self.vote == "raw",
            exclude=exclude,
            n_threads=n_threads,
        )

    # -- prediction ----------------------------------------------------------------
    def decision_function(self, X):
        """Label scores of each image (higher means more likely).

        Parameters
        ----------
        X : dict of str to array-like, or array-like
            Features laid out as in :meth:`fit`.

        Returns
        -------
        scores : ndarray of shape (n, M)
            Normalised votes in [0, 1] (or raw votes with ``vote="raw"``).
        """
        check_is_fitted(self, "weights_shared_")
        self._validate_predict_params()
        Pq = self.base_distances_.check(X, "X")
        n_threads = effective_n_threads(self.n_jobs)
        scores = self._scores(Pq, [self.tau_], n_threads)[0]
        if self.vote == "raw" and scores.size:
            # every pool holds images of each label, so a row of zeros means
            # exp(-D / tau) underflowed for the whole pool
            dead = int((scores.max(axis=1) <= 0).sum())
            if dead:
                warn_at_caller(
                    f"vote='raw': every vote of {dead} of {scores.shape[0]} "
                    f"image(s) underflowed to 0 at tau={self.tau_:.4g} (their "
                    f"labels are then the first ones); raise tau, use "
                    f"tau='auto' or vote='normalized'.",
                    RuntimeWarning,
                )
        return scores

    @available_if(lambda est: est.probability)
    def predict_proba(self, X):
        """Probability of each label for each image (needs ``probability=True``).

        Parameters
        ----------
        X : dict or array-like
            As in :meth:`decision_function`.

        Returns
        -------
        proba : ndarray of shape (n, M)
            ``sigmoid(proba_coef_ * decision_function(X) + proba_intercept_)``,
            label by label; rows need not sum to 1 (an image has several labels).
        """
        check_is_fitted(self, "weights_shared_")
        if not hasattr(self, "proba_coef_"):
            raise NotFittedError(
                "predict_proba needs the label sigmoids, which fit makes only with "
                "probability=True: this model was fitted with probability=False; "
                "fit it again."
            )
        return label_probabilities(
            self.decision_function(X), self.proba_coef_, self.proba_intercept_
        )

    def predict(self, X):
        """Annotate each image with its ``n_labels`` highest-scoring labels.

        Returns
        -------
        Y_pred : ndarray of shape (n, M), uint8
            Exactly ``min(n_labels, M)`` ones per row; ties go to the lower
            label index.
        """
        return top_k_annotation(self.decision_function(X), self.n_labels)

    def score(self, X, y):
        """F1 at ``n_labels`` (ALGORITHM.md section 6) of the annotation of X.

        Parameters
        ----------
        X : dict of str to array-like, or array-like
            Features laid out as in :meth:`fit`.
        y : array-like or sparse matrix of shape (n, M)
            True 0/1 label matrix.

        Returns
        -------
        score : float
        """
        scores = self.decision_function(X)
        Y = check_label_matrix(y, scores.shape[0], "y", n_labels=scores.shape[1])
        return _f1_or_zero(Y, top_k_annotation(scores, self.n_labels))


def _check_random_state(value):
    """random_state as scikit-learn takes it, with an error that names it."""
    try:
        check_random_state(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"random_state must be None, an int in [0, 2**32 - 1] or a "
            f"numpy RandomState, got {value!r} ({exc})."
        ) from exc


def _typical_distance(W, base_means):
    """Mean over labels of the mean learned distance ``W_m . E[d]`` of training
    pairs (``sum(w)`` for mean-normalised base distances). An all-zero metric
    (every distance 0) votes the same for any tau, so 1 then."""
    scale = float(np.mean(W @ base_means))
    return scale if scale > 0 else 1.0


def _f1_per_tau(Y, scores, n_labels):
    return np.array([_f1_or_zero(Y, top_k_annotation(s, n_labels)) for s in scores])


def _f1_or_zero(Y_true, Y_pred):
    if not Y_true.any():
        return 0.0
    return annotation_scores(Y_true, Y_pred)["F1"]

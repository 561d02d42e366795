# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""SeAClassifierCV: SeA with its perturbation strength chosen by CV in one pass."""

import numbers
import re

import numpy as np
from scipy.stats import rankdata
from sklearn.base import _fit_context
from sklearn.metrics import check_scoring
from sklearn.model_selection import check_cv
from sklearn.utils._param_validation import StrOptions

from skfeat._engine import SeAMultiHeadNet
from skfeat.nn import MultiLinearHead
from skfeat.probing._sea import (
    PREDICT_CHUNK_ROWS,
    SHARED_PARAMETER_DOCS,
    BaseSeA,
    SeAClassifier,
    _normalize_rows,
)
from skfeat.utils import seeded, torch_threads
from skfeat.utils._docstring import fill_parameter_docs


def _etas_and_best(cv_results):
    """Return the candidate etas and the indices of those of best mean score."""
    etas = np.asarray(cv_results["param_eta"], dtype=np.float64)
    return etas, np.flatnonzero(cv_results["rank_test_score"] == 1)


def select_first(cv_results):
    """Choose as GridSearchCV: the first eta, in ``etas`` order, of best mean score."""
    return int(np.argmin(cv_results["rank_test_score"]))


def select_smallest(cv_results):
    """Choose the smallest eta among those of best mean score."""
    etas, best = _etas_and_best(cv_results)
    return int(best[np.argmin(etas[best])])


def select_largest(cv_results):
    """Choose the largest eta among those of best mean score."""
    etas, best = _etas_and_best(cv_results)
    return int(best[np.argmax(etas[best])])


def select_one_se(cv_results):
    """Choose the largest eta whose mean score is within one SE of the best.

    The standard error is that of the best eta's mean over the folds: the
    sample standard deviation (``ddof=1``) of its split scores divided by the
    square root of the number of splits; zero with a single split.
    """
    etas = np.asarray(cv_results["param_eta"], dtype=np.float64)
    splits = np.column_stack(
        [
            cv_results[key]
            for key in cv_results
            if re.fullmatch(r"split\d+_test_score", key)
        ]
    )
    means = cv_results["mean_test_score"]
    best = select_first(cv_results)
    n_splits = splits.shape[1]
    se = splits[best].std(ddof=1) / np.sqrt(n_splits) if n_splits > 1 else 0.0
    close = np.flatnonzero(means >= means[best] - se)
    return int(close[np.argmax(etas[close])])


def select_margin(cv_results):
    """Choose among the etas of best mean score the one of largest mean margin."""
    _, best = _etas_and_best(cv_results)
    return int(best[np.argmax(cv_results["mean_test_margin"][best])])


def _margins(logits, codes):
    """Per row, the true class's logit minus the largest other logit."""
    rows = np.arange(len(codes))
    others = logits.copy()
    others[rows, codes] = -np.inf
    return logits[rows, codes] - others.max(axis=1)


def _fold_accuracy_and_margin(X, codes, sample_weight, test, coefs):
    """Weighted accuracy and mean margin of every head on the rows ``test``.

    ``coefs`` (E, C, d) are one fold's heads.  The rows are read
    ``PREDICT_CHUNK_ROWS`` at a time, so no copy of the fold is made.
    """
    correct, margin = np.zeros((2, len(coefs)))
    for start in range(0, len(test), PREDICT_CHUNK_ROWS):
        rows = test[start : start + PREDICT_CHUNK_ROWS]
        features = _normalize_rows(X[rows].astype(np.float64))
        weights = sample_weight[rows]
        for e, coef in enumerate(coefs):
            logits = features @ coef.T
            correct[e] += weights @ (logits.argmax(axis=1) == codes[rows])
            margin[e] += weights @ _margins(logits, codes[rows])
    total = sample_weight[test].sum()
    return correct / total, margin / total


SELECTION_RULES = {
    "margin": select_margin,
    "first": select_first,
    "smallest": select_smallest,
    "largest": select_largest,
    "one_se": select_one_se,
}


@fill_parameter_docs(SHARED_PARAMETER_DOCS)
class SeAClassifierCV(BaseSeA):
    """SeA classifier whose ``eta`` is chosen by cross-validation in one pass.

    Trains one linear head per (eta, fold) pair **together**: one weight
    tensor of shape (heads, classes, features), each fold's own mini-batch
    order shared by its heads, and the SeA step of all heads computed at once
    through the batch's Gram matrix (see
    :func:`skfeat.nn.multihead_sea_logits`).  ``eta_`` is chosen from the
    validation scores by the ``selection`` rule; with ``refit=True`` one head
    of that eta is then trained on all the data, with exactly the batches a
    separate ``SeAClassifier(eta=eta_, random_state=...)`` fit would see.

    Read more in the :ref:`User Guide <sea_classifier_cv>` (section
    "One pass over every ``eta``: ``SeAClassifierCV``" of
    ``docs/user_guide.rst``).

    Parameters
    ----------
    etas : tuple of float, default=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2)
        Candidate perturbation strengths; including 0 keeps the plain probe in
        the race.
    cv : int, cross-validation generator or iterable, default=3
        Splits of the training data, as in ``GridSearchCV`` (stratified
        K-fold for an int).
    scoring : str or callable, default=None
        Validation score; None is accuracy.
    refit : bool, default=True
        Train the all-data heads and keep the chosen one as the model.  With
        False, only ``cv_results_`` and ``eta_`` are computed and the
        estimator cannot predict.
    selection : {"margin", "first", "smallest", "largest", "one_se"} or \
            callable, default="margin"
        How ``eta_`` is chosen from ``cv_results_``.  All named rules but
        ``"one_se"`` choose among the etas of best mean score (rank 1), so an
        eta worse in validation, such as a collapsed one, is never chosen:

        - ``"margin"``: the one of largest ``mean_test_margin`` (validation
          margin; unrelated to the ``margin`` training parameter).
        - ``"first"``: the first of them in ``etas`` order: ``GridSearchCV``'s
          rule, so that ``SeAClassifierCV(etas=etas, selection="first")``
          chooses as ``GridSearchCV(SeAClassifier(), {"eta": list(etas)})``.
        - ``"smallest"``: the smallest of them (the rule before issue 13).
        - ``"largest"``: the largest of them.
        - ``"one_se"``: the largest eta whose mean score is at least the best
          mean score minus one standard error: the sample standard deviation
          (``ddof=1``) of the best eta's split scores over the square root of
          ``n_splits_``.
        - callable: called with ``cv_results_``, returns the index of the
          chosen eta, like ``GridSearchCV``'s callable ``refit``.

        See the User Guide for the measurements behind the default.
    {alpha}
    {temperature}
    {margin}
    {lr}
    {momentum}
    {weight_decay}
    {max_epochs}
    {batch_size}
        Every head trains on the rows of the shared batch that lie in its
        training fold.
    {precision}
    {device}
    {random_state}
    {verbose}

    Attributes
    ----------
    eta_ : float
        The perturbation strength chosen from ``cv_results_`` by
        ``selection``; with the default ``"margin"``, the eta of best mean
        validation score and, among ties, of largest mean validation margin.
    best_score_ : float
        Mean validation score of ``eta_`` (the best one, except with
        ``selection="one_se"`` or a callable).
    cv_results_ : dict of ndarray
        Per eta: ``param_eta``, ``params``, ``split<k>_test_score``,
        ``mean_test_score``, ``std_test_score`` (``ddof=0``) and
        ``rank_test_score``, as in ``GridSearchCV``, and
        ``mean_test_margin``: over the folds, the mean over validation rows
        of the true class's logit minus the largest other logit.  The ranks
        order the mean scores only; ``eta_`` is the first eta of rank 1 only
        with ``selection="first"``.
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    coef_ : ndarray of shape (n_classes, n_features)
        Weights of the chosen all-data head (with ``refit=True``).
    cv_coefs_ : ndarray of shape (n_splits, n_etas, n_classes, n_features)
        Weights of every fold's head for every eta, as trained on the fold's
        training rows.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during ``fit``, when ``X`` has string column
        names.
    n_splits_ : int
        Number of cross-validation splits.
    n_iter_ : int
        Number of epochs run.
    loss_curve_ : list of float
        Mean training loss per epoch of the all-data head (with
        ``refit=False``: the sum over the fold heads).
    net_ : skorch.NeuralNet
        The private training engine of the all-data head (with
        ``refit=False``: of the fold heads).

    See Also
    --------
    SeAClassifier : One SeA fit with a given eta.

    Notes
    -----
    With few labels, validation accuracies often tie (100% for most etas on
    an easy split).  ``GridSearchCV``'s rule, and the former rule of ties to
    the smallest eta, then fall back to whichever eta is listed first or to
    the plain probe (eta = 0).  The default breaks ties by the validation
    margin, a continuous score; on Lite0 features of four real datasets it
    was the best of the rules compared (see the User Guide).

    Each fold's head equals a ``SeAClassifier`` trained on that fold with the
    same seed and the same batches (the fold's rows of the shared batches);
    with ``batch_size`` at least the number of samples, that is exactly a
    separate full-batch fit.

    Examples
    --------
    >>> from skfeat import SeAClassifierCV
    >>> from skfeat.datasets import make_lowshot_features
    >>> X, _, y, _ = make_lowshot_features(n_classes=4, random_state=0)
    >>> clf = SeAClassifierCV(etas=(0.0, 0.8), max_epochs=30, random_state=0).fit(X, y)
    >>> clf.cv_results_["mean_test_score"]
    array([1., 1.])

    Both etas classify every validation row correctly; the tie goes to the
    larger mean validation margin, SeA's:

    >>> clf.cv_results_["mean_test_margin"].round(1)
    array([1.4, 2.1])
    >>> clf.eta_, clf.coef_.shape
    (0.8, (4, 64))
    """

    _parameter_constraints = {
        **BaseSeA._parameter_constraints,
        "etas": ["array-like"],
        "cv": ["cv_object"],
        "scoring": [str, callable, None],
        "refit": ["boolean"],
        "selection": [StrOptions(set(SELECTION_RULES)), callable],
    }

    def __init__(
        self,
        *,
        etas=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2),
        cv=3,
        scoring=None,
        refit=True,
        selection="margin",
        alpha=0.01,
        temperature=0.1,
        margin=0.0,
        lr=1.6,
        momentum=0.9,
        weight_decay=1e-6,
        max_epochs=100,
        batch_size=256,
        precision="auto",
        device="auto",
        random_state=None,
        verbose=0,
    ):
        self.etas = etas
        self.cv = cv
        self.scoring = scoring
        self.refit = refit
        self.selection = selection
        self.alpha = alpha
        self.temperature = temperature
        self.margin = margin
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.precision = precision
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _probe(self, eta=0.8):
        shared = set(BaseSeA._parameter_constraints)
        return SeAClassifier(eta=eta, **{name: getattr(self, name) for name in shared})

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Train all (eta, fold) heads in one pass, choose eta, train its all-data head.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features; rows are L2-normalised internally.
        y : array-like of shape (n_samples,)
            Labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights, read as multiplicities in training (as in
            :class:`SeAClassifier`) and weighting the validation scores and
            margins.

        Returns
        -------
        self : object
            The fitted classifier.
        """
        etas = np.asarray(self.etas, dtype=np.float64).ravel()
        if etas.size == 0 or not np.all(np.isfinite(etas)) or np.any(etas < 0):
            raise ValueError(
                "etas must be a non-empty sequence of finite values >= 0; "
                f"got {self.etas!r}."
            )
        seed, device, dtype = self._training_context(X)
        X, codes, sample_weight, classes = self._validate_training_data(
            X, y, sample_weight
        )
        folds = list(check_cv(self.cv, codes, classifier=True).split(X, codes))
        context = dict(n_classes=len(classes), seed=seed, device=device, dtype=dtype)
        net = self._train_heads(
            X,
            codes,
            sample_weight,
            self._fold_masks(len(codes), folds),
            etas,
            **context,
        )
        coefs = net.module_.weights().detach().cpu().numpy()
        self.classes_ = classes
        self.n_splits_ = len(folds)
        self.cv_coefs_ = coefs.reshape(len(folds), len(etas), *coefs.shape[1:])
        best = self._record_cv_results(X, codes, sample_weight, etas, folds)
        if not self.refit:
            self._record_training(net, None)
            return self
        # The all-data head of the chosen eta alone: training every eta's
        # would cost a third more steps (issue 19).
        final = self._train_heads(
            X, codes, sample_weight, np.ones((len(codes), 1)), etas[[best]], **context
        )
        self._record_training(final, final.module_.weights()[0].detach().cpu().numpy())
        return self

    def _train_heads(
        self, X, codes, sample_weight, masks, etas, *, n_classes, seed, device, dtype
    ):
        """Train one head per (group of ``masks``, eta) together; return the engine."""
        net = SeAMultiHeadNet(
            MultiLinearHead,
            module__n_features=X.shape[1],
            module__n_classes=n_classes,
            module__n_groups=masks.shape[1],
            module__heads_per_group=len(etas),
            train_split=None,
            etas=tuple(float(eta) for eta in etas),
            **self._engine_parameters(seed, device, dtype),
        )
        if self.verbose == 1:  # the training loss sums every head's
            net.set_params(callbacks__progress__heads=masks.shape[1] * len(etas))
        with torch_threads(), seeded(seed, device):
            # The engine normalises the rows batch by batch: no copy of X.
            net.fit({"x": X, "m": masks, "w": sample_weight}, codes)
        return net

    def _fold_masks(self, n_samples, folds):
        """0/1 row masks (n, n_folds) of each fold's training rows."""
        masks = np.zeros((n_samples, len(folds)))
        for k, (train, _) in enumerate(folds):
            masks[train, k] = 1.0
        return masks

    def _record_cv_results(self, X, codes, sample_weight, etas, folds):
        """Score every fold's heads on its validation rows; return the chosen index."""
        scores, margins = np.empty((2, len(etas), len(folds)))
        for k, (_, test) in enumerate(folds):
            heads = self.cv_coefs_[k]
            accuracy, margins[:, k] = _fold_accuracy_and_margin(
                X, codes, sample_weight, test, heads
            )
            if self.scoring is None:  # accuracy, as the probes' score
                scores[:, k] = accuracy
            else:
                scores[:, k] = self._fold_scores(X, codes, sample_weight, test, heads)
        means = scores.mean(axis=1)
        ranks = rankdata(-means, method="min").astype(np.int32)  # as GridSearchCV
        self.cv_results_ = {
            "param_eta": np.ma.MaskedArray(etas, mask=False),
            "params": [{"eta": float(eta)} for eta in etas],
            **{f"split{k}_test_score": scores[:, k] for k in range(len(folds))},
            "mean_test_score": means,
            "std_test_score": scores.std(axis=1),
            "rank_test_score": ranks,
            "mean_test_margin": margins.mean(axis=1),
        }
        best = self._select(self.cv_results_)
        self.eta_ = float(etas[best])
        self.best_score_ = float(means[best])
        return best

    def _fold_scores(self, X, codes, sample_weight, test, heads):
        """``scoring`` of every head of a fold on its validation rows."""
        scorer = check_scoring(self._probe(), scoring=self.scoring)
        scores = []
        for coef in heads:
            head = self._probe()
            head.classes_, head.coef_ = self.classes_, coef
            head.n_features_in_ = X.shape[1]
            scores.append(
                scorer(
                    head,
                    X[test],
                    self.classes_[codes[test]],
                    sample_weight=sample_weight[test],
                )
            )
        return scores

    def _select(self, cv_results):
        rule = self.selection
        best = (rule if callable(rule) else SELECTION_RULES[rule])(cv_results)
        if not isinstance(best, numbers.Integral) or not 0 <= best < len(
            cv_results["params"]
        ):
            raise ValueError(
                "selection must return the index of an eta in cv_results_, an "
                f"int in [0, {len(cv_results['params'])}); got {best!r}."
            )
        return int(best)

    def _logits(self, X):
        if not self.refit:
            raise AttributeError(
                "SeAClassifierCV(refit=False) keeps no final model; use refit=True "
                "to predict."
            )
        return super()._logits(X)

# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""SteeredTTAClassifier: test-time augmentation in embedding space."""

from numbers import Integral

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    MetaEstimatorMixin,
    _fit_context,
    clone,
)
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.validation import check_is_fitted


class SteeredTTAClassifier(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """Classify with test-time augmentation applied in embedding space.

    ``fit`` fits ``classifier`` on the extractor's embeddings of ``X``.
    ``predict_proba`` embeds each input once, steers the embedding by K
    augmentation parameter vectors (``extractor.transform_augmented``) and
    averages the classifier's probabilities over the K steered embeddings:
    the cost of one encoder pass instead of K.

    Parameters
    ----------
    extractor : EquivariantExtractor
        The steerable extractor.  Used as it is when already fitted (wrap it
        in :class:`sklearn.frozen.FrozenEstimator` to keep it so inside
        :class:`~sklearn.model_selection.GridSearchCV`, which clones its
        estimators); otherwise a clone is fitted on ``fit``'s ``X`` and ``y``.
    classifier : estimator with ``predict_proba``
        Classifier of the (unsteered) embeddings; a clone is fitted.
    n_augmentations : int, default=50
        Number K of augmentations drawn with ``extractor.sample_params`` when
        ``params_list`` is None.
    params_list : array-like of shape (K, n_params), default=None
        The augmentation parameter vectors, in the extractor's ``steered``
        order; None draws ``n_augmentations`` of them from ``random_state``.
    random_state : int, RandomState instance or None, default=None
        Seed of the drawn augmentations.

    Attributes
    ----------
    extractor_ : EquivariantExtractor
        The fitted extractor.
    classifier_ : estimator
        The fitted classifier.
    params_list_ : ndarray of shape (K, n_params)
        The augmentations used by ``predict_proba``.
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    n_features_in_ : int
        Number of input columns; only for vector extractors.

    See Also
    --------
    skfeat.EquivariantExtractor : The steerable embeddings.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skfeat import EquivariantExtractor, SteeredTTAClassifier
    >>> rng = np.random.RandomState(0)
    >>> X, y = rng.randn(64, 8).astype(np.float32), rng.randint(2, size=64)
    >>> extractor = EquivariantExtractor(
    ...     "mlp", steered=("scale",), max_epochs=1, batch_size=32, random_state=0)
    >>> tta = SteeredTTAClassifier(
    ...     extractor, LogisticRegression(), n_augmentations=5, random_state=0)
    >>> tta.fit(X, y).predict_proba(X[:2]).shape
    (2, 2)
    """

    _parameter_constraints = {
        "extractor": [HasMethods(["fit", "transform", "transform_augmented"])],
        "classifier": [HasMethods(["fit", "predict_proba"])],
        "n_augmentations": [Interval(Integral, 1, None, closed="left")],
        "params_list": ["array-like", None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        extractor,
        classifier,
        *,
        n_augmentations=50,
        params_list=None,
        random_state=None,
    ):
        self.extractor = extractor
        self.classifier = classifier
        self.n_augmentations = n_augmentations
        self.params_list = params_list
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y):
        """Fit the classifier on the embeddings (and the extractor if unfitted).

        Parameters
        ----------
        X : array-like, sequence of images or torch.utils.data.Dataset
            Training inputs of the extractor.
        y : array-like of shape (n_samples,)
            Class labels.

        Returns
        -------
        self : object
            The fitted classifier.
        """
        try:
            check_is_fitted(self.extractor)
            self.extractor_ = self.extractor
        except NotFittedError:
            self.extractor_ = clone(self.extractor).fit(X, y)
        if hasattr(self.extractor_, "n_features_in_"):
            self.n_features_in_ = self.extractor_.n_features_in_
        if self.params_list is None:
            params_list = self.extractor_.sample_params(
                self.n_augmentations, random_state=self.random_state
            )
        else:
            params_list = self._check_params_list()
        self.classifier_ = clone(self.classifier).fit(self.extractor_.transform(X), y)
        self.classes_ = self.classifier_.classes_
        self.params_list_ = params_list
        return self

    def _check_params_list(self):
        """Return ``params_list`` as float32 (K, n_params), or raise a ValueError."""
        width = self.extractor_.sample_params(1, random_state=0).shape[1]
        params = np.asarray(self.params_list, dtype=np.float32)
        if params.ndim != 2 or params.shape[0] < 1 or params.shape[1] != width:
            raise ValueError(
                f"params_list must have shape (K, {width}): one row per "
                f"augmentation, one column per steered parameter of the extractor "
                f"({width}); got shape {params.shape}."
            )
        if not np.isfinite(params).all():
            raise ValueError("params_list must be finite; it holds NaN or inf.")
        return params

    def predict_proba(self, X):
        """Mean class probabilities over the K steered embeddings of each input.

        Parameters
        ----------
        X : array-like, sequence of images or torch.utils.data.Dataset
            Inputs of the extractor.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``.
        """
        check_is_fitted(self)
        steered = self.extractor_.transform_augmented(X, self.params_list_)
        n, k, d = steered.shape
        proba = self.classifier_.predict_proba(steered.reshape(n * k, d))
        return proba.reshape(n, k, -1).mean(1)

    def predict(self, X):
        """Class of highest mean probability (see :meth:`predict_proba`).

        Parameters
        ----------
        X : array-like, sequence of images or torch.utils.data.Dataset
            Inputs of the extractor.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Predicted classes.
        """
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(1)]

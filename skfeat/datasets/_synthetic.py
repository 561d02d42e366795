# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Tiny offline generators of feature data for tests, examples and benchmarks."""

import numpy as np
from sklearn.utils import check_random_state


def make_lowshot_features(
    n_classes=10,
    n_features=64,
    n_train_per_class=5,
    n_test_per_class=200,
    n_nuisance=8,
    nuisance_scale=1.5,
    noise_scale=0.5,
    random_state=None,
):
    """Few-shot features with a shared nuisance subspace (SeA's synthetic task).

    Each sample is ``mu_c + B u + e``, L2-normalised, where the class means
    ``mu_c`` are random unit vectors, ``B`` is a random orthonormal
    ``(n_features, n_nuisance)`` basis shared by all classes,
    ``u ~ N(0, (nuisance_scale / sqrt(n_nuisance))^2 I)`` and
    ``e ~ N(0, (noise_scale / sqrt(n_features))^2 I)``.

    Parameters
    ----------
    n_classes : int, default=10
        Number of classes.
    n_features : int, default=64
        Feature dimension d.
    n_train_per_class, n_test_per_class : int, default=5, 200
        Samples per class in the training and test sets.
    n_nuisance : int, default=8
        Dimension of the shared nuisance subspace.
    nuisance_scale, noise_scale : float, default=1.5, 0.5
        Total standard deviations of the nuisance and isotropic noise.
    random_state : int, RandomState instance or None, default=None
        Seed of the generator.

    Returns
    -------
    X_train : ndarray of shape (n_classes * n_train_per_class, n_features)
        Training features, float32.
    X_test : ndarray of shape (n_classes * n_test_per_class, n_features)
        Test features, float32.
    y_train : ndarray of shape (n_classes * n_train_per_class,)
        Training labels.
    y_test : ndarray of shape (n_classes * n_test_per_class,)
        Test labels.

    Examples
    --------
    >>> from skfeat.datasets import make_lowshot_features
    >>> X_train, X_test, y_train, y_test = make_lowshot_features(random_state=0)
    >>> X_train.shape, X_test.shape
    ((50, 64), (2000, 64))
    """
    rng = check_random_state(random_state)
    means = rng.normal(size=(n_classes, n_features))
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    basis, _ = np.linalg.qr(rng.normal(size=(n_features, n_nuisance)))

    def sample(per_class):
        y = np.repeat(np.arange(n_classes), per_class)
        u = rng.normal(
            scale=nuisance_scale / np.sqrt(n_nuisance), size=(len(y), n_nuisance)
        )
        e = rng.normal(
            scale=noise_scale / np.sqrt(n_features), size=(len(y), n_features)
        )
        X = means[y] + u @ basis.T + e
        return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32), y

    X_train, y_train = sample(n_train_per_class)
    X_test, y_test = sample(n_test_per_class)
    return X_train, X_test, y_train, y_test

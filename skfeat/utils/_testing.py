# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Small, fast estimator instances for scikit-learn's common checks."""

import importlib

from sklearn.linear_model import LogisticRegression

# Parameters that make each public estimator fast enough for the common
# checks, which feed 2-D arrays of a few features: vector backbones, few
# epochs, small batches, fixed seeds.
INIT_PARAMS = {
    "DeepFeatureExtractor": {"model": "mlp", "weights": None},
    "SeAClassifier": {"max_epochs": 10, "random_state": 0},
    "SeAClassifierCV": {"etas": (0.0, 0.8), "max_epochs": 10, "random_state": 0},
    "AugSelfExtractor": {
        "model": "mlp",
        "base": "simclr",
        "aug_types": ("scale",),
        "head_hidden": 16,
        "max_epochs": 2,
        "batch_size": 32,
        "random_state": 0,
    },
    "EquivariantExtractor": {
        "model": "mlp",
        "steered": ("scale",),
        "max_epochs": 2,
        "batch_size": 32,
        "random_state": 0,
    },
}
INIT_PARAMS["SteeredTTAClassifier"] = {
    "classifier": LogisticRegression(),
    "n_augmentations": 4,
    "random_state": 0,
}
# Parameters that are skfeat estimators themselves, named here and built in
# checked_estimators: this module sits in skfeat.utils, below the estimators,
# and imports none of them at import time.
NESTED_ESTIMATORS = {"SteeredTTAClassifier": {"extractor": "EquivariantExtractor"}}

_ESTIMATOR_MODULES = {
    "DeepFeatureExtractor": "skfeat.extraction",
    "SeAClassifier": "skfeat.probing",
    "SeAClassifierCV": "skfeat.probing",
    "AugSelfExtractor": "skfeat.extraction",
    "EquivariantExtractor": "skfeat.extraction",
    "SteeredTTAClassifier": "skfeat.probing",
}


def checked_estimators():
    """Yield one fast instance of every public skfeat estimator.

    Yields
    ------
    estimator : BaseEstimator
        An unfitted instance built with :data:`INIT_PARAMS`.

    Examples
    --------
    >>> from skfeat.utils._testing import checked_estimators
    >>> [type(est).__name__ for est in checked_estimators()][:1]
    ['DeepFeatureExtractor']
    """
    for name in _ESTIMATOR_MODULES:
        yield _build(name)


def _build(name):
    """Build the estimator ``name`` with its INIT_PARAMS and nested estimators."""
    estimator_class = getattr(importlib.import_module(_ESTIMATOR_MODULES[name]), name)
    params = dict(INIT_PARAMS[name])
    for param, nested in NESTED_ESTIMATORS.get(name, {}).items():
        params[param] = _build(nested)
    return estimator_class(**params)

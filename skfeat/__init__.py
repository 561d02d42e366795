# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Learning on deep features with scikit-learn estimators.

skfeat turns pretrained vision models into scikit-learn transformers and trains
classifiers on their fixed features.  Public estimators are importable from the
top level; they are loaded lazily, so ``import skfeat`` neither initialises
CUDA nor loads a model.
"""

import importlib

from skfeat._version import __version__

_LAZY_ATTRIBUTES = {
    "AugSelfExtractor": "skfeat.extraction",
    "DeepFeatureExtractor": "skfeat.extraction",
    "EquivariantExtractor": "skfeat.extraction",
    "SeAClassifier": "skfeat.probing",
    "SeAClassifierCV": "skfeat.probing",
    "SteeredTTAClassifier": "skfeat.probing",
    "get_backbone": "skfeat.models",
    "list_backbones": "skfeat.models",
    "register_backbone": "skfeat.models",
}

__all__ = ["__version__", *_LAZY_ATTRIBUTES]


def __getattr__(name):
    if name in _LAZY_ATTRIBUTES:
        return getattr(importlib.import_module(_LAZY_ATTRIBUTES[name]), name)
    raise AttributeError(f"module 'skfeat' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))

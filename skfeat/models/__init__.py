# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Backbones: a registry of feature networks, torchvision models and weights."""

from skfeat.models import _builtin  # noqa: F401  (registers the built-in backbones)
from skfeat.models._backbone import Backbone, pool_features
from skfeat.models._preprocessing import ImagePreprocessing
from skfeat.models._registry import (
    get_backbone,
    list_backbones,
    list_layers,
    register_backbone,
)

__all__ = [
    "Backbone",
    "ImagePreprocessing",
    "get_backbone",
    "list_backbones",
    "list_layers",
    "pool_features",
    "register_backbone",
]

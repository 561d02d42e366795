# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Classifiers trained on fixed features."""

from skfeat.probing._sea import SeAClassifier
from skfeat.probing._sea_cv import SeAClassifierCV
from skfeat.probing._steered_tta import SteeredTTAClassifier

__all__ = ["SeAClassifier", "SeAClassifierCV", "SteeredTTAClassifier"]

# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Feature extractors: pretrained networks as scikit-learn transformers."""

from skfeat.extraction._augself import AugSelfExtractor
from skfeat.extraction._dask import dask_transform
from skfeat.extraction._deep import DeepFeatureExtractor
from skfeat.extraction._equivariant import EquivariantExtractor

__all__ = [
    "AugSelfExtractor",
    "DeepFeatureExtractor",
    "EquivariantExtractor",
    "dask_transform",
]

# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Pure-torch building blocks: tensors in, tensors out; no numpy or sklearn."""

from skfeat.nn._linear_heads import LinearHead, MultiLinearHead
from skfeat.nn._sea import (
    SeALoss,
    l2_normalize,
    sea_augment,
    sea_perturb,
    semantic_directions,
    semantic_weights,
)
from skfeat.nn._sea_multihead import multihead_sea_logits

__all__ = [
    "LinearHead",
    "MultiLinearHead",
    "SeALoss",
    "l2_normalize",
    "multihead_sea_logits",
    "sea_augment",
    "sea_perturb",
    "semantic_directions",
    "semantic_weights",
]

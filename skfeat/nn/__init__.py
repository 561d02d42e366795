# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Pure-torch building blocks: tensors in, tensors out; no numpy or sklearn."""

from skfeat.nn._augself import (
    AugSelfHead,
    AugSelfHeads,
    augself_head_loss,
    symmetrize,
)
from skfeat.nn._color import (
    ColorSteering,
    RelativeError,
    color_bilinear_pool,
    lightness_image,
)
from skfeat.nn._feature_aug import FeatureAugmenter
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
from skfeat.nn._ssl import (
    MoCoQueue,
    SSLModel,
    byol_loss,
    byol_momentum,
    moco_loss,
    momentum_update_,
    multi_positive_info_nce,
    nt_xent_loss,
    projection_mlp,
    simsiam_loss,
)
from skfeat.nn._steering import (
    DiscreteSteering,
    ExpmSteering,
    HyperSteering,
    equivariance_mse_loss,
    equivariance_nce_loss,
)

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
    # AugSelf, base SSL objectives and feature augmentation
    "AugSelfHead",
    "AugSelfHeads",
    "FeatureAugmenter",
    "MoCoQueue",
    "SSLModel",
    "augself_head_loss",
    "byol_loss",
    "byol_momentum",
    "moco_loss",
    "momentum_update_",
    "multi_positive_info_nce",
    "nt_xent_loss",
    "projection_mlp",
    "simsiam_loss",
    "symmetrize",
    # Steerable equivariant representations
    "ColorSteering",
    "DiscreteSteering",
    "ExpmSteering",
    "HyperSteering",
    "RelativeError",
    "color_bilinear_pool",
    "equivariance_mse_loss",
    "equivariance_nce_loss",
    "lightness_image",
]

# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Parametric augmentations: per-sample parameters, batched kernels, AugSelf targets."""

from skfeat.transforms._base import ParametricAugmentation
from skfeat.transforms._image import (
    ColorJitter,
    GaussianBlur,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomRot90,
)
from skfeat.transforms._pipeline import AugmentationPipeline
from skfeat.transforms._steered import SteeredAugmentation
from skfeat.transforms._vector import RandomCircularShift, RandomScale

__all__ = [
    "AugmentationPipeline",
    "ColorJitter",
    "GaussianBlur",
    "ParametricAugmentation",
    "RandomCircularShift",
    "RandomGrayscale",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "RandomRot90",
    "RandomScale",
    "SteeredAugmentation",
]

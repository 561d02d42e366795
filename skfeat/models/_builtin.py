# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Tiny built-in backbones for tests, doctests and examples."""

from torch import nn
from torchvision.transforms import InterpolationMode

from skfeat.models._preprocessing import ImagePreprocessing
from skfeat.models._registry import register_backbone
from skfeat.models._timm import efficientnet_lite0


def _reject_named_weights(name, weights):
    if weights is not None:
        raise ValueError(
            f"{name!r} has no pretrained weights; use weights=None or a path to a "
            f"local checkpoint; got weights={weights!r}."
        )


@register_backbone(
    "tiny_cnn",
    preprocessing=ImagePreprocessing(resize_size=32, crop_size=32),
    pretrained=False,
)
def tiny_cnn(weights=None):
    """Two strided convolutions and average pooling: 16 features, for tests."""
    _reject_named_weights("tiny_cnn", weights)
    return nn.Sequential(
        nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, kernel_size=3, stride=2, padding=1),
        nn.ReLU(),
    )


@register_backbone("mlp", input_kind="vector", pretrained=False)
def mlp(weights=None, in_features=None, hidden=32):
    """Build a two-layer perceptron on vectors: ``hidden`` features, for tests."""
    _reject_named_weights("mlp", weights)
    if in_features is None:
        raise ValueError("the 'mlp' backbone needs in_features.")
    return nn.Sequential(
        nn.Linear(in_features, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.Tanh(),
    )


register_backbone(
    "efficientnet_lite0",
    classifier=True,
    preprocessing=ImagePreprocessing(
        resize_size=256,
        crop_size=224,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        interpolation=InterpolationMode.BICUBIC,
    ),
)(efficientnet_lite0)

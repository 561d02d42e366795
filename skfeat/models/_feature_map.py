# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""The spatial feature map a backbone pools: found once, then read by a hook."""

import contextlib

import torch
from torch import nn

_GLOBAL_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
NOT_CONVOLUTIONAL = (
    "steering='color' (what steering='auto' picks for images with colour "
    "parameters) pools a convolutional feature map of shape (n, C, H, W); this "
    "backbone ends in token sequences or vectors. Use a convolutional model (a "
    "ResNet, an EfficientNet, ...) or another steering, such as 'expm'."
)


def _has_attention(module):
    """Whether ``module`` holds attention layers (a vision transformer's)."""
    return any(
        isinstance(m, nn.MultiheadAttention) or type(m).__name__.endswith("Attention")
        for m in module.modules()
    )


def feature_map_layer(backbone, batch):
    """Name the module whose output is the last spatial map before pooling.

    One forward pass records the outputs of every leaf module in call order;
    the answer is the last one producing a 4-D map, global pooling modules
    excluded.  A module called several times (a ResNet block's ReLU) counts
    by its last call.

    Parameters
    ----------
    backbone : skfeat.models.Backbone
        An image backbone.
    batch : torch.Tensor of shape (n, 3, H, W)
        A normalised input batch.

    Returns
    -------
    name : str
        A module name of ``backbone.body``.

    Raises
    ------
    ValueError
        When the backbone has attention layers, no leaf module produces a
        4-D map, or token sequences follow the last one (a vision transformer,
        whose only map is its patch embedding).  Attention is checked before
        the forward pass, which a vision transformer may refuse at the size
        of ``batch``.
    """
    if _has_attention(backbone.body):
        raise ValueError(NOT_CONVOLUTIONAL)
    calls = []
    leaves = [
        (name, module)
        for name, module in backbone.body.named_modules()
        if not any(module.children()) and not isinstance(module, _GLOBAL_POOLS)
    ]

    def record(name):
        return lambda module, inputs, output: calls.append((name, _ndim(output)))

    with _hooks((module, record(name)) for name, module in leaves):
        backbone(batch)
    maps = [i for i, (_, ndim) in enumerate(calls) if ndim == 4]
    if not maps or any(ndim == 3 for _, ndim in calls[maps[-1] :]):
        raise ValueError(NOT_CONVOLUTIONAL)
    return calls[maps[-1]][0]


def feature_map(backbone, layer, batch):
    """Run ``backbone`` on ``batch`` and return the last output of ``layer``.

    Parameters
    ----------
    backbone : skfeat.models.Backbone
        The backbone.
    layer : str
        A module name of ``backbone.body``, from :func:`feature_map_layer`.
    batch : torch.Tensor
        A normalised input batch.

    Returns
    -------
    features : torch.Tensor of shape (n, C, h, w)
        The module's output.
    """
    outputs = []
    module = backbone.body.get_submodule(layer)

    def keep(module, inputs, output):
        outputs.append(output)

    with _hooks([(module, keep)]):
        backbone(batch)
    return outputs[-1]


def _ndim(output):
    return output.ndim if isinstance(output, torch.Tensor) else None


@contextlib.contextmanager
def _hooks(pairs):
    handles = [module.register_forward_hook(hook) for module, hook in pairs]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()

# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""The feature model returned by ``get_backbone``: a network cut, then pooled."""

from torch import nn

POOLINGS = ("avg", "max", "gem")
_GEM_POWER = 3.0
_GEM_EPS = 1e-6


def pool_features(features, pooling):
    """Reduce a feature map to one vector per sample.

    Four-dimensional maps ``(n, C, H, W)`` are pooled over ``H, W``; token
    sequences ``(n, L, C)`` over ``L``; two-dimensional inputs pass through.
    ``pooling=None`` flattens everything after the batch axis instead.

    Parameters
    ----------
    features : torch.Tensor
        Output of the selected layer.
    pooling : {"avg", "max", "gem"} or None
        Average, max or generalised-mean (p = 3) pooling.

    Returns
    -------
    pooled : torch.Tensor of shape (n, d)
        One feature vector per sample.

    Examples
    --------
    >>> import torch
    >>> from skfeat.models import pool_features
    >>> x = torch.arange(8.0).reshape(1, 2, 2, 2)
    >>> pool_features(x, "max")
    tensor([[3., 7.]])
    >>> pool_features(x, None).shape
    torch.Size([1, 8])
    """
    if features.ndim == 2:
        return features
    if pooling is None:
        return features.flatten(1)
    dims = (2, 3) if features.ndim == 4 else tuple(range(1, features.ndim - 1))
    if pooling == "avg":
        return features.mean(dims)
    if pooling == "max":
        return features.amax(dims)
    powered = features.clamp(min=_GEM_EPS).pow(_GEM_POWER)
    return powered.mean(dims).pow(1.0 / _GEM_POWER)


class Backbone(nn.Module):
    """A network cut at a layer, followed by pooling, with its metadata.

    Parameters
    ----------
    body : torch.nn.Module
        Maps an input batch to the selected layer's output.
    pooling : {"avg", "max", "gem"} or None
        See :func:`pool_features`.
    input_kind : {"image", "vector"} or None
        What the network consumes; None for user callables (decided by the
        data).
    preprocessing : ImagePreprocessing or None
        Resize, crop and normalisation for image inputs.
    weights_id : str
        Human-readable identity of the loaded weights, for reproducibility.

    See Also
    --------
    get_backbone : Build the backbone of a registered or torchvision model.

    Examples
    --------
    >>> import torch
    >>> from skfeat.models import Backbone
    >>> backbone = Backbone(
    ...     torch.nn.Conv2d(3, 8, kernel_size=3),
    ...     pooling="avg",
    ...     input_kind="image",
    ...     preprocessing=None,
    ...     weights_id="random-init",
    ... )
    >>> backbone(torch.rand(2, 3, 16, 16)).shape
    torch.Size([2, 8])
    """

    def __init__(self, body, *, pooling, input_kind, preprocessing, weights_id):
        super().__init__()
        self.body = body
        self.pooling = pooling
        self.input_kind = input_kind
        self.preprocessing = preprocessing
        self.weights_id = weights_id

    def forward(self, x):
        """Compute the pooled features of a batch.

        Parameters
        ----------
        x : torch.Tensor
            A preprocessed batch: images of shape (n, 3, H, W), or vectors of
            shape (n, d_in) for vector backbones.

        Returns
        -------
        features : torch.Tensor of shape (n, d)
            The selected layer's output, pooled by :func:`pool_features`.
        """
        out = self.body(x)
        if isinstance(out, dict):
            (out,) = out.values()
        return pool_features(out, self.pooling)

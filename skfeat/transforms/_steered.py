# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Augmentations indexed by a parameter vector g whose zero is the identity."""

import math

import torch

from skfeat.transforms._base import uniform
from skfeat.transforms._image import ColorJitter, RandomHorizontalFlip, RandomRot90

COLOR_PARAMS = ("brightness", "contrast", "saturation", "hue")
D4_PARAMS = ("rot90", "flip")
VECTOR_PARAMS = ("scale", "rotate")
# Ranges of g: colour factors 1 + g as ColorJitter's defaults, hue in turns; a
# vector scale exp(g) and a rotation by g radians (spec section 6.3).
RANGES = {
    "brightness": (-0.4, 0.4),
    "contrast": (-0.4, 0.4),
    "saturation": (-0.4, 0.4),
    "hue": (-0.1, 0.1),
    "scale": (-0.5, 0.5),
    "rotate": (-1.0, 1.0),
}
D4_SIZES = {"rot90": 4, "flip": 2}


class SteeredAugmentation:
    """Apply ``T_g`` for a per-sample parameter vector g, with ``T_0`` the identity.

    Continuous parameters (``"brightness"``, ``"contrast"``, ``"saturation"``,
    ``"hue"`` on images; ``"scale"``, ``"rotate"`` on vectors) are drawn
    uniformly from :data:`RANGES`; discrete ones (``"rot90"`` in {0..3},
    ``"flip"`` in {0, 1}) uniformly over their values.  Colour factors are
    ``1 + g`` and the hue shift is ``g`` turns; on vectors ``"scale"``
    multiplies the block by ``exp(g)`` and ``"rotate"`` turns a 3-feature
    block by ``g`` radians about the grey axis (1, 1, 1).  An element
    ``(k, s)`` of D4 maps an image to ``rot90^k(flip^s(x))``.

    Parameters
    ----------
    names : tuple of str
        The parameters, in the column order of g.
    start : int, default=0
        First feature of the vector block.

    Examples
    --------
    >>> import math
    >>> import torch
    >>> from skfeat.transforms import SteeredAugmentation
    >>> scale = SteeredAugmentation(("scale",), start=1)
    >>> scale.apply(torch.ones(1, 3), torch.tensor([[math.log(2.0)]]))
    tensor([[1., 2., 2.]])
    """

    def __init__(self, names, start=0):
        self.names = tuple(names)
        self.start = start
        self.discrete = all(name in D4_SIZES for name in self.names)

    @property
    def sizes(self):
        """Number of values of each discrete column (``rot90``: 4, ``flip``: 2).

        Returns
        -------
        sizes : tuple of int
            One entry per name.
        """
        return tuple(D4_SIZES[name] for name in self.names)

    def sample(self, n, generator=None):
        """Draw g for ``n`` samples.

        Parameters
        ----------
        n : int
            Number of samples.
        generator : torch.Generator, default=None
            Source of randomness.

        Returns
        -------
        g : torch.Tensor of shape (n, len(names)), dtype float32
            One parameter vector per sample.
        """
        columns = []
        for name in self.names:
            if name in D4_SIZES:
                size = D4_SIZES[name]
                columns.append(torch.randint(0, size, (n, 1), generator=generator))
            else:
                columns.append(uniform(n, RANGES[name], generator))
        return torch.cat(columns, 1).float()

    def apply(self, x, g):
        """Augment every row ``x_i`` by ``T_{g_i}``.

        Parameters
        ----------
        x : torch.Tensor
            Images of shape (n, 3, H, W), uint8 or float in [0, 1], or float
            vectors of shape (n, n_features).
        g : torch.Tensor of shape (n, len(names))
            The parameter vectors from :meth:`sample` (or chosen).

        Returns
        -------
        x_aug : torch.Tensor
            The augmented batch, float, on ``x``'s device.
        """
        if x.dtype == torch.uint8:
            x = x.float() / 255
        g = g.to(x.device, torch.float32)
        columns = dict(zip(self.names, g.unbind(1)))
        if self.discrete:
            return _d4(x, columns)
        if x.ndim == 4:
            return _colour(x, columns)
        return _vector(x, columns, self.start)


def _d4(x, columns):
    zeros = torch.zeros(len(x), device=x.device)
    if "flip" in columns:
        x = RandomHorizontalFlip().apply(x, columns["flip"][:, None])
    turns = columns.get("rot90", zeros)
    return RandomRot90().apply(x, turns[:, None])


def _colour(x, columns):
    params = torch.zeros(len(x), 8, device=x.device)
    params[:, :3] = 1  # identity factors, then the fixed order 0, 1, 2, 3
    params[:, 4:] = torch.arange(4, device=x.device)
    for j, name in enumerate(COLOR_PARAMS):
        if name in columns:
            params[:, j] = columns[name] + (name != "hue")
    return ColorJitter(p=1.0).apply(x, params.cpu())


def _vector(x, columns, start):
    out = x.clone()
    if "rotate" in columns:
        out[:, start : start + 3] = _grey_axis_rotation(
            x[:, start : start + 3], columns["rotate"]
        )
    if "scale" in columns:
        out[:, start:] = out[:, start:] * columns["scale"].exp()[:, None]
    return out


def _grey_axis_rotation(colour, angle):
    """Rodrigues' rotation of each row about (1, 1, 1) / sqrt(3) by ``angle``."""
    axis = colour.new_full((3,), 1 / math.sqrt(3))
    cos, sin = angle.cos()[:, None], angle.sin()[:, None]
    along = (colour @ axis)[:, None] * axis
    return (
        colour * cos
        + torch.linalg.cross(axis.expand_as(colour), colour) * sin
        + (along * (1 - cos))
    )

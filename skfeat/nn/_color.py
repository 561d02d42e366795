# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Colour-bilinear embeddings, whose colour part linear 3 x 3 maps steer."""

import torch
import torch.nn.functional as F

from skfeat.nn._steering import _Steering

# Rows Y, I, Q of the NTSC transform of linear RGB in [0, 1].
RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]]
)
# Mean and spread of ImageNet pixels, over channels: the standardised lightness
# is drawn back at these values so the backbone sees photo-like contrast.
PHOTO_MEAN, PHOTO_STD = 0.45, 0.226
N_COLORS = 3


def lightness_image(images, eps=1e-3):
    """Grey copies of ``images`` that colour jitter barely changes.

    The HSL lightness ``(max + min) / 2`` of each pixel, standardised per
    image and drawn at photo mean and spread, replicated on three channels.
    A hue rotation keeps each pixel's max and min, so it keeps the lightness
    exactly; per-image standardisation removes brightness and contrast
    factors; a saturation factor moves the lightness only by the small
    distance between lightness and luma.  Clipping at 0 and 1 breaks these
    identities at saturated pixels.

    Parameters
    ----------
    images : torch.Tensor of shape (n, 3, H, W)
        RGB images in [0, 1].
    eps : float, default=1e-3
        Added to the standard deviation, so flat images stay finite.

    Returns
    -------
    grey : torch.Tensor of shape (n, 3, H, W)
        Three equal channels.

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import lightness_image
    >>> x = torch.rand(2, 3, 8, 8)
    >>> torch.allclose(lightness_image(x), lightness_image(0.5 * x), atol=1e-2)
    True
    """
    light = (images.amax(1, keepdim=True) + images.amin(1, keepdim=True)) / 2
    mean = light.mean((2, 3), keepdim=True)
    std = light.std((2, 3), keepdim=True)
    standard = (light - mean) / (std + eps)
    return (PHOTO_MEAN + PHOTO_STD * standard).expand(-1, 3, -1, -1)


def color_bilinear_pool(features, images):
    """Pool ``features (x) colour`` over the cells of a feature map.

    Each cell's feature vector is multiplied by the mean YIQ colour of the
    pixels under it, and the products are averaged over cells: the result
    ``z[c, k] = mean over cells of features[c] * colour[k]`` is linear in the
    colours, so colour changes that act linearly on YIQ (brightness, hue,
    saturation) act on ``z`` as ``I (x) M`` with a 3 x 3 ``M``.

    Parameters
    ----------
    features : torch.Tensor of shape (n, C, h, w)
        Feature map of the images (computed from :func:`lightness_image`).
    images : torch.Tensor of shape (n, 3, H, W)
        The RGB images in [0, 1]; their colours are averaged to ``h x w``.

    Returns
    -------
    embeddings : torch.Tensor of shape (n, 3 * C)
        Three colour coordinates per feature, feature-major.

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import color_bilinear_pool
    >>> features = torch.ones(1, 2, 1, 1)
    >>> grey = torch.full((1, 3, 4, 4), 0.5)
    >>> color_bilinear_pool(features, grey).round(decimals=3)
    tensor([[0.5000, 0.0000, 0.0000, 0.5000, 0.0000, 0.0000]])
    """
    yiq = torch.einsum("kc,nchw->nkhw", RGB_TO_YIQ.to(images), images)
    colors = F.adaptive_avg_pool2d(yiq, features.shape[-2:]).to(features.dtype)
    cells = features.shape[-2] * features.shape[-1]
    return torch.einsum("nchw,nkhw->nck", features, colors).flatten(1) / cells


class ColorSteering(_Steering):
    """Steering ``M(g) = I (x) expm(sum_j g_j A_j)`` of colour-bilinear embeddings.

    Each of the ``dim / 3`` feature blocks of :func:`color_bilinear_pool`
    holds three colour coordinates, and every block turns by the same 3 x 3
    exponential, with one learned generator ``A_j`` per parameter.  The
    generators start at 0, so ``M(0) = I``.

    Parameters
    ----------
    dim : int
        Embedding width, a multiple of 3.
    n_params : int
        Number k of augmentation parameters.

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import ColorSteering
    >>> steering = ColorSteering(dim=6, n_params=1)
    >>> with torch.no_grad():
    ...     steering.generators[0] = torch.eye(3)
    ...     steered = steering(torch.ones(1, 6), torch.tensor([[1.0]]))
    >>> steered.round(decimals=3)
    tensor([[2.7180, 2.7180, 2.7180, 2.7180, 2.7180, 2.7180]])
    """

    def __init__(self, dim, n_params):
        super().__init__()
        if dim % N_COLORS:
            raise ValueError(f"dim must be a multiple of {N_COLORS}; got {dim}.")
        self.dim = dim
        self.generators = torch.nn.Parameter(torch.zeros(n_params, N_COLORS, N_COLORS))

    def color_matrices(self, g):
        """Return the 3 x 3 colour maps ``expm(sum_j g_ij A_j)``, one per row of g.

        Parameters
        ----------
        g : torch.Tensor of shape (n, n_params)
            Parameter vectors.

        Returns
        -------
        matrices : torch.Tensor of shape (n, 3, 3)
            The colour part of ``M(g_i)``.
        """
        algebra = torch.einsum("nk,kij->nij", g.to(self.generators), self.generators)
        return torch.linalg.matrix_exp(algebra)

    def forward(self, z, g):
        """Steer each row ``z_i`` by ``M(g_i)``.

        Parameters
        ----------
        z : torch.Tensor of shape (n, dim)
            Embeddings.
        g : torch.Tensor of shape (n, n_params)
            One parameter vector per row.

        Returns
        -------
        steered : torch.Tensor of shape (n, dim)
            ``M(g_i) z_i`` in row i.
        """
        blocks = z.view(len(z), -1, N_COLORS)
        maps = self.color_matrices(g).to(z.dtype)
        return torch.einsum("nij,nbj->nbi", maps, blocks).reshape(len(z), -1)

    def steer_all(self, z, g):
        """Steer every row of ``z`` by one ``g``, without forming ``M(g)``.

        Parameters
        ----------
        z : torch.Tensor of shape (n, dim)
            Embeddings.
        g : torch.Tensor of shape (n_params,)
            The parameter vector.

        Returns
        -------
        steered : torch.Tensor of shape (n, dim)
            ``M(g) z_i`` in row i.
        """
        return self(z, g.expand(len(z), -1))

    def matrix(self, g):
        """Return ``M(g) = I (x) expm(sum_j g_j A_j)``.

        Parameters
        ----------
        g : torch.Tensor of shape (n_params,)
            The parameter vector.

        Returns
        -------
        matrix : torch.Tensor of shape (dim, dim)
            ``M(g)``.
        """
        eye = torch.eye(self.dim // N_COLORS, dtype=self.generators.dtype)
        return torch.kron(eye.to(g.device), self.color_matrices(g[None])[0])


class RelativeError(torch.nn.Module):
    """Mean relative error ``||p_i - t_i|| / ||t_i||`` of predictions ``p``.

    The loss of the colour maps: every sample counts alike, whatever the norm
    of its embedding.

    Parameters
    ----------
    eps : float, default=1e-12
        Smallest target norm divided by.

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import RelativeError
    >>> RelativeError()(torch.zeros(2, 3), torch.ones(2, 3))
    tensor(1.)
    """

    def __init__(self, eps=1e-12):
        super().__init__()
        self.eps = eps

    def forward(self, prediction, target):
        """Return the mean over rows of the relative error.

        Parameters
        ----------
        prediction : torch.Tensor of shape (n, d)
            Predicted rows.
        target : torch.Tensor of shape (n, d)
            True rows.

        Returns
        -------
        loss : torch.Tensor of shape ()
            The mean relative error.
        """
        scale = target.norm(dim=1).clamp_min(self.eps)
        return ((prediction - target).norm(dim=1) / scale).mean()

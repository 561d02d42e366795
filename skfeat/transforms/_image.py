# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Batched image augmentations with per-sample parameters, on kornia kernels."""

import math

import torch
from kornia.color import rgb_to_grayscale
from kornia.enhance import (
    adjust_brightness_accumulative,
    adjust_contrast_with_mean_subtraction,
    adjust_hue,
    adjust_saturation_with_gray_subtraction,
)
from kornia.filters import gaussian_blur2d
from kornia.geometry.transform import crop_and_resize

from skfeat.transforms._base import (
    ParametricAugmentation,
    check_probability,
    check_range,
    coin,
    rows_where,
    uniform,
)

_CROP_ATTEMPTS = 10
_JITTER_IDENTITY = (1.0, 1.0, 1.0, 0.0)  # brightness, contrast, saturation, hue


def _check_images(x, name, rgb=False):
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise ValueError(
            f"{name} expects float images of shape (n, channels, height, width), "
            f"got {getattr(x, 'dtype', type(x).__name__)} "
            f"of shape {tuple(getattr(x, 'shape', ()))}."
        )
    if rgb and x.shape[1] != 3:
        raise ValueError(f"{name} expects 3 RGB channels, got {x.shape[1]}.")


def _check_size(size):
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(s, int) and s > 0 for s in size)
    ):
        raise ValueError(
            f"size must be a positive int or (height, width), got {size!r}."
        )
    return tuple(size)


def _column(params, x, j=0):
    """Column ``j`` of ``params`` on ``x``'s device and dtype."""
    return params[:, j].to(device=x.device, dtype=x.dtype)


class RandomResizedCrop(ParametricAugmentation):
    """Crop a random box of each image and resize it, one box per sample.

    The box is drawn as torchvision's ``RandomResizedCrop`` does (area
    fraction in ``scale``, log-uniform aspect ratio in ``ratio``, ten tries,
    then the whole image), in coordinates relative to the image, so the
    aspect ratio is the pixel aspect ratio for square inputs.  Boxes are
    resampled bilinearly by kornia's ``crop_and_resize``.

    Parameters
    ----------
    size : int or tuple of int
        Output (height, width).
    scale : tuple of float, default=(0.2, 1.0)
        Range of the box area as a fraction of the image area.
    ratio : tuple of float, default=(3/4, 4/3)
        Range of the box aspect ratio width / height.

    Notes
    -----
    ``params`` columns are (top, left, height, width, mirrored), fractions of
    the image size; ``mirrored`` is 0 unless a pipeline sets it from a
    following :class:`RandomHorizontalFlip`.  The record is the box centre
    ``(c_y, c_x)`` and size ``(h, w)``, with ``c_x <- 1 - c_x`` for a
    mirrored view (its own flag); the target is the record difference, in
    (-1, 1).

    Examples
    --------
    >>> import torch
    >>> from skfeat.transforms import RandomResizedCrop
    >>> crop = RandomResizedCrop(8)
    >>> params = crop.sample(2, torch.Generator().manual_seed(0))
    >>> crop.apply(torch.rand(2, 3, 16, 16), params).shape
    torch.Size([2, 3, 8, 8])
    >>> crop.delta(params, params)
    tensor([[0., 0., 0., 0.],
            [0., 0., 0., 0.]])
    """

    name = "crop"
    n_outputs = 4

    def __init__(self, size, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3)):
        self.size = _check_size(size)
        self.scale = check_range(scale, "scale", low=0.0)
        self.ratio = check_range(ratio, "ratio", low=0.0)
        if self.scale[1] > 1 or self.scale[1] == 0 or self.ratio[0] == 0:
            raise ValueError(
                "scale must lie in (0, 1] and ratio be positive, "
                f"got {scale!r} and {ratio!r}."
            )

    def sample(self, n, generator=None):
        area = uniform(n * _CROP_ATTEMPTS, self.scale, generator)
        log_ratio = uniform(
            n * _CROP_ATTEMPTS, tuple(map(math.log, self.ratio)), generator
        )
        aspect = log_ratio.exp()
        width = (area * aspect).sqrt().view(n, _CROP_ATTEMPTS)
        height = (area / aspect).sqrt().view(n, _CROP_ATTEMPTS)
        fits = (width <= 1) & (height <= 1)
        # The first attempt that fits, as torchvision; the whole image if none.
        first = torch.where(fits.any(1), fits.int().argmax(1), 0)
        rows = torch.arange(n)
        found = fits[rows, first]
        height = torch.where(found, height[rows, first], 1.0).unsqueeze(1)
        width = torch.where(found, width[rows, first], 1.0).unsqueeze(1)
        top = (1 - height) * torch.rand(n, 1, generator=generator)
        left = (1 - width) * torch.rand(n, 1, generator=generator)
        return torch.cat([top, left, height, width, torch.zeros(n, 1)], 1)

    def apply(self, x, params):
        _check_images(x, "RandomResizedCrop.apply")
        height, width = x.shape[-2:]
        top, left, h, w = (_column(params, x, j) for j in range(4))
        y0, x0 = top * height, left * width
        # kornia's corners are inclusive pixel positions, (x, y) order; a box
        # under one pixel wide collapses to one pixel instead of mirroring.
        y1 = torch.maximum(y0 + h * height - 1, y0)
        x1 = torch.maximum(x0 + w * width - 1, x0)
        corners = torch.stack(
            [torch.stack(c, 1) for c in [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]], 1
        )
        return crop_and_resize(x, corners, self.size)

    def record(self, params):
        top, left, height, width, mirrored = params.unbind(1)
        centre_x = left + width / 2
        centre_x = torch.where(mirrored.bool(), 1 - centre_x, centre_x)
        return torch.stack([top + height / 2, centre_x, height, width], 1)


class RandomHorizontalFlip(ParametricAugmentation):
    """Mirror each image left-right with probability ``p``.

    Parameters
    ----------
    p : float, default=0.5
        Probability of flipping a sample.

    Notes
    -----
    ``params`` is the flag f in {0, 1}; the target is 1[f1 = f2], learnt
    with BCE on logits.

    Examples
    --------
    >>> import torch
    >>> from skfeat.transforms import RandomHorizontalFlip
    >>> flip = RandomHorizontalFlip()
    >>> flip.apply(torch.tensor([[[[1.0, 2.0]]]]), torch.tensor([[1.0]]))
    tensor([[[[2., 1.]]]])
    >>> flip.delta(torch.tensor([[1.0], [0.0]]), torch.tensor([[1.0], [1.0]]))
    tensor([[1.],
            [0.]])
    """

    name = "flip"
    loss_kind = "binary"

    def __init__(self, p=0.5):
        self.p = check_probability(p)

    def sample(self, n, generator=None):
        return coin(n, self.p, generator)

    def apply(self, x, params):
        _check_images(x, "RandomHorizontalFlip.apply")
        flipped = params[:, 0].to(x.device).bool().view(-1, 1, 1, 1)
        return torch.where(flipped, x.flip(-1), x)

    def record(self, params):
        return params[:, :1]

    def delta(self, params1, params2):
        return (self.record(params1) == self.record(params2)).float()


class ColorJitter(ParametricAugmentation):
    """Per-sample brightness, contrast, saturation and hue, in random order.

    With probability ``p`` a sample gets factors drawn uniformly from
    ``[max(0, 1 - s), 1 + s]`` for brightness (multiplies the image),
    contrast (blend with the mean grey) and saturation (blend with the grey
    image), and a hue shift in ``[-hue, hue]`` turns (HSV rotation); the four
    operations run in a random order drawn per sample.  Kernels are kornia's
    ``kornia.enhance`` functions, which take one factor per sample.

    Parameters
    ----------
    brightness, contrast, saturation : float, default=0.4
        Jitter strengths; 0 disables the operation.
    hue : float, default=0.1
        Hue strength in turns, in [0, 0.5].
    p : float, default=0.8
        Probability of jittering a sample.

    Notes
    -----
    ``params`` columns are (beta, gamma, s, theta, order of the four
    operations); a sample that is not jittered gets the identity factors,
    so its record, ``((beta - 1) / (beta_max - beta_min), ..., theta /
    (theta_max - theta_min))``, is all zeros.  Records lie in [-0.5, 0.5]
    and targets (record differences) in [-1, 1]; they do not depend on the
    order.

    Examples
    --------
    >>> import torch
    >>> from skfeat.transforms import ColorJitter
    >>> jitter = ColorJitter(p=1.0)
    >>> params = jitter.sample(3, torch.Generator().manual_seed(0))
    >>> jitter.apply(torch.rand(3, 3, 4, 4), params).shape
    torch.Size([3, 3, 4, 4])
    >>> bool(jitter.record(params).abs().max() <= 0.5)
    True
    """

    name = "color"
    n_outputs = 4

    def __init__(self, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, p=0.8):
        strengths = {
            "brightness": brightness,
            "contrast": contrast,
            "saturation": saturation,
        }
        for key, value in strengths.items():
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or value < 0
            ):
                raise ValueError(f"{key} must be a non-negative number, got {value!r}.")
        if (
            isinstance(hue, bool)
            or not isinstance(hue, (int, float))
            or not 0 <= hue <= 0.5
        ):
            raise ValueError(f"hue must be a number in [0, 0.5], got {hue!r}.")
        self.brightness = float(brightness)
        self.contrast = float(contrast)
        self.saturation = float(saturation)
        self.hue = float(hue)
        self.p = check_probability(p)

    def _ranges(self):
        factor_ranges = [
            (max(0.0, 1 - s), 1 + s)
            for s in (self.brightness, self.contrast, self.saturation)
        ]
        return [*factor_ranges, (-self.hue, self.hue)]

    def sample(self, n, generator=None):
        applied = coin(n, self.p, generator).bool()
        factors = torch.cat([uniform(n, r, generator) for r in self._ranges()], 1)
        factors = torch.where(applied, factors, torch.tensor(_JITTER_IDENTITY))
        order = torch.rand(n, 4, generator=generator).argsort(1).float()
        return torch.cat([factors, order], 1)

    def apply(self, x, params):
        _check_images(x, "ColorJitter.apply", rgb=True)
        kernels = [
            adjust_brightness_accumulative,
            adjust_contrast_with_mean_subtraction,
            adjust_saturation_with_gray_subtraction,
            lambda img, theta: adjust_hue(img, 2 * math.pi * theta),
        ]
        factors, order = params[:, :4], params[:, 4:].long()
        # An identity factor needs no kernel call.
        active = factors != factors.new_tensor(_JITTER_IDENTITY)
        out = x.clone()
        for step in range(4):
            for op, kernel in enumerate(kernels):
                rows = rows_where((order[:, step] == op) & active[:, op])
                if len(rows):
                    index = rows.to(x.device)
                    out[index] = kernel(out[index], _column(params[rows], x, op))
        return out

    def record(self, params):
        widths = params.new_tensor([hi - lo for lo, hi in self._ranges()])
        centred = params[:, :4] - params.new_tensor(_JITTER_IDENTITY)
        return torch.where(widths > 0, centred / widths.clamp(min=1e-12), 0.0)


class RandomGrayscale(ParametricAugmentation):
    """Replace each image by its three-channel grey version with probability ``p``.

    Parameters
    ----------
    p : float, default=0.2
        Probability of greying a sample.

    Notes
    -----
    ``params`` is the flag g in {0, 1}.  The spec has no grayscale target;
    skfeat uses the regression target g1 - g2 in {-1, 0, 1}, since, unlike
    a flip, a grey view is recognisable on its own.

    Examples
    --------
    >>> import torch
    >>> from skfeat.transforms import RandomGrayscale
    >>> out = RandomGrayscale().apply(torch.rand(1, 3, 2, 2), torch.tensor([[1.0]]))
    >>> bool((out[:, 0] == out[:, 2]).all())
    True
    """

    name = "gray"

    def __init__(self, p=0.2):
        self.p = check_probability(p)

    def sample(self, n, generator=None):
        return coin(n, self.p, generator)

    def apply(self, x, params):
        _check_images(x, "RandomGrayscale.apply", rgb=True)
        grey = params[:, 0].to(x.device).bool().view(-1, 1, 1, 1)
        return torch.where(grey, rgb_to_grayscale(x).expand_as(x), x)

    def record(self, params):
        return params[:, :1]


class GaussianBlur(ParametricAugmentation):
    """Blur each image with its own Gaussian sigma, with probability ``p``.

    Parameters
    ----------
    sigma : tuple of float, default=(0.1, 2.0)
        Range of the blur standard deviation in pixels.
    p : float, default=0.5
        Probability of blurring a sample.
    kernel_size : int, default=None
        Odd kernel side; ``None`` uses about a tenth of the image side,
        rounded up to odd (9 at 96 px, 23 at 224 px, as in the AugSelf recipe).

    Notes
    -----
    ``params`` is sigma, 0 for a sample that is not blurred; the record is
    sigma / sigma_max (so targets stay in [-1, 1], unlike the reference
    code's raw sigma).

    Examples
    --------
    >>> import torch
    >>> from skfeat.transforms import GaussianBlur
    >>> blur = GaussianBlur(p=1.0)
    >>> params = blur.sample(2, torch.Generator().manual_seed(0))
    >>> blur.apply(torch.rand(2, 3, 16, 16), params).shape
    torch.Size([2, 3, 16, 16])
    """

    name = "blur"

    def __init__(self, sigma=(0.1, 2.0), p=0.5, kernel_size=None):
        self.sigma = check_range(sigma, "sigma", low=0.0)
        if self.sigma[0] <= 0:
            raise ValueError(f"sigma must be positive, got {sigma!r}.")
        self.p = check_probability(p)
        if kernel_size is not None and (
            not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0
        ):
            raise ValueError(
                f"kernel_size must be an odd positive int, got {kernel_size!r}."
            )
        self.kernel_size = kernel_size

    def sample(self, n, generator=None):
        applied = coin(n, self.p, generator)
        return applied * uniform(n, self.sigma, generator)

    def apply(self, x, params):
        _check_images(x, "GaussianBlur.apply")
        kernel = self.kernel_size
        if kernel is None:
            kernel = max(3, int(0.1 * min(x.shape[-2:])) | 1)
        rows = rows_where(params[:, 0] > 0)
        out = x.clone()
        if len(rows):
            sigma = _column(params[rows], x).unsqueeze(1).expand(-1, 2)
            index = rows.to(x.device)
            out[index] = gaussian_blur2d(x[index], kernel, sigma)
        return out

    def record(self, params):
        return params[:, :1] / self.sigma[1]


class RandomRot90(ParametricAugmentation):
    """Rotate each square image by k quarter turns counter-clockwise.

    Parameters
    ----------
    p : float, default=0.5
        Probability of drawing k uniformly from {0, 1, 2, 3}; otherwise
        k = 0.  ``p=1`` samples the rotation group uniformly.

    Notes
    -----
    ``params`` is k; the target is the class (k1 - k2) mod 4, learnt with
    cross-entropy.

    Examples
    --------
    >>> import torch
    >>> from skfeat.transforms import RandomRot90
    >>> rot = RandomRot90()
    >>> rot.apply(torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]), torch.tensor([[1.0]]))
    tensor([[[[2., 4.],
              [1., 3.]]]])
    >>> rot.delta(torch.tensor([[1.0]]), torch.tensor([[3.0]]))
    tensor([2])
    """

    name = "rot"
    loss_kind = "multiclass"
    n_outputs = 4

    def __init__(self, p=0.5):
        self.p = check_probability(p)

    def sample(self, n, generator=None):
        applied = coin(n, self.p, generator)
        quarter_turns = torch.randint(0, 4, (n, 1), generator=generator).float()
        return applied * quarter_turns

    def apply(self, x, params):
        _check_images(x, "RandomRot90.apply")
        if x.shape[-1] != x.shape[-2]:
            raise ValueError(
                "RandomRot90 needs square images to keep the batch shape, "
                f"got shape {tuple(x.shape)}."
            )
        out = x.clone()
        turns = params[:, 0].long()
        for k in (1, 2, 3):
            rows = rows_where(turns == k).to(x.device)
            if len(rows):
                out[rows] = torch.rot90(x[rows], k, dims=(-2, -1))
        return out

    def record(self, params):
        return params[:, :1]

    def delta(self, params1, params2):
        return (params1[:, 0] - params2[:, 0]).long() % 4

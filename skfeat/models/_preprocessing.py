# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Image preprocessing attached to a backbone: resize, centre crop, normalise."""

import dataclasses

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class ImagePreprocessing:
    """Resize the shorter side, centre-crop, then normalise per channel.

    Parameters
    ----------
    resize_size : int
        Length the shorter image side is resized to.
    crop_size : int
        Side of the square centre crop.
    mean, std : tuple of float
        Per-channel normalisation applied to images scaled to ``[0, 1]``.
    interpolation : torchvision.transforms.InterpolationMode
        Resampling filter (antialiased).

    Examples
    --------
    >>> import torch
    >>> from skfeat.models import ImagePreprocessing
    >>> prep = ImagePreprocessing(resize_size=36, crop_size=32)
    >>> prep.resize_and_crop(torch.rand(3, 50, 40)).shape
    torch.Size([3, 32, 32])
    >>> prep.with_image_size(16)
    ImagePreprocessing(resize_size=18, crop_size=16, ...)
    """

    resize_size: int
    crop_size: int
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    interpolation: InterpolationMode = InterpolationMode.BILINEAR

    @classmethod
    def from_torchvision(cls, weights):
        """Read the preprocessing of a torchvision ``WeightsEnum`` member.

        Parameters
        ----------
        weights : torchvision.models.WeightsEnum
            Pretrained weights whose ``transforms()`` preset is read, such as
            ``ResNet18_Weights.IMAGENET1K_V1``.

        Returns
        -------
        preprocessing : ImagePreprocessing
            The preset's resize, crop, normalisation and interpolation.
        """
        preset = weights.transforms()
        return cls(
            resize_size=int(preset.resize_size[0]),
            crop_size=int(preset.crop_size[0]),
            mean=tuple(preset.mean),
            std=tuple(preset.std),
            interpolation=preset.interpolation,
        )

    def with_image_size(self, image_size):
        """Return a copy cropping to ``image_size``, keeping the resize ratio.

        Parameters
        ----------
        image_size : int
            Side of the new square centre crop.

        Returns
        -------
        preprocessing : ImagePreprocessing
            A new instance; this one is frozen and unchanged.
        """
        ratio = self.resize_size / self.crop_size
        return dataclasses.replace(
            self, crop_size=image_size, resize_size=round(image_size * ratio)
        )

    def resize_and_crop(self, image):
        """Resize and centre-crop one float image.

        Parameters
        ----------
        image : torch.Tensor of shape (3, H, W)
            Float image with values in ``[0, 1]``.

        Returns
        -------
        image : torch.Tensor of shape (3, crop_size, crop_size)
            The shorter side resized to ``resize_size`` (antialiased), then
            centre-cropped.
        """
        image = F.resize(
            image, [self.resize_size], interpolation=self.interpolation, antialias=True
        )
        return F.center_crop(image, [self.crop_size, self.crop_size])

    def normalize(self, batch):
        """Normalise a float batch per channel, returning a new tensor.

        Parameters
        ----------
        batch : torch.Tensor of shape (n, 3, H, W)
            Float images with values in ``[0, 1]``; not modified.

        Returns
        -------
        batch : torch.Tensor of shape (n, 3, H, W)
            ``(batch - mean) / std``, channel by channel.
        """
        mean = torch.tensor(self.mean, dtype=batch.dtype, device=batch.device)
        std = torch.tensor(self.std, dtype=batch.dtype, device=batch.device)
        return (batch - mean[:, None, None]) / std[:, None, None]

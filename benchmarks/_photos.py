"""Crops of the real photos that install offline (scikit-learn and scikit-image).

Training and measurement use crops of *different* photos, so a benchmark
measures what carries over to other images, not what was fitted.
"""

import numpy as np
import skimage.data
import torch
from sklearn.datasets import load_sample_images

TRAIN_PHOTOS = (
    "china",
    "flower",
    "astronaut",
    "coffee",
    "rocket",
    "immunohistochemistry",
)
TEST_PHOTOS = ("chelsea", "stereo_motorcycle", "hubble_deep_field", "retina")


def photo(name):
    """One RGB photo as a uint8 array of shape (H, W, 3)."""
    if name in ("china", "flower"):
        sample = load_sample_images()
        return sample.images[[name in f for f in sample.filenames].index(True)]
    image = getattr(skimage.data, name)()
    if isinstance(image, tuple):  # stereo pairs
        image = image[0]
    return image[..., :3]


def square_crop(image, size, side, rng):
    """Return a random ``size``-pixel square of ``image``, resized to ``side``."""
    top = rng.randint(image.shape[0] - size + 1)
    left = rng.randint(image.shape[1] - size + 1)
    patch = torch.from_numpy(
        np.ascontiguousarray(image[top : top + size, left : left + size])
    )
    patch = patch.permute(2, 0, 1)[None].float()
    patch = torch.nn.functional.interpolate(
        patch, size=(side, side), mode="bilinear", antialias=True
    )
    return patch[0].round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


def photo_crops(names, n, side=64, seed=0):
    """``n`` square crops (cycling through ``names``) resized to ``side`` pixels.

    Returns uint8 images of shape (n, side, side, 3) and the index of each
    crop's photo.  Crop sides are uniform between ``side`` and half the
    photo's shorter side.
    """
    rng = np.random.RandomState(seed)
    photos = [photo(name) for name in names]
    sources = np.arange(n) % len(photos)
    crops = [
        square_crop(
            photos[k], rng.randint(side, min(photos[k].shape[:2]) // 2 + 1), side, rng
        )
        for k in sources
    ]
    return np.stack(crops), sources

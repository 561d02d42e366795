# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Turn the image containers users pass into datasets of per-item transformed tensors.

Every source decodes to a float32 RGB tensor of shape (3, H, W) in [0, 1]
before the dataset's per-item transform (evaluation preprocessing, or the
decode-once resize of training), so the same pixels give the same tensors
whatever their container: a uint8 array, a float array divided by 255, a PIL
image or a PNG file.
"""

import functools
import numbers
import os

import numpy as np
import PIL.Image
import torch
from torch.utils.data import DataLoader, Dataset

from skfeat.models._preprocessing import ImagePreprocessing
from skfeat.utils import expand_path

_CHANNEL_SIZES = (1, 3, 4)
_IMAGE_FORMATS = (
    "(n, H, W) grayscale, (n, H, W, C) or (n, C, H, W) arrays with C in {1, 3, 4}, "
    "a list of PIL images, arrays or file paths, or a torch Dataset of images"
)


def looks_like_vectors(X):
    """Tell whether ``X`` is a 2-D numeric table rather than a set of images."""
    shape = getattr(X, "shape", None)
    if shape is not None:
        return (
            len(shape) == 2 and getattr(getattr(X, "dtype", None), "kind", None) != "O"
        )
    return (
        isinstance(X, list)
        and len(X) > 0
        and isinstance(X[0], (list, tuple))
        and len(X[0]) > 0
        and isinstance(X[0][0], numbers.Number)
    )


def pixel_divisor(values, what):
    """Check pixel dtype and range; return the divisor that maps them to [0, 1].

    Integer pixels must lie in [0, 255] and are divided by 255; float pixels
    must be finite and lie in [0, 1].
    """
    if values.dtype == bool or values.dtype.kind not in "uif":
        raise TypeError(
            f"{what} must hold uint8 (or other integer) pixels in [0, 255] or float "
            f"pixels in [0, 1]; got dtype {values.dtype}."
        )
    if values.size == 0:
        raise ValueError(f"{what} holds an empty image of shape {values.shape}.")
    if values.dtype.kind == "f":
        if not np.isfinite(values).all():
            raise ValueError(f"{what} contains NaN or infinite pixel values.")
        low, high, limit = values.min(), values.max(), 1.0
    else:
        low, high, limit = values.min(), values.max(), 255
    if low < 0 or high > limit:
        raise ValueError(
            f"{what} has pixel values in [{low}, {high}]; {values.dtype} pixels must "
            f"lie in [0, {limit}]. Scale float images to [0, 1] or pass uint8."
        )
    return 1 if values.dtype.kind == "f" else 255


def channel_axis(shape, what):
    """Return the channel axis of one image shape (H, W, C) or (C, H, W).

    The last axis is the channel axis when its size is 1, 3 or 4; otherwise
    the first axis must be.
    """
    if shape[-1] in _CHANNEL_SIZES:
        return -1
    if shape[0] in _CHANNEL_SIZES:
        return 0
    raise ValueError(
        f"{what} has shape {shape}: neither the last nor the first image axis has "
        "1, 3 or 4 channels."
    )


def _to_rgb_tensor(image_hwc, divisor):
    """uint8/float (H, W, C) array -> float32 (3, H, W) tensor in [0, 1]."""
    writable = np.require(image_hwc, requirements=["C", "W"])
    tensor = torch.from_numpy(writable).permute(2, 0, 1)
    tensor = tensor.to(torch.float32)
    if divisor != 1:
        tensor = tensor / divisor
    channels = tensor.shape[0]
    if channels == 1:
        return tensor.expand(3, -1, -1)
    return tensor[:3]


def _image_array_to_hwc(image, what):
    if image.ndim == 2:
        return image[:, :, None]
    if image.ndim != 3:
        raise ValueError(
            f"{what} is an array of shape {image.shape}; one image must be (H, W), "
            "(H, W, C) or (C, H, W)."
        )
    return image if channel_axis(image.shape, what) == -1 else image.transpose(1, 2, 0)


class UnreadableImageError(ValueError):
    """An image file exists but cannot be decoded."""


def _open_image_file(path):
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"X: {path!r} is a directory, not an image file.")
    try:
        with PIL.Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"X: image file {path!r} does not exist.") from exc
    except (PIL.UnidentifiedImageError, OSError, ValueError) as exc:
        raise UnreadableImageError(
            f"X: cannot read {path!r} as an image ({exc})."
        ) from exc


def decode_image(item, what="X"):
    """Decode one image of any supported type to a float (3, H, W) tensor."""
    if isinstance(item, (str, os.PathLike)):
        return _to_rgb_tensor(_open_image_file(item), 255)
    if isinstance(item, PIL.Image.Image):
        return _to_rgb_tensor(np.asarray(item.convert("RGB")), 255)
    if isinstance(item, torch.Tensor):
        item = item.detach().cpu().numpy()
    if isinstance(item, (np.ndarray, list, tuple)):
        try:
            array = np.asarray(item)
        except ValueError as exc:
            raise ValueError(f"{what} is a ragged nested list: {exc}") from exc
        image = _image_array_to_hwc(array, what)
        return _to_rgb_tensor(image, pixel_divisor(image, what))
    raise TypeError(
        f"{what} has unsupported type {type(item).__name__}; expected {_IMAGE_FORMATS}."
    )


class ArrayImages(Dataset):
    """A dataset over an image array of shape (n, H, W), (n, H, W, C) or (n, C, H, W).

    Pixel values are validated once for the whole array.  Items are decoded
    images passed through ``transform`` (see :func:`image_dataset`).
    """

    def __init__(self, images, transform=None):
        if images.ndim == 3 and images.shape[2] in (3, 4) and images.shape[1] > 4:
            raise ValueError(
                f"X has shape {images.shape}, which looks like one colour image, "
                "but a 3-D array is a batch of grayscale images. Pass a batch "
                "of one, X[None], or a list of images."
            )
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4:
            hint = (
                " 2-D input is for vector backbones such as 'mlp'."
                if images.ndim == 2
                else ""
            )
            raise ValueError(
                f"X has shape {images.shape}; expected {_IMAGE_FORMATS}.{hint}"
            )
        if len(images) == 0:
            raise ValueError("X is empty: found 0 images.")
        if channel_axis(images.shape[1:], "X") == 0:
            images = images.transpose(0, 2, 3, 1)
        self.divisor = pixel_divisor(images, "X")
        self.images = images
        self.transform = transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        image = _to_rgb_tensor(self.images[index], self.divisor)
        return image if self.transform is None else self.transform(image)

    def raw(self, index):
        """Return the sample as given, for content hashing."""
        return self.images[index]


class ItemImages(Dataset):
    """A dataset over a sequence of images of any supported type and size.

    Items are decoded images passed through ``transform`` (see
    :func:`image_dataset`).
    """

    def __init__(self, items, transform=None):
        if len(items) == 0:
            raise ValueError("X is empty: found 0 images.")
        self.items = items
        self.transform = transform

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        image = decode_image(self.raw(index), what=f"X[{index}]")
        return image if self.transform is None else self.transform(image)

    def raw(self, index):
        """Return the sample as given (the image of an ``(image, label)`` pair).

        File paths are returned with ``~`` and environment variables expanded.
        """
        item = self.items[index]
        if isinstance(self.items, Dataset) and isinstance(item, (tuple, list)):
            item = item[0]
        if isinstance(item, (str, os.PathLike)):
            return expand_path(item)
        return item


class VectorRows(Dataset):
    """Rows of a validated float32 matrix, for vector backbones."""

    def __init__(self, X):
        self.X = np.require(X, requirements=["W"])

    def __len__(self):
        return len(self.X)

    def __getitem__(self, index):
        return torch.from_numpy(self.X[index])

    def raw(self, index):
        """Return the row as given, for content hashing."""
        return self.X[index]


class SkipUnreadable(Dataset):
    """Items of an image dataset; one that cannot be read is a NaN placeholder.

    The placeholder, an all-NaN image of ``shape``, gives an all-NaN feature
    row, so the rows keep the order and number of the inputs.  ``errors``
    maps each failed index to its message, when read in this process.

    Parameters
    ----------
    dataset : torch.utils.data.Dataset
        An :func:`image_dataset`, with ``raw``.
    shape : tuple of int
        Shape of the network input, (3, crop, crop).
    """

    def __init__(self, dataset, shape):
        self.dataset = dataset
        self.shape = shape
        self.errors = {}

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        try:
            return self.dataset[index]
        except (OSError, ValueError) as exc:
            self.errors[index] = str(exc)
            return torch.full(self.shape, float("nan"))

    def raw(self, index):
        """Return the sample as given, for content hashing."""
        return self.dataset.raw(index)


def image_dataset(X, transform=None):
    """Wrap any supported image container in a dataset of transformed tensors.

    Parameters
    ----------
    X : array-like, sequence or torch.utils.data.Dataset
        The images; see ``DeepFeatureExtractor.transform``.
    transform : callable, default=None
        Applied to each decoded image, a float32 tensor of shape (3, H, W) in
        [0, 1]; extractors pass their evaluation preprocessing (resize and
        centre crop).  None returns the decoded images as they are.

    Returns
    -------
    dataset : torch.utils.data.Dataset
        Yields ``transform(image)`` for every image, in the order of ``X``.
    """
    if isinstance(X, (str, os.PathLike, PIL.Image.Image)):
        raise TypeError(
            f"X must be a collection of images, not a single {type(X).__name__}; "
            "wrap it in a list."
        )
    if isinstance(X, Dataset):
        try:
            len(X)
        except TypeError as exc:
            raise TypeError("X: a torch Dataset must define __len__.") from exc
        return ItemImages(X, transform)
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    if isinstance(X, np.ndarray) and X.dtype != object:
        return ArrayImages(X, transform)
    if not hasattr(X, "__len__") or not hasattr(X, "__getitem__"):
        raise TypeError(
            f"X has unsupported type {type(X).__name__}; expected {_IMAGE_FORMATS}."
        )
    items = list(X)
    if items and all(isinstance(item, (list, tuple)) for item in items):
        try:
            return ArrayImages(np.asarray(items), transform)
        except ValueError as exc:
            if "inhomogeneous" not in str(exc):
                raise
            raise ValueError(
                "X: nested lists must form a regular array; the images have "
                f"different shapes ({exc})."
            ) from exc
    return ItemImages(items, transform)


def square_uint8(image, size):
    """Resize the shorter side to ``size``, centre-crop a square, quantise to uint8.

    The per-item transform of :func:`decode_uint8`, also for streaming the
    same pixels with ``image_dataset(X, partial(square_uint8, size=size))``.
    """
    square = ImagePreprocessing(resize_size=size, crop_size=size).resize_and_crop(image)
    return square.mul(255).round_().clamp_(0, 255).to(torch.uint8)


def decode_uint8(X, size, *, max_bytes=2**30, batch_size=64, num_workers=0):
    """Decode images once into one uint8 tensor, when it fits in ``max_bytes``.

    Training decodes every image once and augments the stored pixels many
    times; a uint8 copy takes a quarter of the memory of a float one.  Each
    image's shorter side is resized to ``size`` (antialiased) and a centre
    square is kept, as evaluation preprocessing does.

    Parameters
    ----------
    X : array-like, sequence or torch.utils.data.Dataset
        The images, in any container :func:`image_dataset` accepts.
    size : int
        Side of the stored square images.
    max_bytes : int, default=2**30
        Largest tensor to allocate; beyond it the caller streams the same
        pixels through :func:`image_dataset` with :func:`square_uint8`.
    batch_size : int, default=64
        Images decoded per ``DataLoader`` batch.
    num_workers : int, default=0
        Worker processes that decode; 0 decodes in the main process.

    Returns
    -------
    images : torch.Tensor of shape (n, 3, size, size), dtype uint8, or None
        None when the tensor would exceed ``max_bytes``.
    """
    dataset = image_dataset(X, functools.partial(square_uint8, size=size))
    if len(dataset) * 3 * size * size > max_bytes:
        return None
    images = torch.empty((len(dataset), 3, size, size), dtype=torch.uint8)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    start = 0
    for batch in loader:
        images[start : start + len(batch)] = batch
        start += len(batch)
    return images

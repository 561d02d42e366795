"""Image datasets with a per-item transform, and decoding once to uint8."""

import numpy as np
import PIL.Image
import pytest
import torch
from numpy.testing import assert_array_equal

from skfeat.extraction._inputs import decode_uint8, image_dataset
from skfeat.models import ImagePreprocessing


def _save_pngs(images, folder):
    paths = []
    for i, image in enumerate(images):
        path = folder / f"img{i}.png"
        PIL.Image.fromarray(image).save(path)
        paths.append(path)
    return paths


@pytest.mark.parametrize("container", ["array", "pil"])
def test_image_dataset_applies_the_per_item_transform(rgb_images, container):
    """Items are decoded [0, 1] images, passed through the given transform."""
    X = (
        rgb_images
        if container == "array"
        else [PIL.Image.fromarray(im) for im in rgb_images]
    )
    decoded = image_dataset(X)
    pixels = torch.from_numpy(rgb_images).permute(0, 3, 1, 2).float() / 255
    for i in range(len(rgb_images)):
        assert_array_equal(decoded[i].numpy(), pixels[i].numpy())
    channel_means = image_dataset(X, transform=lambda image: image.mean((1, 2)))
    assert_array_equal(channel_means[2].numpy(), pixels[2].mean((1, 2)).numpy())


def test_decode_uint8_gives_one_tensor_whatever_the_container(rgb_images, tmp_path):
    """Arrays in both layouts, float pixels, PIL images and files decode alike."""
    expected = decode_uint8(rgb_images, 24)
    assert expected.shape == (6, 3, 24, 24)
    assert expected.dtype == torch.uint8
    for name, X, workers in [
        ("chw", rgb_images.transpose(0, 3, 1, 2), 0),
        ("float", rgb_images / 255.0, 0),
        ("pil", [PIL.Image.fromarray(image) for image in rgb_images], 0),
        ("paths", _save_pngs(rgb_images, tmp_path), 1),
    ]:
        decoded = decode_uint8(X, 24, batch_size=4, num_workers=workers)
        assert torch.equal(decoded, expected), name


def test_decode_uint8_keeps_pixels_at_their_size():
    """Square uint8 images already at the size come back exactly."""
    images = np.random.RandomState(1).randint(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    decoded = decode_uint8(images, 16)
    assert_array_equal(decoded.numpy(), images.transpose(0, 3, 1, 2))


def test_decode_uint8_matches_evaluation_resize_and_crop(rgb_images):
    """Resizing and cropping agree with evaluation preprocessing up to rounding."""
    prep = ImagePreprocessing(resize_size=20, crop_size=20)
    pixels = torch.from_numpy(rgb_images).permute(0, 3, 1, 2).float() / 255
    expected = torch.stack([prep.resize_and_crop(image) for image in pixels])
    decoded = decode_uint8(rgb_images, 20).float() / 255
    assert (decoded - expected.clamp(0, 1)).abs().max() <= 0.5 / 255 + 1e-6


def test_decode_uint8_returns_none_beyond_max_bytes(rgb_images):
    """The caller streams instead when the tensor would not fit."""
    assert decode_uint8(rgb_images, 8, max_bytes=6 * 3 * 8 * 8) is not None
    assert decode_uint8(rgb_images, 8, max_bytes=6 * 3 * 8 * 8 - 1) is None


def test_one_colour_image_as_a_3d_array_is_refused():
    """(H, W, 3) is one colour image, not H grey images three pixels wide."""
    image = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match=r"looks like one colour image.*X\[None\]"):
        image_dataset(image)
    assert len(image_dataset(image[None])) == 1
    assert len(image_dataset(np.zeros((5, 16, 16), np.uint8))) == 5  # grey batch

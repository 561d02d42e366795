"""Colour-bilinear embeddings and their steering, ``steering="color"`` (issue 18)."""

import numpy as np
import pytest
import scipy.linalg
import torch
from numpy.testing import assert_allclose

from skfeat import EquivariantExtractor
from skfeat.models import get_backbone
from skfeat.models._feature_map import feature_map, feature_map_layer
from skfeat.nn import (
    ColorSteering,
    DiscreteSteering,
    ExpmSteering,
    color_bilinear_pool,
    lightness_image,
)
from skfeat.transforms import SteeredAugmentation
from skfeat.transforms._steered import COLOR_PARAMS

YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def coloured_images(n=24, size=32, seed=0):
    """One colour per image plus pixel noise, all in [44, 170]: brightness
    factors up to 1.4 never clip, and the colours are far from grey."""
    rng = np.random.RandomState(seed)
    base = rng.randint(64, 151, (n, 1, 1, 3))
    noise = rng.randint(-20, 21, (n, size, size, 3))
    return (base + noise).astype(np.uint8)


def test_color_bilinear_pool_matches_a_loop_reference():
    rng = np.random.RandomState(0)
    features = rng.randn(2, 4, 2, 3).astype(np.float32)
    images = rng.rand(2, 3, 8, 12).astype(np.float32)
    expected = np.zeros((2, 4, 3))
    for n in range(2):
        for row in range(2):
            for col in range(3):
                pixels = images[n, :, 4 * row : 4 * row + 4, 4 * col : 4 * col + 4]
                colour = YIQ @ pixels.reshape(3, -1).mean(1)
                expected[n] += np.outer(features[n, :, row, col], colour) / 6
    pooled = color_bilinear_pool(torch.from_numpy(features), torch.from_numpy(images))
    assert_allclose(pooled.numpy(), expected.reshape(2, 12), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["brightness", "contrast", "hue"])
def test_lightness_image_ignores_brightness_contrast_and_hue(name):
    """HSL lightness keeps max + min under hue turns; standardising removes factors.

    Pixels stay inside [0, 1] under the largest g, so no clipping breaks it;
    luma instead of lightness would move under the hue turn.
    """
    images = torch.from_numpy(coloured_images(4, 16)).permute(0, 3, 1, 2) / 255
    g = torch.zeros(4, len(COLOR_PARAMS))
    g[:, COLOR_PARAMS.index(name)] = torch.tensor([0.1, -0.1, 0.05, -0.05])
    moved = SteeredAugmentation(COLOR_PARAMS).apply(images, g)
    assert (moved - images).abs().max() > 0.02
    assert_allclose(lightness_image(moved), lightness_image(images), atol=0.01)


def test_color_steering_is_the_kronecker_map_and_inverts():
    steering = ColorSteering(dim=12, n_params=2)
    with torch.no_grad():
        steering.generators.normal_(generator=torch.Generator().manual_seed(0))
    steering.requires_grad_(False)
    z = torch.randn(5, 12, dtype=torch.float64)
    g = torch.tensor([0.3, -0.2])
    generators = steering.generators.detach().numpy()
    colour = scipy.linalg.expm(np.einsum("k,kij->ij", g.numpy(), generators))
    dense = np.kron(np.eye(4), colour)
    assert_allclose(steering.matrix(g).numpy(), dense, rtol=1e-5, atol=1e-6)
    expected = z.numpy() @ dense.T
    assert_allclose(steering.steer_all(z.float(), g).numpy(), expected, rtol=1e-4)
    assert_allclose(steering(z.float(), g.expand(5, -1)).numpy(), expected, rtol=1e-4)
    back = steering.steer_all(steering.steer_all(z.float(), g), -g)
    assert_allclose(back.numpy(), z.numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="multiple of 3"):
        ColorSteering(dim=10, n_params=1)


def test_color_fit_learns_the_brightness_map():
    """Brightness scales YIQ colours by 1 + g and leaves the lightness input
    unchanged, so the embedding scales by 1 + g: the fitted generator must be
    close to the identity (exp(g) ~ 1 + g on [-0.4, 0.4]).  Maps left at the
    identity would have a ratio of 1 and a zero generator.
    """
    images = coloured_images()
    extractor = EquivariantExtractor(
        "tiny_cnn", steered=("brightness",), batch_size=8, random_state=0
    ).fit(images)
    assert isinstance(extractor.steering_, ColorSteering)
    (generator,) = extractor.steering_.generators.detach().numpy()
    assert_allclose(generator, np.eye(3), atol=0.2)
    error = extractor.equivariance_error_
    assert error["params"] == ["brightness", "all"]
    assert (error["ratio"] < 0.3).all(), error
    Z = extractor.transform(images)
    assert Z.shape == (24, 3 * 16) and Z.dtype == np.float32
    assert extractor.n_iter_ == len(extractor.loss_curve_) > 0
    assert extractor.loss_curve_[-1] < extractor.loss_curve_[0]
    # the steered embedding follows the augmented images' embedding
    g = np.array([0.3], np.float32)
    brighter = np.clip(images * 1.3, 0, 255).round().astype(np.uint8)
    target = extractor.transform(brighter)
    steered = np.linalg.norm(extractor.steer(Z, g) - target)
    assert steered < 0.3 * np.linalg.norm(Z - target)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_steering_auto_resolves_by_input_and_parameters(rgb_images):
    vectors = np.random.RandomState(0).randn(32, 8).astype(np.float32)
    common = dict(max_epochs=1, batch_size=8, validation_fraction=0.0, random_state=0)
    fitted = {
        "vectors": EquivariantExtractor("mlp", steered=("scale",), **common).fit(
            vectors
        ),
        "colour": EquivariantExtractor("tiny_cnn", **common).fit(rgb_images),
        "d4": EquivariantExtractor("tiny_cnn", steered=("rot90", "flip"), **common).fit(
            rgb_images
        ),
    }
    kinds = {name: type(e.steering_) for name, e in fitted.items()}
    assert kinds == {
        "vectors": ExpmSteering,
        "colour": ColorSteering,
        "d4": DiscreteSteering,
    }
    assert fitted["colour"].net_ is None  # the backbone is not trained
    start = get_backbone("tiny_cnn").state_dict()
    for key, value in fitted["colour"].backbone_.state_dict().items():
        assert torch.equal(value.cpu(), start[key]), key


def test_color_steering_rejects_vectors_and_mixed_parameters(rgb_images):
    vectors = np.random.RandomState(0).randn(16, 8).astype(np.float32)
    with pytest.raises(ValueError, match="steering='color' pools image colours"):
        EquivariantExtractor("mlp", steering="color").fit(vectors)
    with pytest.raises(ValueError, match="steered must be distinct names"):
        EquivariantExtractor("tiny_cnn", steered=("hue", "rot90")).fit(rgb_images)


def test_feature_map_layer_is_the_last_map_before_pooling():
    backbone = get_backbone("resnet18").eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        layer = feature_map_layer(backbone, x)
        features = feature_map(backbone, layer, x)
        pooled = backbone(x)
    assert layer.startswith("layer4")
    assert features.shape == (2, 512, 2, 2)
    assert_allclose(features.mean((2, 3)).numpy(), pooled.numpy(), rtol=1e-5)


class _Tokens(torch.nn.Module):
    """A patch embedding followed by token layers, as in a vision transformer."""

    def __init__(self):
        super().__init__()
        self.patches = torch.nn.Conv2d(3, 8, 4, stride=4)
        self.mix = torch.nn.Linear(8, 8)

    def forward(self, x):
        return self.mix(self.patches(x).flatten(2).transpose(1, 2)).mean(1)


class _SizedTransformer(_Tokens):
    """Token layers with attention that refuse any input but 32 x 32, as ViTs do."""

    def __init__(self):
        super().__init__()
        self.attention = torch.nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x):
        if x.shape[-1] != 32:
            raise AssertionError("Wrong image width!")
        tokens = self.patches(x).flatten(2).transpose(1, 2)
        return self.attention(tokens, tokens, tokens)[0].mean(1)


@pytest.mark.parametrize("model", [_Tokens, _SizedTransformer])
def test_feature_map_layer_rejects_token_backbones(model):
    """A clear error, before a transformer's own check of the input size."""
    backbone = get_backbone(model).eval()
    with pytest.raises(ValueError, match="convolutional feature map"):
        feature_map_layer(backbone, torch.rand(1, 3, 16, 16))

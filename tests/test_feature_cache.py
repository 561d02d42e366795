"""The per-sample feature cache behind DeepFeatureExtractor(memory=...)."""

import glob
import os

import joblib
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from torch import nn

from skfeat import DeepFeatureExtractor, SeAClassifier


class CountingNet(nn.Module):
    """A small image classifier that counts the images its forward sees."""

    seen = 0
    fail_after = None

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        if (
            CountingNet.fail_after is not None
            and CountingNet.seen >= CountingNet.fail_after
        ):
            raise KeyboardInterrupt
        CountingNet.seen += len(x)
        return self.fc(self.features(x))


@pytest.fixture(autouse=True)
def _reset_counter():
    CountingNet.seen, CountingNet.fail_after = 0, None
    yield
    CountingNet.seen, CountingNet.fail_after = 0, None


@pytest.fixture
def images():
    return np.random.RandomState(0).randint(0, 256, (20, 12, 12, 3), dtype=np.uint8)


def _extractor(memory, **params):
    return DeepFeatureExtractor(
        CountingNet, image_size=16, batch_size=4, memory=memory, **params
    )


def _entries(directory):
    return glob.glob(os.path.join(directory, "skfeat-features", "*", "*", "*.f32"))


def test_cache_second_call_runs_no_forward(images, tmp_path):
    expected = _extractor(None).transform(images)
    CountingNet.seen = 0
    first = _extractor(tmp_path).transform(images)
    assert CountingNet.seen == 20
    second = _extractor(str(tmp_path)).transform(images)
    assert CountingNet.seen == 20
    assert_allclose(first, expected, rtol=1e-6)
    assert_array_equal(second, first)
    assert len(_entries(tmp_path)) == 20


def test_cache_duplicates_are_extracted_once_and_order_is_kept(images, tmp_path):
    X = np.concatenate([images[:5], images[:5], images[5:8]])
    features = _extractor(tmp_path).transform(X)
    assert CountingNet.seen == 8
    assert_array_equal(features[:5], features[5:10])
    assert_allclose(features, _extractor(None).transform(X), rtol=1e-6)


def test_cache_accepts_joblib_memory(images, tmp_path):
    _extractor(joblib.Memory(tmp_path, verbose=0)).transform(images)
    assert len(_entries(tmp_path)) == 20


def test_cache_keys_include_everything_that_changes_features(images, tmp_path):
    _extractor(tmp_path).transform(images)
    CountingNet.seen = 0
    _extractor(tmp_path, layer="logits").transform(images)
    assert CountingNet.seen == 20
    CountingNet.seen = 0
    DeepFeatureExtractor(CountingNet, image_size=20, memory=tmp_path).transform(images)
    assert CountingNet.seen == 20


def test_cache_recomputes_damaged_entries(images, tmp_path):
    reference = _extractor(tmp_path).transform(images)
    entries = sorted(_entries(tmp_path))
    with open(entries[0], "r+b") as handle:
        handle.truncate(20)
    with open(entries[1], "r+b") as handle:
        handle.seek(-4, os.SEEK_END)
        handle.write(b"\x00\x01\x02\x03")
    CountingNet.seen = 0
    repaired = _extractor(tmp_path).transform(images)
    assert CountingNet.seen == 2
    assert_array_equal(repaired, reference)


def test_cache_keeps_finished_batches_after_interruption(images, tmp_path):
    CountingNet.fail_after = 8  # interrupted during the third batch of four
    with pytest.raises(KeyboardInterrupt):
        _extractor(tmp_path).transform(images)
    assert len(_entries(tmp_path)) == 8
    assert not glob.glob(os.path.join(tmp_path, "**", ".tmp-*"), recursive=True)
    CountingNet.seen, CountingNet.fail_after = 0, None
    resumed = _extractor(tmp_path).transform(images)
    assert CountingNet.seen == 12
    assert_allclose(resumed, _extractor(None).transform(images), rtol=1e-6)


def test_grid_search_sees_each_image_once(images, tmp_path):
    """Issue #5: fit, predict and score of a 4 x 5 search: one forward per image."""
    labels = np.arange(20) % 2
    search = GridSearchCV(
        make_pipeline(
            _extractor(tmp_path), SeAClassifier(max_epochs=5, random_state=0)
        ),
        {"seaclassifier__eta": [0.0, 0.4, 0.8, 1.2]},
        cv=5,
    )
    search.fit(images, labels)
    search.score(images, labels)
    assert CountingNet.seen == 20
    CountingNet.seen = 0
    search.fit(images, labels)
    assert CountingNet.seen == 0


def _transform_in_worker(images, memory):
    return _extractor(memory).transform(images)


def test_cache_concurrent_writers_and_cross_process_reuse(images, tmp_path):
    """Two processes filling the same entries leave valid entries the parent reuses."""
    results = joblib.Parallel(n_jobs=2)(
        joblib.delayed(_transform_in_worker)(images, str(tmp_path)) for _ in range(2)
    )
    assert_allclose(results[0], results[1], rtol=1e-6)
    CountingNet.seen = 0
    reused = _extractor(tmp_path).transform(images)
    assert CountingNet.seen == 0
    assert_allclose(reused, results[0], rtol=1e-6)
    assert not glob.glob(os.path.join(tmp_path, "**", ".tmp-*"), recursive=True)

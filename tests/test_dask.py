"""Scale-out on Dask: grid search on joblib's dask backend, partitioned featurising."""

import glob

import joblib
import numpy as np
import PIL.Image
import pytest
from numpy.testing import assert_allclose
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from skfeat import DeepFeatureExtractor, SeAClassifier
from skfeat.extraction import dask_transform

distributed = pytest.importorskip("dask.distributed")


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as dask_client,
    ):
        yield dask_client


@pytest.fixture
def image_paths(tmp_path):
    rng = np.random.RandomState(0)
    for i in range(24):
        pixels = rng.randint(0, 256, (20, 20 + i, 3), dtype=np.uint8)
        PIL.Image.fromarray(pixels).save(tmp_path / f"{i:02d}.png")
    return sorted(glob.glob(str(tmp_path / "*.png")))


def _backbone_cache():
    return __import__("skfeat.extraction._cache", fromlist=["_CACHE"])


def test_dask_transform_keeps_order_and_fills_cache(client, image_paths, tmp_path):
    """Partitions run on the workers; rows come back in order; the cache is filled."""
    client.run(lambda: _backbone_cache().clear_backbone_cache())
    cache = tmp_path / "cache"
    extractor = DeepFeatureExtractor("tiny_cnn", weights=None, memory=str(cache))
    features = dask_transform(extractor, image_paths, npartitions=5)
    expected = DeepFeatureExtractor("tiny_cnn", weights=None).transform(image_paths)
    assert_allclose(features, expected, rtol=1e-5)
    built = client.run(lambda: len(_backbone_cache()._CACHE))
    assert sum(built.values()) >= 1, built  # networks built in worker processes
    assert len(glob.glob(str(cache / "skfeat-features" / "*" / "*" / "*.f32"))) == 24


def test_grid_search_on_dask_joblib_backend(client):
    digits = load_digits(n_class=3)
    images, labels = digits.images[:60] / 16.0, digits.target[:60]
    pipe = make_pipeline(
        DeepFeatureExtractor("tiny_cnn", weights=None),
        SeAClassifier(max_epochs=10, random_state=0),
    )
    grid = {"seaclassifier__eta": [0.0, 0.8]}
    with joblib.parallel_backend("dask"):
        on_dask = GridSearchCV(pipe, grid, cv=3, n_jobs=-1).fit(images, labels)
    local = GridSearchCV(pipe, grid, cv=3).fit(images, labels)
    assert_allclose(
        on_dask.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"]
    )

"""End-to-end composition: extractor + SeA in Pipeline, GridSearchCV and clone."""

import pickle

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline

from skfeat import DeepFeatureExtractor, SeAClassifier


@pytest.fixture(scope="module")
def digit_images():
    digits = load_digits(n_class=3)
    return (digits.images[:90] / 16.0).astype(np.float32), digits.target[:90]


def _pipeline():
    return make_pipeline(
        DeepFeatureExtractor("tiny_cnn", weights=None, batch_size=16),
        SeAClassifier(max_epochs=20, random_state=0),
    )


ETAS = [0.0, 0.4, 0.8, 1.2]


@pytest.fixture(scope="module")
def fold_by_fold_scores(digit_images):
    """Independent reference: each (eta, fold) pipeline fitted and scored by hand."""
    images, labels = digit_images
    folds = list(StratifiedKFold(3).split(images, labels))
    return np.array(
        [
            [
                clone(_pipeline())
                .set_params(seaclassifier__eta=eta)
                .fit(images[train], labels[train])
                .score(images[test], labels[test])
                for train, test in folds
            ]
            for eta in ETAS
        ]
    )


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_grid_search_over_extractor_and_sea_pipeline(
    digit_images, fold_by_fold_scores, n_jobs
):
    """Scores equal hand-made fold fits; the refit model equals a direct fit."""
    images, labels = digit_images
    search = GridSearchCV(
        _pipeline(), {"seaclassifier__eta": ETAS}, cv=3, n_jobs=n_jobs
    )
    search.fit(images, labels)
    for k in range(3):
        assert_allclose(
            search.cv_results_[f"split{k}_test_score"], fold_by_fold_scores[:, k]
        )
    direct = _pipeline().set_params(**search.best_params_).fit(images, labels)
    assert_array_equal(search.predict_proba(images), direct.predict_proba(images))
    assert_array_equal(search.predict(images), direct.predict(images))


def test_grid_search_results_do_not_depend_on_n_jobs(digit_images):
    images, labels = digit_images
    grid = {"seaclassifier__eta": [0.0, 0.8]}
    serial = GridSearchCV(_pipeline(), grid, cv=3, n_jobs=1).fit(images, labels)
    parallel = GridSearchCV(_pipeline(), grid, cv=3, n_jobs=2).fit(images, labels)
    assert_allclose(
        serial.cv_results_["mean_test_score"], parallel.cv_results_["mean_test_score"]
    )


def test_extract_once_then_search_probe_equals_pipeline_search(digit_images):
    """The documented pattern: featurise once, then search the probe alone."""
    images, labels = digit_images
    features = DeepFeatureExtractor("tiny_cnn", weights=None).transform(images)
    grid = {"eta": [0.0, 0.8]}
    probe = GridSearchCV(SeAClassifier(max_epochs=20, random_state=0), grid, cv=3)
    probe.fit(features, labels)
    pipe = GridSearchCV(
        _pipeline(), {f"seaclassifier__{k}": v for k, v in grid.items()}, cv=3
    ).fit(images, labels)
    assert_allclose(
        probe.cv_results_["mean_test_score"], pipe.cv_results_["mean_test_score"]
    )


def test_pipeline_clone_and_pickle(digit_images):
    images, labels = digit_images
    pipe = _pipeline().fit(images, labels)
    restored = pickle.loads(pickle.dumps(pipe))
    assert_array_equal(restored.predict(images), pipe.predict(images))
    refit = clone(pipe).fit(images, labels)
    assert_array_equal(refit[-1].coef_, pipe[-1].coef_)

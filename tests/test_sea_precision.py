"""The SeA probes' ``precision`` parameter and their shared base class (issue 12)."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import estimator_checks_generator

from skfeat import DeepFeatureExtractor, SeAClassifier, SeAClassifierCV
from skfeat._engine._feature import fits_on_device
from skfeat.datasets import make_lowshot_features
from skfeat.probing._sea import SHARED_PARAMETER_DOCS

PROBES = [
    SeAClassifier(max_epochs=10, random_state=0),
    SeAClassifierCV(etas=(0.0, 0.8), max_epochs=10, random_state=0),
]
# The one check float32 cannot pass: sklearn compares weighted and repeated
# fits at rtol=1e-7, below float32's rounding (see
# test_sea_float32_weights_equal_repetitions_to_rounding).
FLOAT32_EXACT_CHECKS = {"check_sample_weight_equivalence_on_dense_data"}


def _float32_checks():
    for probe in PROBES:
        probe = clone(probe).set_params(precision="float32")
        for estimator, check in estimator_checks_generator(probe, mark="skip"):
            if check.func.__name__ not in FLOAT32_EXACT_CHECKS:
                yield pytest.param(
                    estimator, check, id=f"{type(probe).__name__}-{check.func.__name__}"
                )


@pytest.fixture(scope="module")
def lowshot():
    X, _, y, _ = make_lowshot_features(
        n_classes=3, n_features=16, n_train_per_class=10, random_state=0
    )
    return X, y


@pytest.mark.parametrize("estimator, check", list(_float32_checks()))
def test_sea_float32_passes_sklearn_checks(estimator, check):
    """With precision="float32", every other scikit-learn check passes."""
    check(estimator)


@pytest.mark.parametrize("probe", PROBES, ids=lambda p: type(p).__name__)
@pytest.mark.parametrize(
    "precision, X_dtype, dtype",
    [
        ("auto", np.float32, torch.float32),
        ("auto", np.float64, torch.float64),
        ("float64", np.float32, torch.float64),
        ("float32", np.float64, torch.float32),
    ],
)
def test_sea_precision_sets_the_training_dtype(
    probe, precision, X_dtype, dtype, lowshot
):
    """The heads train in the chosen dtype; on the CPU "auto" follows X's dtype."""
    X, y = lowshot
    fitted = clone(probe).set_params(precision=precision, device="cpu")
    fitted.fit(X.astype(X_dtype), y)
    assert next(fitted.net_.module_.parameters()).dtype == dtype
    assert fitted.coef_.dtype == {torch.float32: np.float32}.get(dtype, np.float64)
    assert fitted.predict_proba(X).dtype == np.float64


def test_sea_pipeline_on_extractor_features_trains_in_float32():
    """A DeepFeatureExtractor pipeline trains its probe in float32 unasked."""
    X = np.random.RandomState(0).randn(40, 6)
    y = np.arange(40) % 2
    pipe = make_pipeline(
        DeepFeatureExtractor("mlp", weights=None, device="cpu"),
        SeAClassifier(max_epochs=2),
    ).fit(X, y)
    assert pipe[-1].coef_.dtype == np.float32


@pytest.mark.parametrize("probe", PROBES, ids=lambda p: type(p).__name__)
def test_sea_float32_fit_follows_float64_fit(probe, lowshot):
    """float32 and float64 fits from the same seed end close and predict alike."""
    X, y = lowshot
    single = clone(probe).set_params(precision="float64").fit(X, y)
    double_coef = single.coef_
    predictions = single.predict(X)
    fitted = clone(probe).set_params(precision="float32").fit(X, y)
    assert_allclose(fitted.coef_, double_coef, atol=1e-3)
    assert_array_equal(fitted.predict(X), predictions)


def _weighted_and_repeated(probe, X, y, precision):
    weights = np.random.RandomState(0).randint(0, 4, len(y))
    params = dict(precision=precision, batch_size=len(X) * 4)
    if isinstance(probe, SeAClassifierCV):
        params["cv"] = [(np.arange(len(y)), np.arange(len(y)))]
    weighted = clone(probe).set_params(**params).fit(X, y, sample_weight=weights)
    weighted_logits = weighted.decision_function(X)
    params["cv"] = [(np.arange(weights.sum()), np.arange(weights.sum()))]
    if not isinstance(probe, SeAClassifierCV):
        params.pop("cv")
    repeated = (
        clone(probe)
        .set_params(**params)
        .fit(np.repeat(X, weights, axis=0), np.repeat(y, weights))
    )
    return weighted_logits, repeated.decision_function(X)


@pytest.mark.parametrize("probe", PROBES, ids=lambda p: type(p).__name__)
def test_sea_float64_weights_equal_repetitions(probe, lowshot):
    """In float64, integer weights equal repeated rows, for both probes."""
    weighted, repeated = _weighted_and_repeated(probe, *lowshot, "float64")
    assert_allclose(weighted, repeated, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("probe", PROBES, ids=lambda p: type(p).__name__)
def test_sea_float32_weights_equal_repetitions_to_rounding(probe, lowshot):
    """In float32, weighted and repeated fits agree to float32 rounding.

    Tolerance: the two fits sum the same terms in different orders, so every
    step differs by a few float32 ulps (~1e-7 relative); ten epochs of SGD
    with momentum 0.9 (an effective step of ten times lr) carry this into
    the unit-scale logits as at most ~1e-5.  atol=1e-4 leaves a factor 10
    of room and is still 1000 times smaller than a logit.
    """
    weighted, repeated = _weighted_and_repeated(probe, *lowshot, "float32")
    assert_allclose(weighted, repeated, atol=1e-4)


@pytest.mark.parametrize("name", sorted(SHARED_PARAMETER_DOCS))
def test_sea_probes_document_shared_parameters_identically(name):
    """Both probes carry the same text for every shared parameter."""
    entry = "\n".join(
        "    " + line if line else line
        for line in SHARED_PARAMETER_DOCS[name].splitlines()
    )
    assert entry in SeAClassifier.__doc__
    assert entry in SeAClassifierCV.__doc__
    assert "{" + name + "}" not in SeAClassifierCV.__doc__


def test_sea_bad_precision(lowshot):
    """An unknown precision is a ValueError naming the parameter."""
    with pytest.raises(ValueError, match="precision"):
        SeAClassifier(precision="float16").fit(*lowshot)


@pytest.mark.parametrize("probe", PROBES, ids=lambda p: type(p).__name__)
@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_sea_fit_trains_on_the_callers_matrix_without_copy(
    probe, precision, lowshot, monkeypatch
):
    """A C-contiguous float32 X is batched from in place: no whole copy (issue 12)."""
    X, y = lowshot
    X = np.ascontiguousarray(X, dtype=np.float32)
    engine = type(clone(probe).set_params(max_epochs=1).fit(X, y).net_)
    held = []
    original = engine._to_device_tensors

    def record(self, dataset):
        tensors = original(self, dataset)
        held.append(tensors["x"])
        return tensors

    monkeypatch.setattr(engine, "_to_device_tensors", record)
    clone(probe).set_params(precision=precision).fit(X, y)
    assert held and all(x.data_ptr() == X.ctypes.data for x in held)
    assert all(x.dtype == torch.float32 for x in held)


def test_sea_features_stay_on_host_when_the_device_is_too_small(monkeypatch):
    """On CUDA, a matrix over half the free device memory is batched from the host."""
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (1000, 10**6))
    assert fits_on_device(torch.zeros(100, dtype=torch.float32), "cuda")
    assert not fits_on_device(torch.zeros(200, dtype=torch.float32), "cuda")
    assert fits_on_device(torch.zeros(10**6), "cpu")

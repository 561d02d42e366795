"""numpydoc validation of the public API, and documented fitted attributes."""

import numpy as np
import pytest
from numpydoc.docscrape import ClassDoc
from numpydoc.validate import validate
from sklearn.datasets import make_classification

import skfeat
import skfeat.nn
from skfeat.utils._testing import checked_estimators

# Checks enforced on every public object: parameters documented and in order,
# sections well formed, summary present, examples present.
ENFORCED = {
    "GL02",
    "GL03",
    "GL06",
    "GL07",
    "PR01",
    "PR02",
    "PR03",
    "PR06",
    "PR07",
    "RT03",
    "SS01",
    "SS02",
    "SS03",
    "EX01",
}
PUBLIC = [name for name in skfeat.__all__ if name != "__version__"]
PUBLIC_NN = [f"skfeat.nn.{name}" for name in skfeat.nn.__all__]


def _methods(name):
    cls = getattr(skfeat, name)
    if not isinstance(cls, type):
        return []
    return [
        f"skfeat.{name}.{m}"
        for m in vars(cls)
        if not m.startswith("_") and callable(getattr(cls, m))
    ]


@pytest.mark.parametrize(
    "qualname",
    [f"skfeat.{name}" for name in PUBLIC] + PUBLIC_NN,
)
def test_public_object_docstring(qualname):
    errors = [
        (code, message)
        for code, message in validate(qualname)["errors"]
        if code in ENFORCED
    ]
    assert not errors, errors


@pytest.mark.parametrize("qualname", [m for name in PUBLIC for m in _methods(name)])
def test_public_method_docstring(qualname):
    enforced = ENFORCED - {"EX01"}  # methods are exemplified by their class
    errors = [
        (code, message)
        for code, message in validate(qualname)["errors"]
        if code in enforced
    ]
    assert not errors, errors


@pytest.mark.parametrize(
    "estimator", list(checked_estimators()), ids=lambda e: type(e).__name__
)
def test_fitted_attributes_are_documented(estimator):
    X, y = make_classification(n_samples=40, n_features=5, random_state=0)
    estimator.fit(X.astype(np.float32), y)
    documented = {
        item.name.split(":")[0].strip()
        for item in ClassDoc(type(estimator))["Attributes"]
    }
    documented = {n for name in documented for n in name.split(", ")}
    fitted = {
        key for key in vars(estimator) if key.endswith("_") and not key.startswith("_")
    }
    assert fitted <= documented, fitted - documented

"""scikit-learn's estimator checks on every public skfeat estimator."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skfeat.utils._testing import checked_estimators


@parametrize_with_checks(list(checked_estimators()))
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)

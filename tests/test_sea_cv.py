"""SeAClassifierCV: one pass over all (eta, fold) heads, and the collapse warning."""

import warnings

import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.preprocessing import StandardScaler

from skfeat import SeAClassifier, SeAClassifierCV
from skfeat.datasets import make_lowshot_features
from skfeat.nn import SeALoss, multihead_sea_logits, sea_augment

ETAS = (0.0, 0.4, 0.8, 1.2)


@pytest.fixture(scope="module")
def lowshot():
    X, _, y, _ = make_lowshot_features(
        n_classes=4, n_features=16, n_train_per_class=8, random_state=1
    )
    return X, y


def test_multihead_logits_equal_explicit_sea_per_head():
    """Gram-matrix logits equal sea_augment + head, with masks, margin, zero rows."""
    gen = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(
        torch.randn(20, 32, generator=gen, dtype=torch.float64), dim=1
    )
    x[3] = 0.0
    y = torch.randint(0, 5, (20,), generator=gen)
    weight = torch.randn(4, 5, 32, generator=gen, dtype=torch.float64)
    etas = torch.tensor(ETAS, dtype=torch.float64)
    mult = torch.ones(4, 20, dtype=torch.float64)
    mult[2, :7] = 0.0
    logits = multihead_sea_logits(
        weight, x, y, etas, alpha=0.01, temperature=0.1, margin=0.1, multiplicity=mult
    )
    unmasked = multihead_sea_logits(
        weight, x, y, etas, alpha=0.01, temperature=0.1, margin=0.1
    )
    torch.testing.assert_close(unmasked[0], logits[0])
    for h in range(4):
        rows = mult[h] > 0
        augmented = sea_augment(
            lambda z: z @ weight[h].T,
            x[rows],
            y[rows],
            eta=ETAS[h],
            alpha=0.01,
            loss_fn=SeALoss(0.1, 0.1),
        )
        torch.testing.assert_close(logits[h][rows], augmented @ weight[h].T)


@pytest.mark.parametrize("batch_size", [256, 8])
def test_all_data_heads_equal_separate_fits(lowshot, batch_size):
    """Each eta's all-data head equals SeAClassifier(eta), same seed and batches.

    Up to rounding, which SeA's sharp softmax amplifies about 2x per epoch.
    """
    X, y = lowshot
    clf = SeAClassifierCV(
        etas=ETAS, max_epochs=10, batch_size=batch_size, random_state=3
    )
    clf.fit(X, y)
    heads = clf.net_.module_.weights().detach().numpy()[-len(ETAS) :]
    for eta, head in zip(ETAS, heads):
        alone = SeAClassifier(
            eta=eta, max_epochs=10, batch_size=batch_size, random_state=3
        )
        assert_allclose(head, alone.fit(X, y).coef_, rtol=1e-6, atol=1e-8)
    chosen = SeAClassifier(
        eta=clf.eta_, max_epochs=10, batch_size=batch_size, random_state=3
    )
    assert_allclose(clf.coef_, chosen.fit(X, y).coef_, rtol=1e-6, atol=1e-8)


def test_cv_results_equal_grid_search_of_full_batch_fits(lowshot):
    """With full batches, every fold head is exactly a separate fit on that fold."""
    X, y = lowshot
    clf = SeAClassifierCV(
        etas=ETAS, cv=StratifiedKFold(3), max_epochs=10, random_state=3
    )
    clf.fit(X, y)
    search = GridSearchCV(
        SeAClassifier(max_epochs=10, random_state=3),
        {"eta": list(ETAS)},
        cv=StratifiedKFold(3),
    ).fit(X, y)
    for key in (
        "split0_test_score",
        "split2_test_score",
        "mean_test_score",
        "rank_test_score",
    ):
        assert_allclose(clf.cv_results_[key], search.cv_results_[key])
    assert clf.eta_ == search.best_params_["eta"]
    assert clf.best_score_ == pytest.approx(search.best_score_)
    assert clf.n_splits_ == 3


def test_ties_go_to_the_smallest_eta():
    X, y = make_blobs(
        n_samples=60,
        centers=[[5, 0, 0], [0, 5, 0], [0, 0, 5]],
        cluster_std=0.1,
        random_state=0,
    )
    clf = SeAClassifierCV(etas=(0.8, 0.2, 0.4), max_epochs=5, random_state=0).fit(X, y)
    assert_array_equal(clf.cv_results_["mean_test_score"], [1.0, 1.0, 1.0])
    assert clf.eta_ == 0.2


def test_refit_false_keeps_no_model(lowshot):
    """refit=False chooses the same eta from the same scores, and cannot predict."""
    X, y = lowshot
    params = dict(etas=(0.0, 0.8), max_epochs=3, random_state=0)
    clf = SeAClassifierCV(refit=False, **params).fit(X, y)
    refitted = SeAClassifierCV(refit=True, **params).fit(X, y)
    assert_array_equal(
        clf.cv_results_["mean_test_score"], refitted.cv_results_["mean_test_score"]
    )
    assert clf.eta_ == refitted.eta_
    assert not hasattr(clf, "coef_")
    with pytest.raises(AttributeError, match="refit=False"):
        clf.predict(X)


def test_custom_scoring_and_outer_search(lowshot):
    """scoring= is used as GridSearchCV uses it; nesting in a search changes nothing."""
    X, y = lowshot
    clf = SeAClassifierCV(
        etas=(0.0, 0.8), scoring="neg_log_loss", max_epochs=5, random_state=0
    ).fit(X, y)
    search = GridSearchCV(
        SeAClassifier(max_epochs=5, random_state=0),
        {"eta": [0.0, 0.8]},
        scoring="neg_log_loss",
        cv=StratifiedKFold(3),
    ).fit(X, y)
    assert_allclose(
        clf.cv_results_["mean_test_score"], search.cv_results_["mean_test_score"]
    )
    outer = GridSearchCV(
        SeAClassifierCV(etas=(0.0, 0.8), max_epochs=5, random_state=0),
        {"temperature": [0.1, 0.2]},
        cv=2,
    ).fit(X, y)
    direct = SeAClassifierCV(
        etas=(0.0, 0.8), max_epochs=5, random_state=0, **outer.best_params_
    ).fit(X, y)
    assert outer.best_estimator_.eta_ == direct.eta_
    assert_array_equal(outer.best_estimator_.coef_, direct.coef_)


@pytest.mark.parametrize("etas", [(), (-0.1, 0.4), (0.4, float("nan"))])
def test_bad_etas(lowshot, etas):
    with pytest.raises(ValueError, match="etas"):
        SeAClassifierCV(etas=etas, max_epochs=1).fit(*lowshot)


def _collapsing_problem():
    X, y = make_blobs(n_samples=300, random_state=0)
    return StandardScaler().fit_transform(X), (y == 1).astype(int)


def test_sea_classifier_warns_on_collapse_and_cv_avoids_it():
    X, y = _collapsing_problem()
    with pytest.warns(ConvergenceWarning, match=r"eta=0.8.*SeAClassifierCV"):
        collapsed = SeAClassifier(eta=0.8, random_state=0).fit(X, y)
    assert collapsed.score(X, y) < 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        chosen = SeAClassifierCV(etas=(0.0, 0.4, 0.8), random_state=0).fit(X, y)
    assert chosen.eta_ < 0.8 and chosen.score(X, y) > 0.85


def test_no_collapse_warning_when_sea_helps():
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        for seed in range(3):
            X, _, y, _ = make_lowshot_features(random_state=seed)
            SeAClassifier(eta=0.8, max_epochs=30, random_state=seed).fit(X, y)


def test_fitted_model_keeps_no_training_tensors(lowshot):
    """The device copies of X (and its Gram matrix) are released when fit ends."""
    import gc

    X, y = lowshot
    clf = SeAClassifierCV(etas=(0.0, 0.8), max_epochs=2, random_state=0).fit(X, y)
    gc.collect()
    assert len(clf.net_._device_tensors) == 0  # weak cache keyed on skorch's dataset

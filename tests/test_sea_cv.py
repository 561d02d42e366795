"""SeAClassifierCV: one pass over all (eta, fold) heads, and the collapse warning."""

import math
import statistics
import warnings

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.preprocessing import StandardScaler

from skfeat import SeAClassifier, SeAClassifierCV
from skfeat.datasets import make_lowshot_features
from skfeat.nn import SeALoss, multihead_sea_logits, sea_augment
from skfeat.probing import _sea_cv
from skfeat.probing._sea_cv import SELECTION_RULES

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
def test_heads_equal_separate_fits(lowshot, batch_size):
    """Each fold's head, and the final one, equal SeAClassifier(eta), same seed.

    Up to rounding, which SeA's sharp softmax amplifies about 2x per epoch:
    within 1e-6 on torch 2.14, and 2.2e-6 (one element of 64) on torch 2.3,
    whose float64 kernels round differently, hence ``rtol=1e-5``.
    """
    X, y = lowshot
    folds = list(StratifiedKFold(3).split(X, y))
    clf = SeAClassifierCV(
        etas=ETAS,
        cv=folds,
        max_epochs=10,
        batch_size=batch_size,
        random_state=3,
        precision="float64",
    )
    clf.fit(X, y)
    assert clf.cv_coefs_.shape == (3, len(ETAS), *clf.coef_.shape)
    for (train, _), heads in zip(folds, clf.cv_coefs_):
        for eta, head in zip(ETAS, heads):
            alone = SeAClassifier(
                eta=eta,
                max_epochs=10,
                batch_size=batch_size,
                random_state=3,
                precision="float64",
            )
            assert_allclose(
                head, alone.fit(X[train], y[train]).coef_, rtol=1e-5, atol=1e-8
            )
    chosen = SeAClassifier(
        eta=clf.eta_,
        max_epochs=10,
        batch_size=batch_size,
        random_state=3,
        precision="float64",
    )
    assert_allclose(clf.coef_, chosen.fit(X, y).coef_, rtol=1e-5, atol=1e-8)


def test_cv_results_equal_grid_search_of_full_batch_fits(lowshot):
    """With full batches, every fold head is exactly a separate fit on that fold."""
    X, y = lowshot
    clf = SeAClassifierCV(
        etas=ETAS,
        cv=StratifiedKFold(3),
        selection="first",
        max_epochs=10,
        random_state=3,
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


def _separable_blobs():
    return make_blobs(
        n_samples=60,
        centers=[[5, 0, 0], [0, 5, 0], [0, 0, 5]],
        cluster_std=0.1,
        random_state=0,
    )


def test_ties_go_to_the_smallest_eta():
    X, y = _separable_blobs()
    clf = SeAClassifierCV(
        etas=(0.8, 0.2, 0.4), selection="smallest", max_epochs=5, random_state=0
    ).fit(X, y)
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
        etas=(0.0, 0.8),
        scoring="neg_log_loss",
        max_epochs=5,
        random_state=0,
        precision="float64",
    ).fit(X, y)
    search = GridSearchCV(
        SeAClassifier(max_epochs=5, random_state=0, precision="float64"),
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


def _cv_results(etas, splits, margins=None):
    """A cv_results_-like dict of hand-made split scores, shape (etas, folds)."""
    splits = np.asarray(splits, dtype=float)
    margins = np.zeros(len(etas)) if margins is None else np.asarray(margins)
    means = splits.mean(axis=1)
    return {
        "param_eta": np.ma.MaskedArray(etas, mask=False),
        "params": [{"eta": eta} for eta in etas],
        **{f"split{k}_test_score": splits[:, k] for k in range(splits.shape[1])},
        "mean_test_score": means,
        "std_test_score": splits.std(axis=1),
        "rank_test_score": np.array([1 + np.sum(means > m) for m in means]),
        "mean_test_margin": margins,
    }


@pytest.mark.parametrize(
    "rule, expected",
    [
        ("first", 0.8),
        ("smallest", 0.0),
        ("largest", 1.0),
        ("one_se", 1.0),
        ("margin", 0.4),
    ],
)
def test_selection_rules_on_ties(rule, expected):
    """Among etas tied on the best mean score, each rule picks its own (issue 13)."""
    etas = [0.8, 0.0, 0.4, 1.0, 1.2]
    splits = [[1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 1], [0.3, 0.2, 0.25]]
    margins = [2.0, 1.0, 3.0, 2.5, 9.0]  # 1.2's margin is the largest, not tied
    chosen = SELECTION_RULES[rule](_cv_results(etas, splits, margins))
    assert etas[chosen] == expected


def test_one_se_rule_takes_the_largest_eta_within_one_standard_error():
    """One SE of the best eta's split scores, sample std over sqrt(folds)."""
    etas = [0.0, 0.4, 0.8, 1.2]
    best = [1.0, 0.9, 0.95]
    se = statistics.stdev(best) / math.sqrt(3)  # 0.0289
    splits = [
        [0.9, 0.9, 0.9],
        best,
        [0.95 - se / 2] * 3,  # within one SE: the choice
        [0.95 - 2 * se] * 3,  # larger, but two SEs below the best
    ]
    assert SELECTION_RULES["one_se"](_cv_results(etas, splits)) == 2
    splits[2] = [0.95 - 1.01 * se] * 3
    assert SELECTION_RULES["one_se"](_cv_results(etas, splits)) == 1


@pytest.mark.parametrize("rule", sorted(SELECTION_RULES))
def test_selection_rules_never_choose_a_collapse(rule):
    """An eta clearly worse in validation loses under every rule."""
    etas = [1.2, 0.0, 0.8, 0.4]
    splits = [[0.1, 0.2, 0.15], [0.9, 0.95, 1.0], [1.0, 0.95, 0.95], [0.9, 0.9, 0.9]]
    margins = [5.0, 1.0, 1.0, 1.0]
    chosen = SELECTION_RULES[rule](_cv_results(etas, splits, margins))
    assert etas[chosen] != 1.2
    means = np.mean(splits, axis=1)
    assert means[chosen] >= means.max() - np.std(splits[2], ddof=1) / math.sqrt(3)


def test_default_selection_prefers_a_stronger_eta_on_ties():
    """On an all-tie validation split the default picks a larger eta (issue 13)."""
    X, y = _separable_blobs()
    etas = (0.0, 0.4, 0.8)
    clf = SeAClassifierCV(etas=etas, max_epochs=5, random_state=0).fit(X, y)
    old = clone(clf).set_params(selection="smallest").fit(X, y)
    assert_array_equal(clf.cv_results_["mean_test_score"], [1.0, 1.0, 1.0])
    assert old.eta_ == 0.0 and clf.eta_ > old.eta_


def test_first_selection_reproduces_grid_search_on_ties():
    """selection='first' is GridSearchCV's first-wins rule over the etas' order."""
    X, y = _separable_blobs()
    etas = [0.6, 0.8, 0.0]  # "smallest" would take 0.0
    clf = SeAClassifierCV(
        etas=etas,
        cv=StratifiedKFold(3),
        selection="first",
        max_epochs=5,
        random_state=0,
    ).fit(X, y)
    search = GridSearchCV(
        SeAClassifier(max_epochs=5, random_state=0),
        {"eta": etas},
        cv=StratifiedKFold(3),
    ).fit(X, y)
    assert_array_equal(search.cv_results_["mean_test_score"], [1.0] * 3)
    assert clf.eta_ == search.best_params_["eta"] == 0.6
    assert clf.best_score_ == search.best_score_


def test_callable_selection_receives_cv_results(lowshot):
    """A callable gets cv_results_ and returns the index of the chosen eta."""
    X, y = lowshot
    seen = []

    def last(cv_results):
        seen.append(cv_results)
        return len(cv_results["params"]) - 1

    clf = SeAClassifierCV(etas=(0.0, 0.4), selection=last, max_epochs=3, random_state=0)
    clf.fit(X, y)
    assert clf.eta_ == 0.4 and seen == [clf.cv_results_]
    assert clf.best_score_ == clf.cv_results_["mean_test_score"][1]


@pytest.mark.parametrize(
    "selection, match",
    [
        ("closest", "'selection' parameter"),
        (lambda results: 2, r"selection must return .* \[0, 2\); got 2"),
        (lambda results: 0.0, "selection must return .* got 0.0"),
    ],
)
def test_bad_selection(lowshot, selection, match):
    with pytest.raises(ValueError, match=match):
        SeAClassifierCV(etas=(0.0, 0.4), selection=selection, max_epochs=1).fit(
            *lowshot
        )


def test_cv_results_margin_equals_explicit_computation(lowshot):
    """mean_test_margin: true-class minus best other logit of each fold's head."""
    X, y = lowshot
    folds = StratifiedKFold(3)
    clf = SeAClassifierCV(etas=(0.0, 0.8), cv=folds, max_epochs=3, random_state=0)
    weights = clf.fit(X, y).cv_coefs_
    expected = np.zeros(2)
    for k, (_, test) in enumerate(folds.split(X, y)):
        x = X[test] / np.linalg.norm(X[test], axis=1, keepdims=True)
        for i in range(2):
            logits = x @ weights[k, i].T
            for row, label in zip(logits, y[test]):
                true = row[label]
                expected[i] += (true - np.delete(row, label).max()) / len(test) / 3
    assert_allclose(clf.cv_results_["mean_test_margin"], expected)


def test_cv_results_do_not_depend_on_the_scoring_chunk(lowshot, monkeypatch):
    """Validation rows read in chunks score as in one piece (issue 12)."""
    X, y = lowshot
    weights = np.random.RandomState(0).randint(1, 4, len(y))
    clf = SeAClassifierCV(etas=(0.0, 0.8), max_epochs=3, random_state=0)
    whole = clf.fit(X, y, sample_weight=weights).cv_results_
    monkeypatch.setattr(_sea_cv, "PREDICT_CHUNK_ROWS", 3)
    chunked = clone(clf).fit(X, y, sample_weight=weights).cv_results_
    for key in ("mean_test_score", "mean_test_margin"):
        assert_allclose(chunked[key], whole[key], rtol=1e-12)
    accuracy = SeAClassifierCV(
        etas=(0.0, 0.8), max_epochs=3, random_state=0, scoring="accuracy"
    ).fit(X, y, sample_weight=weights)
    assert_allclose(accuracy.cv_results_["mean_test_score"], whole["mean_test_score"])

import pickle

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.metrics import accuracy_score
from skorch.exceptions import DeviceWarning

from skfeat import SeAClassifier
from skfeat._engine import SeANet
from skfeat.datasets import make_lowshot_features
from skfeat.nn import (
    SeALoss,
    sea_augment,
    sea_perturb,
    semantic_directions,
    semantic_weights,
)

# ---------------------------------------------------------------------------
# An independent reference of methods.md section 1.7, written from the
# formulas: hand-derived gradients, hand-written SGD with momentum, float64.


def _rownorm(v):
    return v / v.norm(dim=1, keepdim=True).clamp(min=1e-12)


def _probs(W, X, y, lam, delta):
    logits = X @ W.T - delta * torch.nn.functional.one_hot(y, W.shape[0])
    return torch.softmax(logits / lam, dim=1)


def reference_fit(
    X,
    y,
    *,
    eta,
    direction="semantic",
    alpha=0.01,
    lam=0.1,
    delta=0.0,
    lr=1.6,
    momentum=0.9,
    wd=1e-6,
    epochs=30,
    batch_size=256,
    random_state=0,
):
    """Return W trained as the SeA pseudocode says, seeded like SeAClassifier."""
    seed = int(np.random.RandomState(random_state).randint(np.iinfo(np.int32).max))
    # Features are held as float32 and normalised in the training dtype.
    X = np.asarray(X, dtype=np.float32).astype(np.float64)
    X = torch.from_numpy(
        X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    )
    y = torch.as_tensor(y)
    n, d = X.shape
    n_classes = int(y.max()) + 1
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        W = (
            torch.nn.Linear(d, n_classes, bias=False, dtype=torch.float64)
            .weight.detach()
            .clone()
        )
    generator = torch.Generator().manual_seed(seed)
    onehot = torch.nn.functional.one_hot(y, n_classes).double()
    buf = None
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            rows = order[start : start + batch_size]
            Xb, yb, Eb = X[rows], y[rows], onehot[rows]
            b = len(rows)
            Xa = Xb
            if eta > 0 and b >= 2:
                G = (_probs(W, Xb, yb, lam, delta) - Eb) @ W / b
                if direction == "semantic":
                    A = _rownorm(G) @ Xb.T / alpha
                    A.fill_diagonal_(-torch.inf)
                    V = _rownorm(torch.softmax(A, dim=1) @ Xb)
                else:  # ablation: the raw normalised gradient
                    V = _rownorm(G)
                Xa = _rownorm(Xb + eta * V)
            grad_W = (_probs(W, Xa, yb, lam, delta) - Eb).T @ Xa / b + wd * W
            buf = grad_W if buf is None else momentum * buf + grad_W
            W = W - lr * buf
    return W.numpy()


def _accuracy(W, X, y):
    return accuracy_score(y, (X @ W.T).argmax(axis=1))


# ---------------------------------------------------------------------------
# Layer 1: pure-torch pieces against the formulas.


@pytest.mark.parametrize("margin", [0.0, 0.2])
def test_sea_loss_gradient_matches_formula(margin):
    """d(mean loss)/dx = (1/b) W^T (p - e_y) with p = softmax((Wx - delta e_y)/lam)."""
    torch.manual_seed(0)
    W = torch.randn(4, 6, dtype=torch.float64)
    x = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 3, 3, 2])
    loss = SeALoss(temperature=0.1, margin=margin)(x @ W.T, y)
    (grad,) = torch.autograd.grad(loss, x)
    expected = (
        (_probs(W, x.detach(), y, 0.1, margin) - torch.eye(4, dtype=torch.float64)[y])
        @ W
        / 5
    )
    torch.testing.assert_close(grad, expected)


def _batch(b=6, d=10, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = _rownorm(torch.randn(b, d, generator=gen, dtype=torch.float64))
    grad = torch.randn(b, d, generator=gen, dtype=torch.float64)
    return x, grad


def test_semantic_weights_are_stochastic_without_self_weight():
    x, grad = _batch()
    weights = semantic_weights(x, grad, alpha=0.5)
    torch.testing.assert_close(weights.sum(1), torch.ones(6, dtype=torch.float64))
    assert torch.all(weights.diagonal() == 0)
    assert torch.all(weights >= 0)


def test_semantic_directions_lie_in_span_of_other_rows():
    """Least-squares residual of v_i on the other rows is ~0 (x_i's own is not)."""
    x, grad = _batch(b=6, d=10)
    directions = semantic_directions(x, grad, alpha=0.5)
    for i in range(6):
        others = torch.cat([x[:i], x[i + 1 :]]).T
        coef = torch.linalg.lstsq(others, directions[i]).solution
        assert torch.linalg.norm(others @ coef - directions[i]) < 1e-10
        coef_self = torch.linalg.lstsq(others, x[i]).solution
        assert torch.linalg.norm(others @ coef_self - x[i]) > 1e-2  # non-trivial span


def test_semantic_weights_become_one_hot_as_alpha_vanishes():
    x, grad = _batch()
    weights = semantic_weights(x, grad, alpha=1e-6)
    scores = _rownorm(grad) @ x.T
    scores.fill_diagonal_(-torch.inf)
    expected = torch.nn.functional.one_hot(scores.argmax(1), 6).double()
    torch.testing.assert_close(weights, expected)


def test_semantic_weights_uniform_for_zero_gradient():
    x, _ = _batch()
    weights = semantic_weights(x, torch.zeros_like(x))
    expected = (
        torch.ones(6, 6, dtype=torch.float64) - torch.eye(6, dtype=torch.float64)
    ) / 5
    torch.testing.assert_close(weights, expected)


def test_semantic_weights_with_multiplicity_equal_repeated_rows():
    """Weight 2 for a row equals two copies of it; weight 0 equals removal."""
    x, grad = _batch(b=4)
    counts = torch.tensor([2.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    weighted = semantic_directions(x, grad, alpha=0.3, multiplicity=counts)
    index = torch.tensor([0, 0, 1, 3])
    repeated = semantic_directions(x[index], grad[index], alpha=0.3)
    torch.testing.assert_close(weighted[[0, 1, 3]], repeated[[0, 2, 3]])


def test_sea_augment_unit_norm_copy_and_degenerate_rows():
    x, _ = _batch()
    x[2] = 0.0
    head = torch.nn.Linear(10, 3, bias=False, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    before = x.clone()
    out = sea_augment(head, x, y, eta=0.8, alpha=0.01, loss_fn=SeALoss())
    torch.testing.assert_close(x, before)  # input untouched
    assert head.weight.grad is None  # no parameter gradient from the adversarial pass
    assert torch.isfinite(out).all()
    norms = out.norm(dim=1)
    torch.testing.assert_close(norms, torch.ones(6, dtype=torch.float64))
    single = sea_augment(head, x[:1], y[:1], eta=0.8, alpha=0.01, loss_fn=SeALoss())
    torch.testing.assert_close(single, x[:1])
    zero_direction = sea_perturb(x[:1], torch.zeros_like(x[:1]), eta=0.8)
    torch.testing.assert_close(zero_direction, x[:1])


# ---------------------------------------------------------------------------
# Layers 2 and 3: the engine and the estimator against the reference.


@pytest.mark.parametrize("eta, batch_size", [(0.0, 256), (0.8, 256), (0.8, 16)])
def test_sea_classifier_matches_reference_loop(eta, batch_size):
    """Equal to rounding; 10 epochs, as alpha=0.01 doubles rounding gaps per epoch.

    Batches with fewer rows than features take the Gram-matrix step, which
    sums in another order than the reference: 1e-16 gaps grow to ~1e-8.
    """
    X_train, _, y_train, _ = make_lowshot_features(
        n_classes=4, n_features=16, random_state=1
    )
    clf = SeAClassifier(
        eta=eta,
        max_epochs=10,
        batch_size=batch_size,
        random_state=3,
        precision="float64",
    )
    clf.fit(X_train, y_train)
    expected = reference_fit(
        X_train, y_train, eta=eta, epochs=10, batch_size=batch_size, random_state=3
    )
    assert_allclose(clf.coef_, expected, rtol=1e-7, atol=1e-8)


def test_sea_classifier_eta_zero_is_plain_probe():
    """eta=0 is the plain probe exactly: same coef_ as the reference without SeA."""
    X_train, _, y_train, _ = make_lowshot_features(random_state=2)
    probe = SeAClassifier(max_epochs=20, random_state=0, precision="float64")
    plain = clone(probe).set_params(eta=0.0).fit(X_train, y_train)
    sea = clone(probe).set_params(eta=0.8).fit(X_train, y_train)
    assert_allclose(
        plain.coef_, reference_fit(X_train, y_train, eta=0, epochs=20), rtol=1e-9
    )
    assert not np.allclose(plain.coef_, sea.coef_)


def test_sea_classifier_beats_plain_probe_and_raw_gradient_low_shot():
    """Spec 6.1: mean SeA accuracy >= plain + 3 points, and > a raw-gradient step."""
    scores = {"plain": [], "sea": [], "raw": []}
    for seed in range(5):
        X_train, X_test, y_train, y_test = make_lowshot_features(random_state=seed)
        for name, eta in (("plain", 0.0), ("sea", 0.8)):
            clf = SeAClassifier(eta=eta, max_epochs=30, random_state=seed).fit(
                X_train, y_train
            )
            scores[name].append(clf.score(X_test, y_test))
        W = reference_fit(
            X_train, y_train, eta=0.8, direction="raw", epochs=30, random_state=seed
        )
        scores["raw"].append(_accuracy(W, X_test, y_test))
    means = {name: np.mean(values) for name, values in scores.items()}
    assert means["sea"] >= means["plain"] + 0.03, means
    assert means["sea"] > means["raw"], means


def test_sea_classifier_batch_of_one_trains_without_nan():
    X, y = make_classification(n_samples=9, n_features=5, random_state=0)
    clf = SeAClassifier(batch_size=1, max_epochs=3, random_state=0).fit(X, y)
    assert np.isfinite(clf.coef_).all()
    odd = SeAClassifier(batch_size=4, max_epochs=3, random_state=0).fit(
        X, y
    )  # last batch of 1
    assert np.isfinite(odd.coef_).all()
    assert np.isfinite(odd.loss_curve_).all()


@pytest.mark.parametrize(
    "y",
    [
        np.array(["cat", "dog", "emu"] * 10),
        np.array([10, -3, 7] * 10),
        np.array(["yes", "no"] * 15),
    ],
)
def test_sea_classifier_labels_of_any_type(y):
    X, _ = make_classification(n_samples=30, n_features=6, random_state=0)
    clf = SeAClassifier(max_epochs=5, random_state=0).fit(X, y)
    assert_array_equal(clf.classes_, np.unique(y))
    assert set(clf.predict(X)) <= set(y)
    proba = clf.predict_proba(X)
    assert proba.dtype == np.float64 and proba.shape == (30, len(clf.classes_))
    assert_allclose(proba.sum(1), 1.0)
    assert_allclose(np.exp(clf.predict_log_proba(X)), proba, rtol=1e-10)
    assert_array_equal(clf.classes_[proba.argmax(1)], clf.predict(X))
    assert clf.coef_.shape == (len(clf.classes_), 6)
    scores = clf.decision_function(X)
    if len(clf.classes_) == 2:
        assert scores.shape == (30,)
        assert_array_equal(clf.classes_[(scores > 0).astype(int)], clf.predict(X))


def test_sea_classifier_seeded_without_touching_global_rng():
    X, y = make_classification(n_samples=40, n_features=6, random_state=0)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = SeAClassifier(max_epochs=5, batch_size=8, random_state=7).fit(X, y)
    assert torch.equal(torch.rand(3), expected_next)
    second = SeAClassifier(max_epochs=5, batch_size=8, random_state=7).fit(X, y)
    assert_array_equal(first.coef_, second.coef_)
    other = SeAClassifier(max_epochs=5, batch_size=8, random_state=8).fit(X, y)
    assert not np.array_equal(first.coef_, other.coef_)


def test_sea_classifier_attributes_and_history():
    X, y = make_classification(n_samples=40, n_features=6, random_state=0)
    clf = SeAClassifier(max_epochs=7, random_state=0).fit(X, y)
    assert clf.n_iter_ == 7 and len(clf.loss_curve_) == 7
    assert clf.n_features_in_ == 6
    assert_allclose(clf.net_.history[:, "train_loss"], clf.loss_curve_)


def test_sea_classifier_early_stopping_holds_out_validation():
    X_train, _, y_train, _ = make_lowshot_features(n_train_per_class=20, random_state=0)
    clf = SeAClassifier(
        early_stopping=True,
        n_iter_no_change=3,
        max_epochs=200,
        validation_fraction=0.2,
        random_state=0,
    ).fit(X_train, y_train)
    assert clf.n_iter_ < 200
    assert "valid_loss" in clf.net_.history[-1]
    plain = SeAClassifier(max_epochs=2, random_state=0).fit(X_train, y_train)
    assert "valid_loss" not in plain.net_.history[-1]  # no hidden split by default


def test_sea_classifier_pickle_round_trip():
    X, y = make_classification(n_samples=40, n_features=6, random_state=0)
    clf = SeAClassifier(max_epochs=5, random_state=0).fit(X, y)
    restored = pickle.loads(pickle.dumps(clf))
    assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(eta=-0.1), "eta"),
        (dict(eta=float("inf")), "eta"),
        (dict(eta=float("nan")), "eta"),
        (dict(alpha=0.0), "alpha"),
        (dict(temperature=float("nan")), "temperature"),
        (dict(temperature=-1.0), "temperature"),
        (dict(lr=0.0), "lr"),
        (dict(lr=float("inf")), "lr"),
        (dict(batch_size=0), "batch_size"),
        (dict(momentum=1.0), "momentum"),
    ],
)
def test_sea_classifier_bad_parameters(params, match):
    X, y = make_classification(n_samples=20, n_features=4, random_state=0)
    with pytest.raises(ValueError, match=match):
        SeAClassifier(**params).fit(X, y)


@pytest.mark.parametrize(
    "X, y, match",
    [
        (np.array([[0.0, np.nan], [1.0, 2.0]]), [0, 1], "NaN"),
        (np.array([[0.0, np.inf], [1.0, 2.0]]), [0, 1], "infinity"),
        (np.arange(4.0), [0, 1, 0, 1], "2D array"),
        (np.zeros((4, 2, 2)), [0, 1, 0, 1], "dim"),
        (np.ones((4, 2)), [1, 1, 1, 1], "class"),
        (np.ones((4, 2)), [0, 1, 0], "inconsistent numbers of samples"),
    ],
)
def test_sea_classifier_bad_inputs(X, y, match):
    with pytest.raises(ValueError, match=match):
        SeAClassifier(max_epochs=1).fit(X, y)


@pytest.mark.gpu
def test_sea_classifier_gpu_fit_unpickles_on_cpu(monkeypatch):
    X, y = make_classification(n_samples=60, n_features=6, random_state=0)
    # float32 on both devices: "auto" would train this float64 input in
    # float64 on the CPU, 5e-4 away after 5 epochs (measured on an H200).
    params = dict(max_epochs=5, random_state=0, precision="float32")
    clf = SeAClassifier(device="cuda", **params).fit(X, y)
    blob = pickle.dumps(clf)
    cpu_reference = SeAClassifier(device="cpu", **params).fit(X, y)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(DeviceWarning, match="no CUDA devices are available"):
        restored = pickle.loads(blob)
    assert_allclose(restored.predict_proba(X), clf.predict_proba(X), rtol=1e-6)
    assert_allclose(restored.coef_, cpu_reference.coef_, rtol=1e-4, atol=1e-5)


def test_sea_classifier_fitted_model_does_not_keep_training_data():
    """The pickle of a fitted model has the same size for 50 and 2,000 samples."""
    sizes = []
    for n_samples in (50, 2000):
        X, y = make_classification(n_samples=n_samples, n_features=30, random_state=0)
        clf = SeAClassifier(max_epochs=2, random_state=0).fit(X, y)
        sizes.append(len(pickle.dumps(clf)))
    assert abs(sizes[1] - sizes[0]) < 2_000, sizes


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_sea_classifier_gram_and_explicit_steps_give_the_same_batch(
    weighted, precision, monkeypatch
):
    """Both SeA step formulations give the same augmented logits (issue 12)."""
    X, _, y, _ = make_lowshot_features(n_classes=3, n_features=32, random_state=0)
    clf = SeAClassifier(max_epochs=2, precision=precision, random_state=0).fit(X, y)
    net = clf.net_
    dtype = next(net.module_.parameters()).dtype
    x = torch.nn.functional.normalize(torch.as_tensor(X[:12], dtype=dtype), dim=1)
    codes = torch.as_tensor(np.searchsorted(clf.classes_, y[:12]))
    weights = torch.ones(12, dtype=dtype)
    if weighted:
        weights = torch.as_tensor(np.arange(12) % 3, dtype=dtype)
    logits = {}
    for gram in (True, False):
        monkeypatch.setattr(type(net), "uses_gram", staticmethod(lambda b, d: gram))
        logits[gram] = net.augmented_logits(x, codes, weights).detach()
    explicit = net.module_(
        sea_augment(
            net.module_,
            x,
            codes,
            eta=clf.eta,
            alpha=clf.alpha,
            loss_fn=SeALoss(),
            multiplicity=weights if weighted else None,
        )
    ).detach()
    tolerance = 1e-10 if precision == "float64" else 1e-5
    torch.testing.assert_close(logits[False], explicit, rtol=0, atol=tolerance)
    torch.testing.assert_close(logits[True], explicit, rtol=0, atol=tolerance)
    assert not torch.equal(explicit, net.module_(x).detach())


def test_sea_classifier_chooses_the_step_from_the_batch_shape():
    """The Gram step for batches with fewer rows than features, else explicit."""
    assert SeANet.uses_gram(256, 2048)
    assert not SeANet.uses_gram(256, 64)


@pytest.mark.parametrize("n_classes", [2, 4])
def test_sea_collapse_reference_equals_ridge_classifier(n_classes):
    """The collapse check's dual ridge scores decide as RidgeClassifier does."""
    from sklearn.linear_model import RidgeClassifier

    from skfeat.probing._sea import _clean_ridge_scores

    rng = np.random.RandomState(0)
    X = rng.standard_normal((60, 90))  # fewer rows than features, as in the check
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = rng.randint(0, n_classes, 60)
    weights = rng.uniform(0.5, 2.0, 60)
    ridge = RidgeClassifier(alpha=1.0, fit_intercept=False)
    ridge.fit(X, y, sample_weight=weights)
    scores = _clean_ridge_scores(X.astype(np.float32), y, weights)
    expected = ridge.decision_function(X)
    if n_classes == 2:
        expected = np.column_stack([-expected, expected])
    assert_allclose(scores, expected, rtol=1e-4, atol=1e-5)
    assert_array_equal(scores.argmax(1), ridge.predict(X))

"""Shared behaviours of the trainable extractors: weights, warm start, bad inputs.

Non-regression tests of issue 20 ("the first hour with the trainable
extractors"), run on both ``AugSelfExtractor`` and ``EquivariantExtractor``
with the ``"mlp"`` vector backbone.
"""

import os
import pickle

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from sklearn.linear_model import LogisticRegression

from skfeat import AugSelfExtractor, EquivariantExtractor, SteeredTTAClassifier
from skfeat._engine import load_checkpoint_file
from skfeat._engine._checkpoint import CHECKPOINT_FILE

PARAMS = {
    AugSelfExtractor: dict(base="simclr", aug_types=("scale",), head_hidden=8),
    EquivariantExtractor: dict(steered=("scale",)),
}


def _extractor(cls, **params):
    return cls(
        "mlp",
        **{
            **PARAMS[cls],
            "max_epochs": 2,
            "batch_size": 32,
            "random_state": 0,
            **params,
        },
    )


@pytest.fixture(scope="module")
def X():
    return np.random.RandomState(0).randn(64, 8).astype(np.float32)


both = pytest.mark.parametrize("cls", [AugSelfExtractor, EquivariantExtractor])


@both
def test_trainable_extractors_default_to_pretrained_weights(cls):
    """The default start is the model's pretrained weights (issue 20, point 2)."""
    assert cls().get_params()["weights"] == "DEFAULT"
    assert cls().get_params()["model"] == "resnet18"


@both
def test_trainable_extractors_record_the_weights_used(cls, X, tmp_path):
    """weights_ names the start: random for models without pretrained weights."""
    extractor = _extractor(cls).fit(X)
    assert extractor.weights_ == "random-init(seed=0)"
    assert _extractor(cls, weights=None).fit(X).weights_ == "random-init(seed=0)"
    path = tmp_path / "mlp.pt"
    state = {k: v + 1 for k, v in extractor.backbone_.body.state_dict().items()}
    torch.save(state, path)
    from_file = _extractor(cls, weights=str(path)).fit(X)
    assert from_file.weights_.startswith(f"checkpoint:{path}#sha256=")


def test_trainable_extractors_default_weights_fail_fast_offline(monkeypatch):
    """Offline, the default resnet18 start fails fast with the file and the fix."""
    import skfeat.models._weights as weights_module

    def unreachable(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(weights_module.socket, "create_connection", unreachable)
    monkeypatch.setenv("TORCH_HOME", os.fspath(os.devnull + "_missing"))
    images = np.zeros((4, 8, 8, 3), np.uint8)
    with pytest.raises(FileNotFoundError, match="weights=None"):
        AugSelfExtractor(max_epochs=1, batch_size=2).fit(images)


@both
def test_trainable_extractors_warm_start_continues_training(cls, X):
    """warm_start trains max_epochs more from the fitted net (issue 20, point 8)."""
    extractor = _extractor(cls).fit(X)
    before = {k: v.clone() for k, v in extractor.backbone_.state_dict().items()}
    curve = list(extractor.loss_curve_)
    extractor.set_params(warm_start=True).fit(X)
    assert extractor.n_iter_ == 4
    assert len(extractor.loss_curve_) == 4 and extractor.loss_curve_[:2] == curve
    after = extractor.backbone_.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    # It continues: its first new epoch starts near the fitted loss, well
    # below a fresh fit's first epoch.
    assert extractor.loss_curve_[2] < curve[0]


@both
def test_trainable_extractors_warm_start_is_deterministic(cls, X):
    """Two continuations, one after a pickle round trip, give the same weights."""
    first = _extractor(cls).fit(X)
    second = pickle.loads(pickle.dumps(first))
    first.set_params(warm_start=True, max_epochs=1).fit(X)
    second.set_params(warm_start=True, max_epochs=1).fit(X)
    assert_allclose(first.transform(X), second.transform(X), rtol=1e-5, atol=1e-6)


@both
def test_trainable_extractors_warm_start_refuses_another_network(cls, X):
    """A warm start whose network changed says so and names the fix."""
    extractor = _extractor(cls).fit(X)
    with pytest.raises(ValueError, match="warm_start=False"):
        extractor.set_params(warm_start=True).fit(X[:, :6])


def test_trainable_extractors_warm_start_without_fit_is_a_fresh_fit(X):
    """warm_start on an unfitted extractor trains as a fresh fit."""
    cold = _extractor(AugSelfExtractor).fit(X).transform(X)
    warm = _extractor(AugSelfExtractor, warm_start=True).fit(X).transform(X)
    assert_allclose(cold, warm)


def test_trainable_extractors_warm_start_with_checkpoint(X, tmp_path):
    """A continuation reuses the checkpoint directory and resumes itself."""
    extractor = _extractor(AugSelfExtractor, checkpoint=tmp_path).fit(X)
    extractor.set_params(warm_start=True).fit(X)
    assert extractor.n_iter_ == 4
    # The saved state is now the continuation's, keyed by its start.
    payload = load_checkpoint_file(tmp_path / CHECKPOINT_FILE)
    assert "start" in payload["config"] and len(payload["state"]["history"]) > 2
    # The same continuation of the same first fit resumes it: nothing to train.
    other = _extractor(AugSelfExtractor).fit(X)
    other.set_params(checkpoint=tmp_path, warm_start=True).fit(X)
    assert other.n_iter_ == 4
    assert_allclose(other.transform(X), extractor.transform(X))
    # A continuation of another first fit is refused, as any other fit's.
    third = _extractor(AugSelfExtractor, random_state=1).fit(X)
    with pytest.raises(ValueError, match="belongs to another fit"):
        third.set_params(checkpoint=tmp_path, warm_start=True).fit(X)


@both
def test_trainable_extractors_refuse_a_checkpoint_file(cls, X, tmp_path):
    """checkpoint= naming a file says it must be a directory (issue 20, point 7)."""
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(ValueError, match="is a file; checkpoint names a directory"):
        _extractor(cls, checkpoint=path).fit(X)


@both
def test_trainable_extractors_divergence_raises_with_the_fix(cls, X):
    """A non-finite training loss stops the fit and names lr (issue 20, point 7)."""
    with pytest.raises(FloatingPointError, match=r"diverged.*lr=1e\+38.*Lower lr"):
        _extractor(cls, lr=1e38).fit(X)


def test_trainable_extractors_short_message_for_another_architecture(tmp_path):
    """A checkpoint of another architecture gives a short message (point 7)."""
    path = tmp_path / "other.pt"
    torch.save({f"layer{i}.weight": torch.zeros(3) for i in range(50)}, path)
    images = np.zeros((4, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="another architecture") as info:
        AugSelfExtractor("tiny_cnn", weights=str(path), batch_size=2).fit(images)
    assert len(str(info.value)) < 500


def test_equivariant_steer_rejects_embeddings_of_another_width(X):
    """steer(Z) with Z of the wrong width names n_features_out (point 7)."""
    extractor = _extractor(EquivariantExtractor).fit(X)
    with pytest.raises(ValueError, match="Z has 5 columns.*32"):
        extractor.steer(np.zeros((3, 5), np.float32), [0.1])


@pytest.mark.parametrize(
    "params_list, match",
    [([[0.1, 0.2]], r"shape \(K, 1\)"), ([[np.nan]], "finite"), ([0.1], "shape")],
)
def test_steered_tta_fit_validates_params_list(X, params_list, match):
    """A params_list of the wrong width or NaN fails in fit, not later (point 7)."""
    extractor = _extractor(EquivariantExtractor).fit(X)
    y = (X[:, 0] > 0).astype(int)
    tta = SteeredTTAClassifier(extractor, LogisticRegression(), params_list=params_list)
    with pytest.raises(ValueError, match=match):
        tta.fit(X, y)


@both
def test_trainable_extractors_progress_is_labelled_and_plain(cls, X, capfd):
    """verbose=1: one labelled bar with epoch and loss, no ANSI table (point 3)."""
    _extractor(cls).fit(X)
    assert capfd.readouterr().err == ""  # silent by default
    _extractor(cls, verbose=1).fit(X)
    captured = capfd.readouterr()
    assert "simclr training" in captured.err and "epoch=2/2" in captured.err
    assert "\x1b[" not in captured.err + captured.out
    assert "train_loss" not in captured.out  # no skorch table


def test_sea_cv_progress_shows_mean_loss_per_head(X, capfd):
    """The SeAClassifierCV bar shows a labelled per-head mean (point 3)."""
    from skfeat import SeAClassifier, SeAClassifierCV

    y = (X[:, 0] > 0).astype(int)
    SeAClassifierCV(etas=(0.0, 0.4), max_epochs=2, verbose=1).fit(X, y)
    err = capfd.readouterr().err
    assert "mean loss per head=" in err
    loss = float(err.rsplit("mean loss per head=", 1)[1].split("]")[0])
    single = SeAClassifier(eta=0.0, max_epochs=2).fit(X, y).loss_curve_[-1]
    assert loss < 3 * single + 1  # a per-head scale, not a sum over 8 heads


@pytest.mark.parametrize("cls", [AugSelfExtractor, EquivariantExtractor])
def test_trainable_extractors_state_dict_as_weights_short_message(cls):
    """weights= a state dict in memory: a short message with the fix (point 7)."""
    state = {f"layer{i}.weight": torch.zeros(64, 64) for i in range(20)}
    images = np.zeros((4, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match=r"a dict of 20 entries.*torch\.save") as info:
        cls("tiny_cnn", weights=state).fit(images)
    assert len(str(info.value)) < 400

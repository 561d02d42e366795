"""Torch threads during SeA fits, and their progress output (issue 9)."""

import pickle

import pytest
import torch
from sklearn.datasets import make_classification

from skfeat import SeAClassifier, SeAClassifierCV
from skfeat._engine import SeAMultiHeadNet, SeANet
from skfeat.probing import _sea, _sea_cv
from skfeat.utils import torch_threads, training_threads

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ENGINES = {SeAClassifier: (SeANet, _sea), SeAClassifierCV: (SeAMultiHeadNet, _sea_cv)}


@pytest.fixture
def data():
    return make_classification(n_samples=60, n_features=8, random_state=0)


@pytest.fixture
def caller_threads():
    """The caller runs with 2 torch threads; the suite's count is restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield 2
    torch.set_num_threads(before)


def _record_threads(monkeypatch, engine, seen, fail=False):
    """Wrap the engine's training step to record the thread count it runs with."""
    step = engine.train_step_single

    def recording_step(net, batch, **fit_params):
        seen.append(torch.get_num_threads())
        if fail:
            raise RuntimeError("training failed")
        return step(net, batch, **fit_params)

    monkeypatch.setattr(engine, "train_step_single", recording_step)


def test_torch_threads_restores_on_exception(caller_threads):
    """torch_threads sets the count inside the block and restores it on errors."""
    with pytest.raises(ZeroDivisionError):
        with torch_threads(1):
            assert torch.get_num_threads() == 1
            1 / 0
    assert torch.get_num_threads() == caller_threads


def test_training_threads_rule(caller_threads):
    """Small CPU products get one thread; large ones and CUDA keep the caller's."""
    assert training_threads(256 * 256 * 1280, torch.device("cpu")) == 1
    assert training_threads(10**10, torch.device("cpu")) == caller_threads
    assert training_threads(10, torch.device("cuda")) == caller_threads
    # A float32 multiply-add counts as half a float64 one.
    work = 3 * 10**9 // 2
    assert training_threads(work, torch.device("cpu")) == caller_threads
    assert training_threads(work, torch.device("cpu"), torch.float32) == 1


@pytest.mark.parametrize("Estimator", [SeAClassifier, SeAClassifierCV])
def test_sea_fit_trains_on_one_thread_and_restores(
    Estimator, data, caller_threads, monkeypatch
):
    """Small SeA fits train on one torch thread and leave the caller's count."""
    seen = []
    _record_threads(monkeypatch, ENGINES[Estimator][0], seen)
    Estimator(max_epochs=2, random_state=0).fit(*data)
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == caller_threads


@pytest.mark.parametrize("Estimator", [SeAClassifier, SeAClassifierCV])
def test_sea_fit_runs_with_the_chosen_count(Estimator, data, monkeypatch):
    """The count the rule chooses is the one the training steps run with."""
    engine, module = ENGINES[Estimator]
    monkeypatch.setattr(module, "training_threads", lambda work, device, dtype: 3)
    seen = []
    _record_threads(monkeypatch, engine, seen)
    before = torch.get_num_threads()
    Estimator(max_epochs=1, random_state=0).fit(*data)
    assert set(seen) == {3}
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("Estimator", [SeAClassifier, SeAClassifierCV])
def test_sea_failing_fit_restores_threads(Estimator, data, caller_threads, monkeypatch):
    """A fit that raises inside the training loop still restores the thread count."""
    seen = []
    _record_threads(monkeypatch, ENGINES[Estimator][0], seen, fail=True)
    with pytest.raises(RuntimeError, match="training failed"):
        Estimator(max_epochs=2, random_state=0).fit(*data)
    assert seen == [1]
    assert torch.get_num_threads() == caller_threads


@pytest.mark.parametrize("Estimator", [SeAClassifier, SeAClassifierCV])
def test_sea_verbose_progress_bar(Estimator, data, capsys):
    """verbose=1 draws one progress bar over the epochs on stderr, and still pickles."""
    model = Estimator(max_epochs=3, random_state=0, verbose=1).fit(*data)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert Estimator.__name__ in captured.err
    label = "mean loss per head=" if Estimator is SeAClassifierCV else "loss="
    assert "3/3" in captured.err and label in captured.err  # per head (issue 20)
    pickle.loads(pickle.dumps(model))


@pytest.mark.parametrize("Estimator", [SeAClassifier, SeAClassifierCV])
def test_sea_verbose_levels(Estimator, data, capsys):
    """verbose=0 prints nothing; verbose=2 prints the per-epoch table, no bar."""
    Estimator(max_epochs=2, random_state=0).fit(*data)
    assert capsys.readouterr() == ("", "")
    Estimator(max_epochs=2, random_state=0, verbose=2).fit(*data)
    captured = capsys.readouterr()
    assert "train_loss" in captured.out
    assert "epoch/s" not in captured.err

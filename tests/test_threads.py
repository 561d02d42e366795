"""Torch threads during SeA fits (issues 9, 19), and their progress output."""

import functools
import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification

from skfeat import SeAClassifier, SeAClassifierCV
from skfeat._engine import SeAMultiHeadNet, SeANet, _threads
from skfeat.utils import ThreadTuner, system_idle_cpus, torch_threads

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ENGINES = {SeAClassifier: SeANet, SeAClassifierCV: SeAMultiHeadNet}


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


def run_tuner(tuner, seconds_at, steps):
    """Feed ``steps`` steps whose time depends on the thread count (and step)."""
    for step in range(steps):
        tuner.record_step(seconds_at(tuner.n_threads, step), apply=False)
    return tuner


@pytest.mark.parametrize("faster", [1, 4])
def test_thread_tuner_keeps_the_faster_count(faster):
    """After probing both candidates the tuner runs at the faster one."""
    tuner = run_tuner(
        ThreadTuner(4), lambda n, step: 0.01 if n == faster else 0.015, 200
    )
    assert tuner.n_threads == faster
    assert {n for n, _ in tuner.history} == {1, 4}
    counts = [n for n, _ in tuner.history]
    assert counts.count(faster) / len(counts) > 0.9


def test_thread_tuner_follows_a_process_that_starts_and_stops():
    """A busy process beside the fit makes one thread faster; its end, four.

    After a costly probe (0.4 s at the busy peak) the next waits 20 times
    that (explore_share 0.05), so the quiet end is found within ~450 steps.
    """

    def seconds_at(n, step):
        busy = 300 <= step < 900
        if n == 1:
            return 0.02
        return 0.2 if busy else 0.01

    tuner = ThreadTuner(4, min_recheck_seconds=0.5)
    chosen = []
    for step in range(1500):
        tuner.record_step(seconds_at(tuner.n_threads, step), apply=False)
        chosen.append(tuner.n_threads)

    def share_of_four(start, stop):
        return chosen[start:stop].count(4) / (stop - start)

    assert share_of_four(50, 300) > 0.9  # quiet: four threads
    assert share_of_four(300, 900) < 0.15  # busy: one thread, found at once
    assert share_of_four(1350, 1500) > 0.9  # quiet again


def test_thread_tuner_bounds_the_time_spent_probing():
    """Re-probing a loser costs about explore_share of the time, at most."""
    tuner = run_tuner(
        ThreadTuner(2, explore_share=0.05),
        lambda n, step: 0.01 if n == 1 else 0.1,
        3000,
    )
    spent = {1: 0.0, 2: 0.0}
    for n, seconds in tuner.history:
        spent[n] += seconds
    assert spent[2] / (spent[1] + spent[2]) < 0.1
    assert tuner.n_threads == 1


def test_thread_tuner_stops_a_probe_at_a_clear_loser():
    """One step slower than twice the other's median ends the probe."""
    tuner = run_tuner(ThreadTuner(2), lambda n, step: 0.01 if n == 1 else 1.0, 12)
    assert [n for n, _ in tuner.history].count(2) == 1


def test_thread_tuner_probes_short_steps_for_min_probe_seconds():
    """Steps of 2 ms: a probe runs 0.05 s of them, not 3, and decides by all.

    Two threads start fast (the first 4 steps, the skipped one included)
    and then run slower than one: 3 steps would pick them.
    """
    at_two = []

    def seconds_at(n, step):
        if n == 1:
            return 0.002
        at_two.append(step)
        return 0.001 if len(at_two) <= 4 else 0.003

    tuner = run_tuner(ThreadTuner(2, probe_steps=3), seconds_at, 80)
    counts = [n for n, _ in tuner.history]
    assert counts.count(2) >= 0.05 / 0.003 and tuner.n_threads == 1


def test_thread_tuner_probes_more_threads_only_with_an_idle_cpu():
    """Issue 19: on a busy machine no probe of more threads, however fast.

    The idle CPUs are read once the steps since the last reading span
    IDLE_WINDOW_SECONDS (0.1 s: 100 steps of 1 ms), and again after each
    such window while the answer is no.
    """
    readings = []

    def idle_cpus(value):
        def read():
            readings.append(len(tuner.history))
            return value

        return read

    def seconds_at(n, step):
        return 0.001 if n == 1 else 0.0005

    tuner = ThreadTuner(2, idle_cpus=idle_cpus(0.2))
    run_tuner(tuner, seconds_at, 3000)
    assert {n for n, _ in tuner.history} == {1}
    assert readings == list(range(100, 3000, 100))
    readings.clear()
    tuner = ThreadTuner(2, idle_cpus=idle_cpus(1.0))
    run_tuner(tuner, seconds_at, 3000)
    assert readings[0] == 100 and tuner.n_threads == 2
    unknown = run_tuner(ThreadTuner(2, idle_cpus=lambda: None), seconds_at, 200)
    assert unknown.n_threads == 2  # no reading: the probe is timed


def test_thread_tuner_adds_threads_when_a_busy_process_stops():
    """Idle CPUs appear: the next recheck probes more threads and keeps them."""
    state = {"idle": 0.0}
    tuner = ThreadTuner(2, idle_cpus=lambda: state["idle"])
    for step in range(1000):
        if step == 500:
            state["idle"] = 1.0
        tuner.record_step(0.01 if tuner.n_threads == 1 else 0.006, apply=False)
        if step == 499:
            assert {n for n, _ in tuner.history} == {1}
    assert tuner.n_threads == 2


def test_system_idle_cpus_reads_the_kernel_counters(tmp_path, monkeypatch):
    """The average number of idle CPUs between two readings of /proc/stat."""
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n")
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    reader = system_idle_cpus(str(stat))
    assert reader() is None  # no time has passed
    stat.write_text("cpu  400 0 150 1000 100 0 0 0 20 0\n")
    # 250 idle + iowait ticks of 650: 4 CPUs x 250 / 650
    assert reader() == pytest.approx(4 * 250 / 650)
    assert system_idle_cpus(str(tmp_path / "missing")) is None
    stat.write_text("intr 1 2 3\n")
    assert system_idle_cpus(str(stat)) is None


def test_thread_tuner_with_one_thread_never_switches():
    """max_threads=1 leaves nothing to tune; the first step is not timed."""
    tuner = run_tuner(ThreadTuner(1), lambda n, step: 0.01, 10)
    assert tuner.n_threads == 1 and len(tuner.history) == 9


@pytest.mark.parametrize("Estimator", [SeAClassifier, SeAClassifierCV])
def test_sea_fit_tunes_threads_and_restores(
    Estimator, data, caller_threads, monkeypatch
):
    """CPU fits start on one thread, probe the caller's count, restore it after."""
    seen = []
    _record_threads(monkeypatch, ENGINES[Estimator], seen)
    # Probe these tiny steps, whatever else the machine runs meanwhile.
    monkeypatch.setattr(_threads, "system_idle_cpus", lambda: None)
    monkeypatch.setattr(
        _threads, "ThreadTuner", functools.partial(ThreadTuner, min_probe_seconds=0)
    )
    Estimator(max_epochs=20, batch_size=16, random_state=0).fit(*data)
    assert seen[0] == 1 and set(seen) == {1, caller_threads}
    assert torch.get_num_threads() == caller_threads


@pytest.mark.parametrize("Estimator", [SeAClassifier, SeAClassifierCV])
def test_sea_results_do_not_depend_on_the_thread_policy(Estimator, data):
    """Tuned and fixed thread counts give the same model to float rounding."""
    with torch_threads(2):
        tuned = Estimator(max_epochs=20, batch_size=16, random_state=0).fit(*data)
    with torch_threads(1):  # nothing to tune
        fixed = Estimator(max_epochs=20, batch_size=16, random_state=0).fit(*data)
    np.testing.assert_allclose(tuned.coef_, fixed.coef_, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(tuned.predict(data[0]), fixed.predict(data[0]))


@pytest.mark.parametrize("Estimator", [SeAClassifier, SeAClassifierCV])
def test_sea_failing_fit_restores_threads(Estimator, data, caller_threads, monkeypatch):
    """A fit that raises inside the training loop still restores the thread count."""
    seen = []
    _record_threads(monkeypatch, ENGINES[Estimator], seen, fail=True)
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

"""Data-parallel SSL training: 2 CPU processes (gloo) against 1 process."""

import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

import skfeat
from skfeat import AugSelfExtractor, EquivariantExtractor
from skfeat._engine._ssl import ShuffledBatches, TrainingImages

sys.path.insert(0, str(Path(__file__).parent))
from _distributed_worker import (  # noqa: E402
    grid_search,
    make_extractor,
    results,
    toy_data,
)

WORKER = Path(__file__).parent / "_distributed_worker.py"
ROOT = Path(skfeat.__file__).parent.parent


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _environment(**extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", **extra)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    return env


def run_two_processes(case, out, *options, timeout=300):
    """Fit ``case`` under ``torchrun --nproc_per_node 2``; return both results."""
    pytest.importorskip("accelerate")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        str(WORKER),
        case,
        str(out),
        *options,
    ]
    done = subprocess.run(
        command, env=_environment(), capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return [torch.load(out / f"rank{rank}.pt") for rank in range(2)]


def one_process(case, epochs=3, rows=64):
    torch.set_num_threads(1)
    X = toy_data(case, rows)
    return results(make_extractor(case).set_params(max_epochs=epochs).fit(X), X)


def assert_same_fit(got, expected, atol=1e-5):
    torch.testing.assert_close(got["loss"], expected["loss"], rtol=1e-5, atol=1e-5)
    assert got["extra"].keys() == expected["extra"].keys()
    for name, values in expected["extra"].items():
        torch.testing.assert_close(got["extra"][name], values, rtol=1e-4, atol=1e-5)
    for name, value in expected["weights"].items():
        torch.testing.assert_close(
            got["weights"][name].float(), value.float(), rtol=1e-4, atol=atol
        )


def test_two_processes_simclr_equals_one_process_on_the_global_batch(tmp_path):
    """2 processes x B/2 with gathered negatives and synced BN == 1 process x B."""
    ranks = run_two_processes("simclr", tmp_path, "--epochs", "2")
    assert_same_fit(ranks[0], one_process("simclr", epochs=2))
    for key in ("loss", "features"):  # every process ends with the same model
        torch.testing.assert_close(ranks[1][key], ranks[0][key], rtol=0, atol=0)
    # rank 0's pickle loads and extracts in this single process
    with open(tmp_path / "extractor.pkl", "rb") as file:
        loaded = pickle.load(file)
    assert loaded.accelerator is None
    features = loaded.transform(toy_data("simclr"))
    np.testing.assert_array_equal(features, ranks[0]["features"].numpy())


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("case", ["augself", "equivariant", "moco", "images"])
def test_two_processes_equal_one_process(case, tmp_path):
    """The AugSelf loss, the equivariance loss, MoCo's queue and image views too."""
    ranks = run_two_processes(case, tmp_path)
    atol = 1e-4 if case == "images" else 1e-5
    assert_same_fit(ranks[0], one_process(case), atol=atol)
    for key in ("features", "ood"):  # transform and ood_score agree on every rank
        torch.testing.assert_close(ranks[1][key], ranks[0][key], rtol=0, atol=0)


@pytest.mark.slow
def test_grid_search_under_two_processes_equals_one_process(tmp_path):
    """Every candidate trains on both processes; scores agree with one process."""
    ranks = run_two_processes("simclr", tmp_path, "--grid-search", "--epochs", "1")
    torch.set_num_threads(1)
    expected = grid_search(
        make_extractor("simclr").set_params(max_epochs=1), toy_data("simclr")
    )
    torch.testing.assert_close(ranks[1]["scores"], ranks[0]["scores"], rtol=0, atol=0)
    torch.testing.assert_close(
        ranks[0]["scores"], expected["scores"], rtol=1e-4, atol=1e-6
    )


@pytest.mark.slow
def test_uneven_last_shards_are_weighted_by_their_rows(tmp_path):
    """69 rows, batch 32: the last batch of 5 is split 3 + 2, as 1 process sees it."""
    ranks = run_two_processes("augself", tmp_path, "--rows", "69")
    assert_same_fit(ranks[0], one_process("augself", rows=69))


def test_shards_cover_every_sample_once_per_epoch():
    """Equal shards of full batches, within one row for the last, none repeated."""
    for n_rows, dropped in [(70, 0), (69, 0), (67, 3)]:
        data = TrainingImages(torch.arange(n_rows))
        seen = []
        for rank in range(2):
            batches = ShuffledBatches(
                data, 32, torch.Generator().manual_seed(0), team=_Rank(rank, 2)
            )
            epoch = list(batches)
            assert len(epoch) == len(batches)
            assert [len(x) for x, _, _ in epoch[:2]] == [16, 16]
            seen += [int(i) for x, _, _ in epoch for i in x]
        assert len(seen) == len(set(seen)) == n_rows - dropped


class _Rank:
    def __init__(self, rank, size):
        self.rank, self.size = rank, size


@pytest.mark.slow
@pytest.mark.parametrize("option", ["--keep-local", "--no-sync"])
def test_local_negatives_or_batch_norm_change_the_fit(option, tmp_path):
    """Without gathered negatives (or synced BN) the losses differ: it can fail."""
    ranks = run_two_processes("simclr", tmp_path, option)
    expected = one_process("simclr")
    assert not torch.allclose(ranks[0]["loss"], expected["loss"], rtol=1e-3)
    torch.testing.assert_close(ranks[1]["features"], ranks[0]["features"])


def _run_with_a_failing_rank(command, failure, timeout):
    """Launch ranks 0 and 1 of ``command``; rank 1 gets ``failure`` arguments.

    Returns rank 0's completed process, its seconds, and rank 1's process.
    """
    env = _environment(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(_free_port()),
        WORLD_SIZE="2",
        LOCAL_WORLD_SIZE="2",
    )
    failing = subprocess.Popen(
        [*command, *failure],
        env={**env, "RANK": "1", "LOCAL_RANK": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    start = time.monotonic()
    try:
        survivor = subprocess.run(
            command,
            env={**env, "RANK": "0", "LOCAL_RANK": "0"},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    finally:
        if failing.poll() is None:
            failing.kill()  # a stalled rank is still there
        failing.wait(timeout=60)
    return survivor, time.monotonic() - start, failing


@pytest.mark.slow
def test_killed_process_stops_the_other_which_names_it_then_resume(tmp_path):
    """Rank 1 dies mid-epoch: rank 0 fails within 60 s naming it; 1 process resumes."""
    pytest.importorskip("accelerate")
    checkpoint = tmp_path / "checkpoint"
    command = [
        sys.executable,
        str(WORKER),
        "simclr",
        str(tmp_path),
        "--checkpoint",
        str(checkpoint),
        "--epochs",
        "5",
    ]
    # Rank 1 kills itself with SIGKILL at global batch 7: epoch 4 (2 batches
    # per epoch), after the checkpoint of epoch 3.
    survivor, seconds, dying = _run_with_a_failing_rank(
        command, ["--die-at-batch", "7"], timeout=120
    )
    assert dying.returncode == -signal.SIGKILL
    assert survivor.returncode != 0
    assert seconds < 60 + 30  # 60 s bound plus start-up
    assert "rank 1 stopped responding" in survivor.stderr
    assert "during epoch 4" in survivor.stderr
    # One process resumes the 2-process checkpoint to the uninterrupted weights.
    torch.set_num_threads(1)
    X = toy_data("simclr")
    resumed = make_extractor("simclr", checkpoint=checkpoint).set_params(max_epochs=5)
    resumed.fit(X)
    assert resumed.n_iter_ == 5
    expected = one_process("simclr", epochs=5)
    assert_same_fit(results(resumed, X), expected)


@pytest.mark.slow
def test_stalled_process_times_out_and_is_named(tmp_path):
    """Rank 1 stops (SIGSTOP) mid-epoch: rank 0 fails after the 60 s timeout."""
    pytest.importorskip("accelerate")
    command = [sys.executable, str(WORKER), "simclr", str(tmp_path)]
    survivor, seconds, _ = _run_with_a_failing_rank(
        command, ["--stall-at-batch", "3"], timeout=150
    )
    assert survivor.returncode != 0
    assert 60 <= seconds < 60 + 45
    assert "rank 1 stopped responding" in survivor.stderr
    assert "during epoch 2, batch 1" in survivor.stderr


def vector_extractor(**params):
    return AugSelfExtractor("mlp", aug_types=("scale",), max_epochs=1, **params)


def test_accelerator_without_accelerate_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "accelerate", None)
    extractor = vector_extractor(accelerator=object())
    with pytest.raises(ImportError, match=r"pip install 'skfeat\[distributed\]'"):
        extractor.fit(toy_data("simclr"))


def test_accelerator_of_the_wrong_type():
    pytest.importorskip("accelerate")
    extractor = EquivariantExtractor(
        "mlp", steered=("scale",), accelerator="cuda", max_epochs=1
    )
    with pytest.raises(ValueError, match="must be an accelerate.Accelerator"):
        extractor.fit(toy_data("simclr"))


def test_accelerator_that_does_not_join_the_launched_processes(monkeypatch):
    """Under torchrun on CPU, Accelerator() without cpu=True runs 1 process."""
    accelerate = pytest.importorskip("accelerate")
    accelerator = accelerate.Accelerator(cpu=True)
    monkeypatch.setenv("WORLD_SIZE", "2")
    extractor = vector_extractor(accelerator=accelerator)
    with pytest.raises(ValueError, match=r"one of 2 .* runs 1; .*cpu=True"):
        extractor.fit(toy_data("simclr"))


def test_launched_processes_without_an_accelerator_warn(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.warns(UserWarning, match="every process fits its own copy") as caught:
        vector_extractor().fit(toy_data("simclr"))
    assert caught[0].filename == __file__


@pytest.fixture
def two_process_accelerator(monkeypatch):
    """A single-process Accelerator that says there are 2 processes."""
    accelerate = pytest.importorskip("accelerate")
    accelerator = accelerate.Accelerator(cpu=True)
    monkeypatch.setattr(type(accelerator), "num_processes", property(lambda self: 2))
    return accelerator


def test_global_batch_not_divisible_by_the_processes(two_process_accelerator):
    extractor = vector_extractor(accelerator=two_process_accelerator, batch_size=33)
    with pytest.raises(ValueError, match="multiple of 2, e.g. batch_size=32"):
        extractor.fit(toy_data("simclr"))


def test_simclr_feature_augmentation_needs_local_negatives(two_process_accelerator):
    extractor = vector_extractor(
        base="simclr",
        feature_augmentation="gaussian",
        accelerator=two_process_accelerator,
        batch_size=32,
    )
    with pytest.raises(ValueError, match="set gather_negatives=False"):
        extractor.fit(toy_data("simclr"))


def test_accelerator_mixed_precision_is_refused(monkeypatch):
    accelerate = pytest.importorskip("accelerate")
    accelerator = accelerate.Accelerator(cpu=True)
    monkeypatch.setattr(
        type(accelerator), "mixed_precision", property(lambda s: "bf16")
    )
    extractor = vector_extractor(accelerator=accelerator)
    with pytest.raises(ValueError, match="precision= parameter"):
        extractor.fit(toy_data("simclr"))


def test_single_process_accelerator_clone_pickle_and_grid_search():
    """One process: same fit as without; clone shares it; pickles without it."""
    accelerate = pytest.importorskip("accelerate")
    accelerator = accelerate.Accelerator(cpu=True)
    X = toy_data("simclr")
    plain = one_process("simclr", epochs=1)
    extractor = make_extractor("simclr", accelerator).set_params(max_epochs=1)
    assert_same_fit(results(extractor.fit(X), X), plain)

    copy = clone(extractor)
    assert copy.accelerator is accelerator
    assert copy.get_params()["lr"] == extractor.lr

    loaded = pickle.loads(pickle.dumps(extractor))
    assert loaded.accelerator is None and extractor.accelerator is accelerator
    np.testing.assert_array_equal(loaded.transform(X), extractor.transform(X))

    search = GridSearchCV(
        make_extractor("simclr", accelerator).set_params(max_epochs=1),
        {"temperature": [0.2, 0.5]},
        scoring=lambda est, X, y=None: float(np.var(est.transform(X))),
        cv=2,
    ).fit(X)
    assert search.best_estimator_.accelerator is accelerator

"""Shared pytest configuration: one thread, RNG isolation, slow and gpu markers."""

import random

import numpy as np
import pytest
import torch


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="run tests marked slow")


def pytest_configure(config):
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    # With -m the marker expression alone decides; otherwise slow needs --runslow.
    run_slow = config.getoption("--runslow") or bool(config.getoption("-m"))
    skip_slow = pytest.mark.skip(reason="slow: use --runslow or -m slow")
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _restore_rng_state():
    """Save and restore the torch, numpy and random global RNG states."""
    torch_state = torch.random.get_rng_state()
    numpy_state = np.random.get_state()
    python_state = random.getstate()
    yield
    torch.random.set_rng_state(torch_state)
    np.random.set_state(numpy_state)
    random.setstate(python_state)


@pytest.fixture
def rgb_images():
    """Six random uint8 RGB images of shape (40, 48, 3)."""
    return np.random.RandomState(0).randint(0, 256, (6, 40, 48, 3), dtype=np.uint8)

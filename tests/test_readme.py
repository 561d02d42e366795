"""The README's code runs as written and its commands are what .ci/run runs (issue 9).

Each ```python block runs in a fresh namespace, so a missing import fails.  The
only inputs are the variables the README names: ``image_paths``, ``labels``
and ``new_paths``, bound to PNG files of scikit-learn's handwritten digits.
HOME points to a temporary folder, so ``memory="~/.cache/skfeat"`` stays there.
"""

import os
import pathlib
import re
import shlex
import subprocess
import textwrap

import numpy as np
import PIL.Image
import pytest
from sklearn.datasets import load_digits

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

# Everything the test changes in the README's code: (README text, replacement, why).
SUBSTITUTIONS = [
    ('"resnet50"', '"efficientnet_lite0"', "resnet50's weights need the network"),
    ('weights="IMAGENET1K_V1"', 'weights="DEFAULT"', "Lite0 has one set of weights"),
]
CLASSES, TRAIN_PER_CLASS, NEW_PER_CLASS = (0, 1, 2), 6, 1


def _blocks(language, text=README):
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.M | re.S)


def _substituted(code):
    for old, new, _ in SUBSTITUTIONS:
        code = code.replace(old, new)
    return code


def _run_snippet(code, inputs):
    namespace = dict(inputs)
    exec(compile(_substituted(code), "README.md", "exec"), namespace)
    return namespace


@pytest.fixture
def digit_files(tmp_path, monkeypatch):
    """README inputs as real PNG files; HOME and the working folder are empty."""
    digits = load_digits()
    folder, home, workdir = (tmp_path / name for name in ("images", "home", "work"))
    for path in (folder, home, workdir):
        path.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(workdir)
    paths, labels = [], []
    for label in CLASSES:
        rows = np.flatnonzero(digits.target == label)[: TRAIN_PER_CLASS + NEW_PER_CLASS]
        for row in rows:
            path = folder / f"{label}_{row}.png"
            pixels = (digits.images[row] * (255 / 16)).astype(np.uint8)
            PIL.Image.fromarray(pixels).resize((32, 32)).save(path)
            paths.append(str(path))
            labels.append(label)
    paths, labels = np.array(paths), np.array(labels)
    new = np.arange(len(paths)) % (TRAIN_PER_CLASS + NEW_PER_CLASS) >= TRAIN_PER_CLASS
    inputs = {
        "image_paths": list(paths[~new]),
        "labels": labels[~new],
        "new_paths": list(paths[new]),
    }
    return inputs, home, workdir


def test_readme_substitutions_match_the_readme():
    """Every substituted text occurs in the README's code, so the table is current."""
    code = "".join(_blocks("python"))
    assert len(_blocks("python")) >= 2
    for old, _, _ in SUBSTITUTIONS:
        assert old in code


@pytest.mark.parametrize("index", range(len(_blocks("python"))))
def test_readme_python_snippet_runs(index, digit_files):
    """The snippet runs alone; its cache lands under ~, not in a folder named ~."""
    inputs, home, workdir = digit_files
    code = _blocks("python")[index]
    namespace = _run_snippet(code, inputs)
    assert os.listdir(workdir) == []
    if "memory=" in code:
        assert (home / ".cache" / "skfeat" / "skfeat-features").is_dir()
    if "predictions" in namespace:
        assert len(namespace["predictions"]) == len(inputs["new_paths"])


def test_readme_snippets_and_commands_are_repeated_in_quickstart():
    """docs/quickstart.rst shows the README's Python snippets and set-up lines."""
    quickstart = (ROOT / "docs" / "quickstart.rst").read_text()
    blocks = re.findall(
        r"^\.\. code-block:: python\n\n((?:    .*\n|\n)+)", quickstart, flags=re.M
    )
    snippets = [textwrap.dedent(block).strip() + "\n" for block in blocks]
    assert snippets == [code.strip() + "\n" for code in _blocks("python")]
    for line in _quick_start_lines():
        assert f"    {line}\n" in quickstart


def test_readme_snippet_runner_fails_on_a_missing_import():
    """The issue-9 snippet without imports fails under the same runner."""
    without_imports = (
        'pipe = make_pipeline(DeepFeatureExtractor("resnet50"), SeAClassifier())\n'
    )
    with pytest.raises(NameError, match="make_pipeline"):
        _run_snippet(without_imports, {})


def _quick_start_lines():
    lines = [
        line
        for block in _blocks("bash")
        for line in block.splitlines()
        if line.startswith("python3 -m venv")
    ]
    assert len(lines) == 2, f"expected a demo line and a test line; got {lines}"
    return lines


def _ci_command():
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "set -euo pipefail" in lines
    assert 'cd "$(dirname "$0")/.."' in lines
    commands = [line for line in lines if line.strip() and not line.startswith("#")]
    return commands[-1]


def test_readme_quick_start_lines_agree_with_ci():
    """One demo line and one test line, same set-up; .ci/run ends with the test line."""
    demo, tests = _quick_start_lines()
    demo_steps, test_steps = demo.split(" && "), tests.split(" && ")
    assert demo_steps[:3] == test_steps[:3]
    assert demo_steps[0] == "python3 -m venv .venv"
    assert demo_steps[1] == ". .venv/bin/activate"
    assert demo_steps[3:] == ['pip install -e ".[demo]"', "python -m skfeat demo"]
    assert test_steps[3:] == [
        'pip install -e ".[test]"',
        'pytest -m "not slow and not gpu"',
    ]
    assert _ci_command() == tests
    for line in (demo, tests):
        subprocess.run(["bash", "-n", "-c", line], check=True)


def test_readme_cpu_torch_line_pins_the_same_versions():
    """The CPU-only torch line (README, install docs) pins the default's versions."""
    default = shlex.split(_quick_start_lines()[0].split(" && ")[2])
    cpu = [
        line
        for block in _blocks("bash")
        for line in block.splitlines()
        if "download.pytorch.org/whl/cpu" in line
    ]
    assert len(cpu) == 1
    assert f"    {cpu[0]}\n" in (ROOT / "docs" / "install.rst").read_text()
    words = shlex.split(cpu[0])
    assert words[: len(default)] == default
    assert words[len(default) :] == [
        "--index-url",
        "https://download.pytorch.org/whl/cpu",
    ]


def test_readme_install_works_before_a_pypi_release():
    """Non-regression (issue 20, point 1): install from a checkout or a wheel.

    skfeat is not on PyPI: ``pip install skfeat`` appears only as what will
    work once it is released, and both pages give the checkout and wheel lines.
    """
    install = (ROOT / "docs" / "install.rst").read_text()
    for text in (README, install):
        flat = " ".join(text.split())
        for sentence in re.split(r"(?<=\.) ", flat):
            if "pip install skfeat" in sentence.replace("``", "`").replace("`", ""):
                assert "Once skfeat is released on PyPI" in sentence, sentence
        assert "pip install ." in text
        assert "pip wheel --no-deps --wheel-dir dist ." in text
        assert "dist/skfeat-*.whl" in text

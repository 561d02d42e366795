"""The documentation builds offline, gallery examples included, so it cannot rot."""

import pathlib
import shutil
import subprocess
import sys

import pytest

for module in (
    "sphinx",
    "numpydoc",
    "sphinx_gallery",
    "pydata_sphinx_theme",
    "matplotlib",
):
    pytest.importorskip(module)

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"


def test_docs_build_offline_with_gallery(tmp_path):
    source = tmp_path / "docs"
    shutil.copytree(
        DOCS,
        source,
        ignore=shutil.ignore_patterns("_build", "generated", "auto_examples"),
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-b",
            "html",
            "-q",
            str(source),
            str(tmp_path / "html"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    own_problems = [
        line
        for line in result.stderr.splitlines()
        if ("ERROR" in line or "CRITICAL" in line)
    ]
    assert not own_problems, own_problems
    html = tmp_path / "html"
    for page in (
        "index.html",
        "api.html",
        "user_guide.html",
        "scale_out.html",
        "generated/skfeat.SeAClassifier.html",
        "auto_examples/plot_feature_cache.html",
    ):
        assert (html / page).exists(), page
    assert (
        "images through the network"
        in (html / "auto_examples/plot_feature_cache.html").read_text()
    )

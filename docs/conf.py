"""Sphinx configuration for the skfeat documentation.

Builds offline: intersphinx inventories that cannot be fetched only produce
warnings (do not build with -W offline).  The build fails when a public
method or object has no API entry, or when a gallery example warns
(``sphinxext/doc_checks.py``).
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent / "sphinxext"))

import skfeat

project = "skfeat"
author = "The skfeat developers"
copyright = "2026, The skfeat developers"
release = skfeat.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "doc_checks",
]
templates_path = ["_templates"]
autosummary_generate = True
numpydoc_show_class_members = False
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py"]
html_theme = "pydata_sphinx_theme"
html_title = "skfeat"

intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "sklearn": ("https://scikit-learn.org/stable", None),
    "torch": ("https://docs.pytorch.org/docs/stable", None),
    "torchvision": ("https://docs.pytorch.org/vision/stable", None),
    "skorch": ("https://skorch.readthedocs.io/en/stable", None),
}
intersphinx_timeout = 5

sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "doc_module": ("skfeat",),
    "backreferences_dir": "generated/backreferences",
    "reference_url": {"skfeat": None},
    "filename_pattern": "/plot_",
    "download_all_examples": False,
    "reset_modules": ("matplotlib", "doc_checks.gallery_warnings_as_errors"),
    "reset_modules_order": "both",
}

"""numpydoc validation of the whole public API, and documented fitted attributes.

What is validated: every name in the ``__all__`` of ``skfeat`` and of every
public module below it (found with ``pkgutil``, so a new subpackage is covered
without editing this file); for classes, also every public method or property,
inherited ones included, whose implementation's ``__module__`` is skfeat's.
Members implemented elsewhere (scikit-learn's ``get_params``, ``score`` or
``fit_transform``, torch's ``nn.Module`` methods) are documented upstream.

Which checks: those of ``[tool.numpydoc_validation]`` in pyproject.toml, plus
two that the configuration leaves out because its pre-commit hook also reads
private code: GL08 (a docstring exists) everywhere, and EX01 (an Examples
section) on classes and functions; methods are exemplified by their class.

Plain ``help()`` shows Sphinx roles raw, so a role must never be the only
pointer to information.  Cross-references such as ``:func:`pool_features```
name their target and read fine; a user-guide link is written
``:ref:`User Guide <label>` (section "<title>" of ``docs/<file>.rst``)``, and
the title must be the one under that label in that file.
"""

import importlib
import inspect
import pkgutil
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from numpydoc.docscrape import ClassDoc
from numpydoc.hooks.validate_docstrings import parse_config
from numpydoc.validate import get_doc_object, validate
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import make_classification

import skfeat
from skfeat.utils._testing import checked_estimators

ROOT = Path(__file__).resolve().parents[1]
CHECKS = parse_config(ROOT)["checks"] | {"GL08"}


def _is_skfeat(module_name):
    return module_name == "skfeat" or module_name.startswith("skfeat.")


def _public_modules(package=skfeat):
    """The package and every module below it with no private part in its name."""
    yield package
    prefix = package.__name__ + "."
    for info in pkgutil.walk_packages(package.__path__, prefix):
        if not any(part.startswith("_") for part in info.name.split(".")):
            yield importlib.import_module(info.name)


def _implementation(cls, name):
    """The function behind ``cls.name``: unwraps class/static methods, properties."""
    attribute = inspect.getattr_static(cls, name)
    for unwrap in ("__func__", "fget"):
        attribute = getattr(attribute, unwrap, attribute)
    return attribute


def _documented_implementation(cls, name):
    """The implementation whose docstring ``help(cls.name)`` shows.

    An override without a docstring of its own shows the docstring of the
    nearest class in the MRO that documents ``name`` (as ``inspect.getdoc``
    does), so that docstring is the one to validate.
    """
    for klass in cls.__mro__:
        if name in vars(klass):
            member = _implementation(klass, name)
            if getattr(member, "__doc__", None):
                return member
    return _implementation(cls, name)


def _skfeat_members(cls):
    """Public methods and properties of ``cls`` implemented in skfeat, inherited too."""
    for name in dir(cls):
        if name.startswith("_"):
            continue
        member = _documented_implementation(cls, name)
        if callable(member) and _is_skfeat(getattr(member, "__module__", None) or ""):
            yield name, member


def _public_api(modules):
    """Map a public name to ``(object, checks)`` for everything to validate.

    Each object is listed once, under the first public name it is reached by.
    """
    found, seen = {}, set()

    def add(name, obj, checks):
        if id(obj) not in seen:
            seen.add(id(obj))
            found[name] = (obj, checks)

    for module in modules:
        for name in module.__all__:
            if name.startswith("__"):  # metadata such as __version__
                continue
            obj = getattr(module, name)
            qualname = f"{module.__name__}.{name}"
            add(qualname, obj, CHECKS | {"EX01"})
            if inspect.isclass(obj):
                for member_name, member in _skfeat_members(obj):
                    add(f"{qualname}.{member_name}", member, CHECKS)
    return found


def _docstring_errors(obj, checks):
    return [
        (code, message)
        for code, message in validate(get_doc_object(obj))["errors"]
        if code in checks
    ]


PUBLIC_MODULES = list(_public_modules())
PUBLIC_API = _public_api(PUBLIC_MODULES)


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_public_module_declares_all(module):
    """A public module without ``__all__`` would escape the validation below."""
    assert isinstance(getattr(module, "__all__", None), list | tuple)


@pytest.mark.parametrize("qualname", sorted(PUBLIC_API))
def test_public_docstring(qualname):
    """Each public object and method passes the configured numpydoc checks."""
    obj, checks = PUBLIC_API[qualname]
    errors = _docstring_errors(obj, checks)
    assert not errors, errors


def test_walker_covers_inherited_methods_and_subpackages():
    """Inherited methods and non-top-level modules are reached by the walk."""
    names = {m.__name__ for m in PUBLIC_MODULES}
    assert {"skfeat.models", "skfeat.datasets", "skfeat.extraction"} <= names
    for expected in (
        "skfeat.SeAClassifier.predict_proba",  # inherited from the predict mixin
        "skfeat.SeAClassifier.decision_function",
        "skfeat.extraction.dask_transform",
        "skfeat.datasets.make_lowshot_features",
        "skfeat.models.ImagePreprocessing.from_torchvision",  # a classmethod
    ):
        assert expected in PUBLIC_API, expected
    for upstream in ("get_params", "score", "fit_transform", "set_output"):
        assert f"skfeat.SeAClassifier.{upstream}" not in PUBLIC_API
        assert f"skfeat.DeepFeatureExtractor.{upstream}" not in PUBLIC_API


def test_walker_flags_an_inherited_undocumented_method(monkeypatch):
    """A throwaway public class inheriting an undocumented skfeat method fails."""
    module = types.ModuleType("skfeat.throwaway")

    class _Base:
        def undocumented(self, X):
            return X

    class Throwaway(_Base, ClassifierMixin, BaseEstimator):
        """A class for the walker's self-test.

        Examples
        --------
        >>> Throwaway()
        Throwaway()
        """

    for item in (_Base, _Base.undocumented, Throwaway):
        item.__module__ = module.__name__
    module.Throwaway = Throwaway
    module.__all__ = ["Throwaway"]
    monkeypatch.setitem(sys.modules, module.__name__, module)

    api = _public_api([module])
    assert set(api) == {
        "skfeat.throwaway.Throwaway",
        "skfeat.throwaway.Throwaway.undocumented",
    }
    assert not _docstring_errors(*api["skfeat.throwaway.Throwaway"])
    codes = [
        code
        for code, _ in _docstring_errors(
            *api["skfeat.throwaway.Throwaway.undocumented"]
        )
    ]
    assert codes == ["GL08"]


USER_GUIDE_LINK = re.compile(
    r":ref:`[^`<]*<(?P<label>\w+)>`\s+\(section\s+\"(?P<section>[^\"]+)\"\s+of\s+"
    r"``(?P<file>docs/\w+\.rst)``\)"
)


HELP_TEXTS = {
    **{module.__name__: module.__doc__ for module in PUBLIC_MODULES},
    **{name: inspect.getdoc(obj) for name, (obj, _) in PUBLIC_API.items()},
}


@pytest.mark.parametrize("qualname", sorted(HELP_TEXTS))
def test_user_guide_links_read_in_plain_help(qualname):
    """A ``:ref:`` role also names the section and file, for plain ``help()``."""
    doc = HELP_TEXTS[qualname] or ""
    links = list(USER_GUIDE_LINK.finditer(doc))
    assert doc.count(":ref:`") == len(links), f"unreadable :ref: in {qualname}"
    for link in links:
        source = (ROOT / link["file"]).read_text()
        label_then_title = (
            rf"\.\. _{link['label']}:\s*\n\s*\n{re.escape(link['section'])}\n"
        )
        assert re.search(label_then_title, source), link.group(0)


def test_sea_classifier_eta_doc_explains_the_collapse_warning():
    """Issue 9: the ``eta`` entry says when 0.8 is too strong, and what to do."""
    doc = ClassDoc(skfeat.SeAClassifier)
    (eta,) = [item for item in doc["Parameters"] if item.name == "eta"]
    assert eta.type == "float, default=0.8"
    text = " ".join(eta.desc)
    for needed in ("collapses", "ConvergenceWarning", "smaller", "SeAClassifierCV"):
        assert needed in text, needed
    see_also = {name for names, _ in doc["See Also"] for name, _ in names}
    assert "skfeat.SeAClassifierCV" in see_also


@pytest.mark.parametrize(
    "estimator", list(checked_estimators()), ids=lambda e: type(e).__name__
)
def test_fitted_attributes_are_documented(estimator):
    X, y = make_classification(n_samples=40, n_features=5, random_state=0)
    estimator.fit(X.astype(np.float32), y)
    documented = {
        item.name.split(":")[0].strip()
        for item in ClassDoc(type(estimator))["Attributes"]
    }
    documented = {n for name in documented for n in name.split(", ")}
    fitted = {
        key for key in vars(estimator) if key.endswith("_") and not key.startswith("_")
    }
    assert fitted <= documented, fitted - documented

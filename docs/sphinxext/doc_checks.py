# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Build-time checks: a complete API reference and a gallery that never warns."""

import importlib
import inspect
import pkgutil
import warnings

from sphinx.errors import ExtensionError

# Methods a class inherits unchanged from torch.nn.Module (train, to,
# state_dict...) are documented by PyTorch, not repeated on skfeat's pages.
TORCH_MODULE = "torch.nn.modules.module"


def _documented_by_torch(member):
    return getattr(member, "__module__", None) == TORCH_MODULE


def public_methods(cls):
    """Names of the methods that the API page of ``cls`` must document.

    Every public method counts, inherited ones included (``score`` from
    ``ClassifierMixin``, ``get_params``...), except those of ``torch.nn.Module``.
    """
    return sorted(
        name
        for name in dir(cls)
        if not name.startswith("_")
        and inspect.isroutine(member := getattr(cls, name))
        and not _documented_by_torch(member)
    )


def skip_torch_module_members(app, what, name, obj, skip, options):
    """Leave torch.nn.Module's own methods off class pages (autodoc-skip-member)."""
    if what == "method" and _documented_by_torch(obj):
        return True
    return None


def missing_method_entries(classes, entries):
    """Return ``"Class.method"`` for each public method without an entry.

    Parameters
    ----------
    classes : dict of str to type
        Documented classes by their documented name.
    entries : set of str
        Fully qualified names of every documented object.

    Returns
    -------
    missing : list of str
        Sorted names of the public methods that have no entry.
    """
    return sorted(
        f"{name}.{method}"
        for name, cls in classes.items()
        for method in public_methods(cls)
        if f"{name}.{method}" not in entries
    )


def public_modules(package):
    """Return ``package`` and its public subpackages, imported."""
    names = [
        f"{package.__name__}.{info.name}"
        for info in pkgutil.iter_modules(package.__path__)
        if info.ispkg and not info.name.startswith("_")
    ]
    return [package, *map(importlib.import_module, names)]


def unlisted_public_objects(modules, documented):
    """Return ``"module.name"`` for each object of an ``__all__`` left undocumented.

    Parameters
    ----------
    modules : list of module
        Modules whose ``__all__`` is public API; dunder names are skipped.
    documented : list of object
        The objects that have an entry, compared by identity so that an
        object re-exported under several names needs one entry only.

    Returns
    -------
    unlisted : list of str
        Sorted names of the public objects without an entry.
    """
    documented_ids = {id(obj) for obj in documented}
    return sorted(
        f"{module.__name__}.{name}"
        for module in modules
        for name in module.__all__
        if not name.startswith("__") and id(getattr(module, name)) not in documented_ids
    )


def _resolve(fullname):
    parts = fullname.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            obj = getattr(obj, attribute)
        return obj
    raise ImportError(f"cannot import {fullname!r}")


def check_api_reference(app, exception):
    """Fail the build when the API reference misses a public method or object."""
    if exception is not None:
        return
    entries = {
        name: entry.objtype
        for name, entry in app.env.get_domain("py").objects.items()
        # autodoc also registers each object under its private module's
        # name ("canonical" aliases); only the documented names count
        if name.split(".")[0] == "skfeat" and not entry.aliased
    }
    objects = {name: _resolve(name) for name in entries}
    classes = {name: obj for name, obj in objects.items() if entries[name] == "class"}
    problems = [
        f"public method without an entry on its class page: {name}"
        for name in missing_method_entries(classes, set(entries))
    ] + [
        f"public object missing from api.rst: {name}"
        for name in unlisted_public_objects(
            public_modules(importlib.import_module("skfeat")), objects.values()
        )
    ]
    if problems:
        raise ExtensionError("incomplete API reference:\n" + "\n".join(problems))


_example_warning_contexts = []


def gallery_warnings_as_errors(gallery_conf, fname, when):
    """Turn every warning an example emits into an error (a ``reset_modules`` hook).

    Before an example runs, warnings become exceptions, so an example that
    warns fails the build instead of printing the warning into its page;
    afterwards the previous filters come back, leaving Sphinx's own warnings
    alone.  One exception: a ``DeprecationWarning`` attributed to SciPy's or
    scikit-learn's own code is silenced (never printed either).  Such a
    warning is one library's call into another, as the ``disp``/``iprint``
    options that scikit-learn 1.6 passes to SciPy >= 1.16's L-BFGS-B; it is
    not the example's to fix, and the documentation builds with every
    scikit-learn skfeat supports.  A deprecation an example itself triggers
    is attributed to the example's line, and still fails the build.
    """
    if when == "before":
        context = warnings.catch_warnings()
        context.__enter__()
        warnings.simplefilter("error")
        warnings.filterwarnings(
            "ignore", category=DeprecationWarning, module=r"(scipy|sklearn)\."
        )
        _example_warning_contexts.append(context)
    elif _example_warning_contexts:
        _example_warning_contexts.pop().__exit__(None, None, None)


def setup(app):
    """Register the API-reference hooks."""
    app.connect("autodoc-skip-member", skip_torch_module_members)
    app.connect("build-finished", check_api_reference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

"""The three layers import downwards only: nn, then _engine, then the facade."""

import ast
from pathlib import Path

import pytest

import skfeat

PACKAGE = Path(skfeat.__file__).parent
# What each lower layer may import from skfeat (issue 20, point 10).
ALLOWED = {
    "nn": ("skfeat.nn",),
    # utils imports nothing else of skfeat, so every layer may use it.
    "_engine": ("skfeat._engine", "skfeat.nn", "skfeat.utils"),
    "utils": ("skfeat.utils",),
}


def _skfeat_imports(path):
    """Yield every absolute ``skfeat`` module a file imports, lazily or not."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        yield from (name for name in names if name.split(".")[0] == "skfeat")


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layers_import_downwards_only(layer):
    """No module of a lower layer imports a higher one (issue 20)."""
    upward = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in sorted((PACKAGE / layer).rglob("*.py"))
        for name in _skfeat_imports(path)
        if not name.startswith(ALLOWED[layer])
    ]
    assert not upward


def test_layers_nn_is_pure_torch():
    """skfeat.nn imports no numpy, scikit-learn or skorch, and holds SSLModel."""
    for path in (PACKAGE / "nn").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = (
                    [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else [a.name for a in node.names]
                )
                for name in names:
                    assert name.split(".")[0] not in {"numpy", "sklearn", "skorch"}, (
                        f"{path.name} imports {name}"
                    )
    from skfeat import _engine, nn

    assert "SSLModel" in nn.__all__
    assert not hasattr(_engine, "SSLModel")

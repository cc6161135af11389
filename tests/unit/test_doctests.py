"""Every docstring example in the package runs (numpy-style Examples are executable)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import safeflow

MODULES = sorted(m.name for m in pkgutil.walk_packages(safeflow.__path__, "safeflow."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} doctest example(s) failed in {name}"
    if not name.rsplit(".", 1)[-1].startswith("_") or name.endswith("__init__"):
        assert result.attempted > 0, f"{name} has no runnable example"

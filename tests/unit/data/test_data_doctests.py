"""The ``Examples`` sections of safeflow.data run and give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "safeflow.data",
    "safeflow.data.column",
    "safeflow.data.schema",
    "safeflow.data.sources",
    "safeflow.data.site_data",
    "safeflow.data._infer",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0

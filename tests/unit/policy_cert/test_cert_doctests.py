"""The certificate, keystore and export modules' docstring examples run, and every public
function has one.

(tests/unit/test_doctests.py walks regular packages only; while safeflow.policy has no
``__init__.py`` its modules are run here.)"""

from __future__ import annotations

import dataclasses
import doctest
import importlib
import inspect

import pytest

MODULES = ["safeflow.policy.certificate", "safeflow.policy.keystore", "safeflow.policy.export"]


def public_callables(module: object) -> list[tuple[str, object]]:
    found = []
    for name in module.__all__:  # type: ignore[attr-defined]
        obj = getattr(module, name)
        if inspect.isfunction(obj):
            found.append((name, obj))
        elif inspect.isclass(obj):
            if not dataclasses.is_dataclass(obj) or obj.__name__.endswith("Checkpoint"):
                found.append((name, obj))  # a plain report record needs no example
            for attr, member in vars(obj).items():
                if attr.startswith("_"):
                    continue
                if isinstance(member, staticmethod | classmethod):
                    member = member.__func__
                if inspect.isfunction(member):
                    found.append((f"{name}.{attr}", member))
    return found


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 10


@pytest.mark.parametrize("name", MODULES)
def test_public_functions_have_examples(name: str) -> None:
    module = importlib.import_module(name)
    missing = [
        qual for qual, obj in public_callables(module) if "Examples" not in (obj.__doc__ or "")
    ]
    assert missing == []

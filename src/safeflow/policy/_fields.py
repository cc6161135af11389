"""Typed readers for facts fields: each error names the dotted path and what is expected.

Examples
--------
>>> _int({"persons": -3}, "persons", "origin[0]", 0)
Traceback (most recent call last):
...
safeflow.errors.FactsError: origin[0].persons must be an int >= 0; got -3
>>> _decimal({"epsilon": 0.50}, "epsilon", "output.dp", None, positive=True)
'0.5'
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from safeflow.errors import FactsError
from safeflow.policy._exact import canonical, exact, is_int, is_number


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _fail(path: str, expected: str, value: Any) -> FactsError:
    return FactsError(f"{path} must be {expected}; got {value!r}")


def _mapping(value: Any, path: str, known: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(path or "facts", "a mapping", value)
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        where = f"{path}." if path else ""
        raise FactsError(
            f"unknown field {where}{unknown[0]}; known fields"
            f"{' of ' + path if path else ''} are {', '.join(known)}"
        )
    return value


def _int(
    m: Mapping[str, Any], key: str, path: str, default: Any, *, minimum: int | None = 0
) -> Any:
    value = m.get(key, default)
    if value is None and default is None:
        return None
    if not is_int(value) or (minimum is not None and value < minimum):
        floor = f" >= {minimum}" if minimum is not None else ""
        raise _fail(_at(path, key), f"an int{floor}", value)
    return int(value)


def _bool(m: Mapping[str, Any], key: str, path: str, default: bool | None) -> bool | None:
    value = m.get(key, default)
    if value is None and default is None:
        return None
    if isinstance(value, np.bool_):
        value = bool(value)
    if not isinstance(value, bool):
        raise _fail(_at(path, key), "true or false", value)
    return value


def _choice(m: Mapping[str, Any], key: str, path: str, choices: Sequence[str], default: str) -> str:
    value = m.get(key, default)
    if value not in choices:
        raise _fail(_at(path, key), f"one of {', '.join(choices)}", value)
    return str(value)


def _text(
    m: Mapping[str, Any],
    key: str,
    path: str,
    default: str | None,
    *,
    pattern: re.Pattern[str] | None = None,
    expected: str = "a non-empty string",
) -> Any:
    value = m.get(key, default)
    if value is None and default is None:
        return None
    if not isinstance(value, str) or not value or (pattern and not pattern.match(value)):
        raise _fail(_at(path, key), expected, value)
    return value


def _real(
    m: Mapping[str, Any], key: str, path: str, *, lo: float = 0.0, hi: float | None = None
) -> float | int | None:
    value = m.get(key)
    if value is None:
        return None
    if not is_number(value) or value < lo or (hi is not None and value > hi):
        span = f" in [{lo:g}, {hi:g}]" if hi is not None else f" >= {lo:g}"
        raise _fail(_at(path, key), "a finite number" + ("" if lo == -math.inf else span), value)
    return int(value) if is_int(value) else float(value)


def _decimal(
    m: Mapping[str, Any],
    key: str,
    path: str,
    default: Any,
    *,
    positive: bool = False,
    below_one: bool = False,
) -> str | None:
    value = m.get(key, default)
    if value is None and default is None:
        return None
    what = "a decimal number " + ("> 0" if positive else ">= 0")
    if below_one:
        what = "a decimal number in [0, 1)"
    try:
        number = exact(value)
    except ValueError:
        raise _fail(_at(path, key), what + " (int, float or decimal string)", value) from None
    if number < 0 or (positive and number == 0) or (below_one and number >= 1):
        raise _fail(_at(path, key), what, value)
    return canonical(number)


__all__ = ["_at", "_bool", "_choice", "_decimal", "_fail", "_int", "_mapping", "_real", "_text"]

"""The validator's plumbing: fields, lines, scalars and column references.

:class:`_Base` walks the composed YAML (:mod:`safeflow.study._yaml`); each check takes a
value, its line and its dotted field path, and raises :class:`StudyError` naming them.
"""

from __future__ import annotations

import difflib
import math
import numbers
import re
from collections.abc import Sequence
from datetime import date, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

from safeflow.data import Schema
from safeflow.data.column import KINDS
from safeflow.dp.spec import exact
from safeflow.errors import InvalidParameter
from safeflow.study._yaml import _Map, _Seq
from safeflow.study.errors import StudyError

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_CODE = re.compile(r"^[A-Z]{2}$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _key(prefix: str, key: Any) -> str:
    k = str(key)
    if not _IDENT.match(k):
        k = f"[{k!r}]"
        return f"{prefix}{k}"
    return f"{prefix}.{k}" if prefix else k


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class _Base:
    """Plumbing and scalar checks shared by the study-level and analysis checks."""

    def __init__(self, path: Path | None, base: Path) -> None:
        self.path, self.base = path, base
        self.lines: dict[str, int] = {}
        self.schema: Schema | None = None

    # --- plumbing ---------------------------------------------------------------------

    def fail(self, line: int | None, field: str | None, message: str) -> StudyError:
        text = f"{field} {message}" if field else message
        return StudyError(text, path=self.path, line=line, field=field)

    def mapping(self, value: Any, line: int, field: str, required: Sequence[str],
                optional: Sequence[str] = (), *, what: str = "a mapping") -> _Map:
        if value is None and not required:
            value = _Map()
            value.line, value.key_lines = line, {}
        if not isinstance(value, _Map):
            raise self.fail(line, field or None, f"must be {what}; got {_show(value)}"
                            if field else f"the study file must be {what}; got {_show(value)}")
        known = (*required, *optional)
        for key in value:
            if key not in known:
                where = _key(field, key)
                raise self.fail(value.key_lines.get(key, value.line), where,
                                f"is not a known field{_did_you_mean(str(key), known)} "
                                f"(known here: {', '.join(known)})")
        for key in required:
            if key not in value:
                raise self.fail(value.line, _key(field, key), "is required")
        return value

    def at(self, m: _Map, key: str, prefix: str) -> tuple[Any, int, str]:
        field = _key(prefix, key)
        line = m.key_lines.get(key, m.line)
        self.lines[field] = line
        return m.get(key), line, field

    def seq(self, value: Any, line: int, field: str, *, what: str, min_items: int = 0) -> _Seq:
        if not isinstance(value, _Seq) or len(value) < min_items:
            need = f"a list of at least {min_items} {what}" if min_items else f"a list of {what}"
            raise self.fail(line, field, f"must be {need}; got {_show(value)}")
        return value

    # --- scalars ----------------------------------------------------------------------

    def text(self, v: Any, line: int, field: str, *, example: str = "",
             pattern: re.Pattern[str] | None = None, expected: str | None = None) -> str:
        ok = isinstance(v, str) and v.strip() != ""
        if ok and pattern is not None:
            ok = bool(pattern.match(v))
        if not ok:
            exp = expected or "a non-empty string"
            raise self.fail(line, field, f"must be {exp}{example}; got {_show(v)}")
        return str(v)

    def optional_text(self, v: Any, line: int, field: str, **kw: Any) -> str | None:
        return None if v is None else self.text(v, line, field, **kw)

    def code(self, v: Any, line: int, field: str, example: str = "NL") -> str:
        if isinstance(v, bool):
            raise self.fail(line, field, f"must be an ISO 3166 alpha-2 code such as "
                            f"{example!r}; got {v!r} (YAML reads NO, ON, Y... as booleans: "
                            "quote the code, e.g. 'NO')")
        return self.text(v, line, field, pattern=_CODE,
                         expected=f"an ISO 3166 alpha-2 code such as {example!r}")

    def boolean(self, v: Any, line: int, field: str) -> bool:
        if not isinstance(v, bool):
            raise self.fail(line, field, f"must be true or false; got {_show(v)}")
        return v

    def integer(self, v: Any, line: int, field: str, lo: int, hi: int) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise self.fail(line, field, f"must be an integer from {lo} to {hi}; got {_show(v)}")
        return int(v)

    def number(self, v: Any, line: int, field: str, *, lo: float | None = None,
               hi: float | None = None, lo_open: bool = False, hi_open: bool = False,
               expected: str = "a number") -> float:
        ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
        if ok:
            x = float(v)
            ok = not ((lo is not None and (x < lo or (lo_open and x == lo)))
                      or (hi is not None and (x > hi or (hi_open and x == hi))))
        if not ok:
            raise self.fail(line, field, f"must be {expected}; got {_show(v)}")
        return float(v)

    def choice(self, v: Any, line: int, field: str, choices: Sequence[str]) -> str:
        if not isinstance(v, str) or v not in choices:
            hint = _did_you_mean(str(v), choices) if isinstance(v, str) else ""
            raise self.fail(line, field, f"must be one of {', '.join(choices)}; "
                            f"got {_show(v)}{hint}")
        return v

    def fraction(self, v: Any, line: int, field: str, what: str) -> Fraction:
        try:
            if isinstance(v, bool) or not isinstance(v, int | float | str):
                raise InvalidParameter("not a number")
            x = exact(v, field)
        except InvalidParameter:
            x = None
        if x is None or x <= 0:
            raise self.fail(line, field, f"must be {what}; got {_show(v)}")
        return x

    def iso_date(self, v: Any, line: int, field: str) -> date:
        if isinstance(v, datetime):
            raise self.fail(line, field, f"must be a date such as 2027-06-30 (no time of "
                            f"day); got {v.isoformat()!r}")
        if isinstance(v, date):
            return v
        if isinstance(v, str):
            try:
                return date.fromisoformat(v.strip())
            except ValueError:
                pass
        raise self.fail(line, field, f"must be an ISO date such as 2027-06-30; got {_show(v)}")

    def column_ref(self, v: Any, line: int, field: str, *, kinds: Sequence[str] = KINDS,
                   what: str = "a column") -> str:
        assert self.schema is not None
        if not isinstance(v, str) or v not in self.schema:
            known = self.schema.names
            hint = _did_you_mean(v, known) if isinstance(v, str) else ""
            raise self.fail(line, field, f"must name {what} of the schema; got {_show(v)}"
                            f"{hint} (columns: {', '.join(known)})")
        col = self.schema.column(v)
        if col.role == "identifier":
            raise self.fail(line, field, f"names the identifier column {v!r}; identifiers "
                            "never enter a statistic")
        if col.kind not in kinds:
            raise self.fail(line, field, f"must name {what} ({' or '.join(kinds)}); "
                            f"{v!r} is {col.kind}")
        return v

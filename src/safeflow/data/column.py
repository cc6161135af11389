"""One column of the public schema: its role, kind, data classes and public range.

The vocabularies (roles, kinds, data classes, policies) are defined here once, as
``Literal`` types and as tuples for validation.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from safeflow.errors import SchemaError

Role = Literal["covariate", "outcome", "time", "event", "group", "identifier"]
Kind = Literal["numeric", "categorical", "binary"]
DataClass = Literal["health", "genetic", "pi", "sensitive_pi", "important_data", "public"]
OnMissing = Literal["error", "drop"]
OnOutOfBounds = Literal["error", "clip", "drop"]
Unit = Literal["patient", "row"]
Category = str | int | bool

ROLES: tuple[str, ...] = get_args(Role)
KINDS: tuple[str, ...] = get_args(Kind)
DATA_CLASSES: tuple[str, ...] = get_args(DataClass)
UNITS: tuple[str, ...] = get_args(Unit)
_ON_MISSING: tuple[str, ...] = get_args(OnMissing)
_ON_OOB: tuple[str, ...] = get_args(OnOutOfBounds)
_COLUMN_KEYS = frozenset(
    {"name", "role", "kind", "classes", "bounds", "categories", "resolution"}
    | {"on_missing", "on_out_of_bounds"}
)


def _choice(what: str, value: object, allowed: tuple[str, ...], name: str) -> str:
    if value not in allowed:
        raise SchemaError(
            f"column {name!r}: {what} must be one of {', '.join(map(repr, allowed))}; got {value!r}"
        )
    return str(value)


def _default_kind(role: str) -> str:
    return {"event": "binary", "group": "categorical"}.get(role, "numeric")


@dataclass(frozen=True)
class Column:
    """One column of site data: what it is, how sensitive it is, and its public range.

    Parameters
    ----------
    name : str
        The column's name in the site data.
    role : {"covariate", "outcome", "time", "event", "group", "identifier"}
        What the column is for. Identifiers never enter a statistic.
    kind : {"numeric", "categorical", "binary"}, optional
        Numeric columns are read as float64; categorical and binary columns as integer
        codes ``0..k-1`` in the order of ``categories``. Defaults to ``"binary"`` for event
        columns, ``"categorical"`` for group columns and ``"numeric"`` otherwise.
    classes : tuple of str
        Legal data classes: a non-empty subset of ``health``, ``genetic``, ``pi``,
        ``sensitive_pi`` and ``important_data``.
    bounds : (float, float), optional
        Numeric columns only: the public range ``[lo, hi]`` every value lies in.
    categories : tuple of str, int or bool, optional
        Categorical and binary columns: the public levels; the first is the reference.
        Required for categorical columns; binary columns default to ``(False, True)``
        (which also matches the numbers 0 and 1).
    resolution : float, optional
        Numeric columns only: the value grid, e.g. ``1.0`` for whole days.
    on_missing : {"error", "drop"}
        What a NaN or null does: stop with :class:`~safeflow.errors.MissingValueError`,
        or drop the whole row (counted).
    on_out_of_bounds : {"error", "clip", "drop"}
        What a value outside ``bounds`` (or a level outside ``categories``) does. ``clip``
        needs numeric bounds.

    Examples
    --------
    >>> from safeflow.data import Column
    >>> Column("age", bounds=(18, 100), on_out_of_bounds="clip").bounds
    (18.0, 100.0)
    >>> Column("status", role="event", categories=(0, 1)).kind
    'binary'
    """

    name: str
    role: Role = "covariate"
    kind: Kind = None  # type: ignore[assignment]  # resolved from the role
    classes: tuple[DataClass, ...] = ("health",)
    bounds: tuple[float, float] | None = None
    categories: tuple[Category, ...] | None = None
    resolution: float | None = None
    on_missing: OnMissing = "error"
    on_out_of_bounds: OnOutOfBounds = "error"

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not name:
            raise SchemaError(f"a column name must be a non-empty string; got {name!r}")
        role = _choice("role", self.role, ROLES, name)
        kind = _default_kind(role) if self.kind is None else self.kind
        kind = _choice("kind", kind, KINDS, name)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "classes", self._check_classes())
        _choice("on_missing", self.on_missing, _ON_MISSING, name)
        _choice("on_out_of_bounds", self.on_out_of_bounds, _ON_OOB, name)
        if role == "time" and kind != "numeric":
            raise SchemaError(f"column {name!r}: a time column must be numeric; got {kind!r}")
        if role == "event" and kind == "numeric":
            raise SchemaError(
                f"column {name!r}: an event column must be binary (or categorical), "
                "read as codes; declare kind='binary' with categories=(censored, event)"
            )
        if kind != "numeric" and (self.bounds is not None or self.resolution is not None):
            raise SchemaError(
                f"column {name!r}: bounds and resolution apply to numeric columns only; "
                f"a {kind} column declares its levels with categories=(...)"
            )
        if kind == "numeric" and self.categories is not None:
            raise SchemaError(
                f"column {name!r}: categories apply to categorical and binary columns; "
                "declare kind='categorical' or remove categories"
            )
        object.__setattr__(self, "bounds", self._check_bounds())
        object.__setattr__(self, "categories", self._check_categories())
        object.__setattr__(self, "resolution", self._check_resolution())
        if self.on_out_of_bounds == "clip" and (kind != "numeric" or self.bounds is None):
            raise SchemaError(
                f"column {name!r}: on_out_of_bounds='clip' needs a numeric column with "
                "declared bounds; declare bounds=(lo, hi) or use 'drop' or 'error'"
            )

    def _check_classes(self) -> tuple[str, ...]:
        classes = self.classes
        if isinstance(classes, str):
            classes = (classes,)
        classes = tuple(classes)
        bad = [c for c in classes if c not in DATA_CLASSES]
        if not classes or bad:
            raise SchemaError(
                f"column {self.name!r}: classes must be a non-empty subset of "
                f"{', '.join(DATA_CLASSES)}; got {classes!r}"
            )
        if "public" in classes and len(set(classes)) > 1:
            raise SchemaError(
                f"column {self.name!r}: 'public' (published, de-identified open data) cannot be "
                f"combined with other classes; got {classes!r}"
            )
        return tuple(dict.fromkeys(classes))

    def _check_bounds(self) -> tuple[float, float] | None:
        if self.bounds is None:
            return None
        msg = (
            f"column {self.name!r}: bounds must be two finite numbers (lo, hi) with "
            f"lo <= hi; got {self.bounds!r}"
        )
        try:
            lo, hi = self.bounds
        except (TypeError, ValueError):
            raise SchemaError(msg) from None
        if not all(isinstance(b, numbers.Real) and not isinstance(b, bool) for b in (lo, hi)):
            raise SchemaError(msg)
        lo, hi = float(lo), float(hi)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise SchemaError(msg)
        return (lo, hi)

    def _check_categories(self) -> tuple[Category, ...] | None:
        cats = self.categories
        if cats is None:
            if self.kind == "binary":
                return (False, True)
            if self.kind == "categorical" and self.role != "identifier":
                raise SchemaError(
                    f"column {self.name!r}: a categorical column needs its public levels; "
                    "declare categories=(...) with the reference level first"
                )
            return None
        if isinstance(cats, str | bytes) or not isinstance(cats, Sequence):
            raise SchemaError(
                f"column {self.name!r}: categories must be a tuple of levels; got {cats!r}"
            )
        out: list[Category] = []
        for c in cats:
            if isinstance(c, bool | str):
                out.append(c)
            elif isinstance(c, numbers.Integral):
                out.append(int(c))
            else:
                raise SchemaError(
                    f"column {self.name!r}: categories must be str, int or bool; "
                    f"got a {type(c).__name__}"
                )
        texts = sum(isinstance(c, str) for c in out)
        if 0 < texts < len(out):
            raise SchemaError(
                f"column {self.name!r}: categories must be all text or all numbers; "
                "recode the data so the levels share one type"
            )
        if not out or len(set(out)) != len(out):
            raise SchemaError(
                f"column {self.name!r}: categories must be non-empty and distinct "
                "(note True == 1 and False == 0)"
            )
        if self.kind == "binary" and len(out) != 2:
            raise SchemaError(
                f"column {self.name!r}: a binary column has exactly two categories; "
                f"got {len(out)} (use kind='categorical' for more)"
            )
        return tuple(out)

    def _check_resolution(self) -> float | None:
        r = self.resolution
        if r is None:
            return None
        if not isinstance(r, numbers.Real) or isinstance(r, bool) or not math.isfinite(r) or r <= 0:
            raise SchemaError(
                f"column {self.name!r}: resolution must be a finite number > 0; got {r!r}"
            )
        return float(r)

    def to_dict(self) -> dict[str, Any]:
        """Return this column as a JSON-able dict (see :meth:`Schema.to_dict`).

        Examples
        --------
        >>> from safeflow.data import Column
        >>> Column("sex", kind="binary", categories=("F", "M")).to_dict()["categories"]
        ['F', 'M']
        """
        return {
            "name": self.name,
            "role": self.role,
            "kind": self.kind,
            "classes": list(self.classes),
            "bounds": None if self.bounds is None else list(self.bounds),
            "categories": None if self.categories is None else list(self.categories),
            "resolution": self.resolution,
            "on_missing": self.on_missing,
            "on_out_of_bounds": self.on_out_of_bounds,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Column:
        """Build a column from :meth:`to_dict` output; unknown keys are a SchemaError.

        Examples
        --------
        >>> from safeflow.data import Column
        >>> Column.from_dict({"name": "age", "bounds": [0, 120]}).bounds
        (0.0, 120.0)
        """
        if not isinstance(d, Mapping):
            raise SchemaError(f"a column must be a mapping; got {type(d).__name__}")
        unknown = sorted(set(d) - _COLUMN_KEYS)
        if unknown or "name" not in d:
            raise SchemaError(
                f"a column needs a 'name' and only the keys {', '.join(sorted(_COLUMN_KEYS))}; "
                f"unknown: {unknown}"
            )
        kw = dict(d)
        for key in ("classes", "bounds", "categories"):
            if isinstance(kw.get(key), list):
                kw[key] = tuple(kw[key])
        return cls(**kw)


__all__ = ["DATA_CLASSES", "KINDS", "ROLES", "UNITS", "Column"]

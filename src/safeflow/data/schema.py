"""The public description of a site's data: column roles, data classes, bounds and levels.

A :class:`Schema` is what sites share instead of rows. It names every column an analysis
may use, says what the column *is* (its role and kind), which legal data classes it falls
under, and, for differential privacy, its public bounds or levels. A declared schema is
agreed before the study; an inferred one (:meth:`Schema.infer`) is a local convenience
whose bounds and levels come from the data, so they are never treated as public.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from safeflow.data.column import DATA_CLASSES, KINDS, ROLES, UNITS, Category, Column, Unit
from safeflow.errors import SchemaError

SCHEMA_FORMAT = "safeflow.schema/1"


class InferredSchemaWarning(UserWarning):
    """The schema was inferred from the data; its bounds and levels are not public."""


@dataclass(frozen=True)
class Schema:
    """The shared, public description of a site dataset.

    Parameters
    ----------
    columns : sequence of Column
        The columns analyses may name; names must be distinct.
    unit : {"patient", "row"}
        The unit of privacy: one patient (all their rows) or one row.
    declared : bool
        True when the bounds and levels were declared in public (the default). Inferred
        schemas (:meth:`infer`) have ``declared=False``; their bounds are never public.
    rows_per_patient : int
        Public bound on the rows one patient may contribute (default 1: every row is a
        different patient). Differential privacy with ``unit="patient"`` scales its
        sensitivity by it; under DP each site checks it against its identifier column.

    Examples
    --------
    >>> from safeflow.data import Column, Schema
    >>> s = Schema([Column("age", bounds=(18, 100)), Column("sex", kind="binary",
    ...             categories=("F", "M"))])
    >>> s.public_bounds("age")
    (18.0, 100.0)
    >>> Schema.from_dict(s.to_dict()) == s
    True
    """

    columns: tuple[Column, ...]
    unit: Unit = "patient"
    declared: bool = True
    rows_per_patient: int = 1
    _by_name: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.columns, Column | str) or not isinstance(self.columns, Sequence):
            raise SchemaError("Schema(columns=...) takes a list of sf.Column")
        cols = tuple(self.columns)
        bad = [type(c).__name__ for c in cols if not isinstance(c, Column)]
        if bad:
            raise SchemaError(f"Schema columns must be sf.Column objects; got {bad[0]}")
        names = [c.name for c in cols]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise SchemaError(f"column names must be distinct; repeated: {dup}")
        if self.unit not in UNITS:
            raise SchemaError(f"unit must be 'patient' or 'row'; got {self.unit!r}")
        if not isinstance(self.declared, bool):
            raise SchemaError(f"declared must be True or False; got {self.declared!r}")
        rpp = self.rows_per_patient
        if isinstance(rpp, bool) or not isinstance(rpp, int) or not 1 <= rpp <= 10**6:
            raise SchemaError(
                f"rows_per_patient must be an int between 1 and 1,000,000 (the most rows one "
                f"patient may contribute); got {rpp!r}")
        object.__setattr__(self, "columns", cols)
        object.__setattr__(self, "_by_name", {c.name: c for c in cols})

    @property
    def names(self) -> tuple[str, ...]:
        """The column names, in schema order."""
        return tuple(self._by_name)

    def __iter__(self) -> Iterator[Column]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def column(self, name: str) -> Column:
        """Return the column called ``name``.

        Raises
        ------
        SchemaError
            If the schema has no such column; the message lists the known columns.

        Examples
        --------
        >>> from safeflow.data import Column, Schema
        >>> Schema([Column("age")]).column("age").kind
        'numeric'
        """
        try:
            return self._by_name[name]
        except (KeyError, TypeError):
            known = ", ".join(map(repr, self.names)) or "(none)"
            raise SchemaError(
                f"unknown column {name!r}; the schema's columns are: {known}"
            ) from None

    def public_bounds(self, name: str) -> tuple[float, float] | None:
        """Declared public bounds of a numeric column, or None.

        None when the column declares no bounds, is not numeric, or the schema was
        inferred from the data (such bounds are not public).

        Examples
        --------
        >>> from safeflow.data import Column, Schema
        >>> Schema([Column("age", bounds=(0, 120))], declared=False).public_bounds("age") is None
        True
        """
        col = self.column(name)
        return col.bounds if self.declared else None

    def public_categories(self, name: str) -> tuple[Category, ...] | None:
        """Declared public levels of a categorical or binary column, or None (as bounds).

        Examples
        --------
        >>> from safeflow.data import Column, Schema
        >>> Schema([Column("arm", kind="categorical", categories=("a", "b"))]
        ...        ).public_categories("arm")
        ('a', 'b')
        """
        col = self.column(name)
        return col.categories if self.declared else None

    def to_dict(self, *, allow_inferred: bool = False) -> dict[str, Any]:
        """Return the schema as a JSON-able dict, to share with the other sites.

        Parameters
        ----------
        allow_inferred : bool
            An inferred schema holds values taken from the data (minimum, maximum, the
            levels seen), so it is refused unless this is True, for local editing only.

        Raises
        ------
        SchemaError
            If the schema was inferred and ``allow_inferred`` is False.

        Examples
        --------
        >>> from safeflow.data import Column, Schema
        >>> Schema([Column("age", bounds=(0, 120))]).to_dict()["columns"][0]["bounds"]
        [0.0, 120.0]
        """
        if not self.declared and not allow_inferred:
            raise SchemaError(
                "this schema was inferred from the data: its bounds and categories are "
                "values from the site's rows and must not be shared; declare the schema "
                "with sf.Schema (or pass allow_inferred=True to edit a local draft)"
            )
        out = {
            "format": SCHEMA_FORMAT,
            "unit": self.unit,
            "declared": self.declared,
            "columns": [c.to_dict() for c in self.columns],
        }
        if self.rows_per_patient != 1:
            out["rows_per_patient"] = self.rows_per_patient
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Schema:
        """Build a schema from :meth:`to_dict` output (for example parsed JSON).

        Examples
        --------
        >>> from safeflow.data import Schema
        >>> s = Schema.from_dict({"columns": [{"name": "age", "bounds": [0, 120]}]})
        >>> s.column("age").bounds
        (0.0, 120.0)
        """
        if not isinstance(d, Mapping):
            raise SchemaError(f"a schema must be a mapping; got {type(d).__name__}")
        fmt = d.get("format", SCHEMA_FORMAT)
        if fmt != SCHEMA_FORMAT:
            raise SchemaError(f"unsupported schema format {fmt!r}; expected {SCHEMA_FORMAT!r}")
        unknown = sorted(set(d) - {"format", "unit", "declared", "columns",
                                   "rows_per_patient"})
        if unknown or not isinstance(d.get("columns"), Sequence):
            raise SchemaError(
                "a schema dict has a 'columns' list and optionally 'format', 'unit', "
                f"'declared' and 'rows_per_patient'; unknown keys: {unknown}"
            )
        return cls(
            tuple(Column.from_dict(c) for c in d["columns"]),
            unit=d.get("unit", "patient"),
            declared=d.get("declared", True),
            rows_per_patient=d.get("rows_per_patient", 1),
        )

    @classmethod
    def infer(
        cls,
        data: Any,
        *,
        site: str | None = None,
        max_levels: int = 20,
        _stacklevel: int = 2,
    ) -> Schema:
        """Infer a schema from site data, streaming it once; warns InferredSchemaWarning.

        Numeric columns get bounds from the data's minimum and maximum; integer, text and
        boolean columns with at most ``max_levels`` levels become categorical (binary when
        there are two) with sorted levels; columns named like ``id``, ``patient_id`` or
        ``mrn`` become identifiers. Text with more levels, dates and all-null columns are
        left out (the warning names them). The result has ``declared=False``: nothing in
        it is public, so differential privacy will not accept it.

        Parameters
        ----------
        data
            Anything :class:`~safeflow.data.SiteData` accepts.
        site : str, optional
            The site's name, for the warning.
        max_levels : int
            The most levels a column may have and still be inferred categorical.

        Examples
        --------
        >>> import warnings
        >>> import pandas as pd
        >>> from safeflow.data import InferredSchemaWarning, Schema
        >>> df = pd.DataFrame({"patient_id": [7, 8, 9], "age": [51.5, 60.0, 72.0],
        ...                    "sex": ["F", "M", "F"]})
        >>> with warnings.catch_warnings(record=True) as w:
        ...     warnings.simplefilter("always")
        ...     s = Schema.infer(df, site="beijing")
        >>> w[0].category is InferredSchemaWarning
        True
        >>> [(c.name, c.role, c.kind) for c in s]
        [('patient_id', 'identifier', 'numeric'), ('age', 'covariate', 'numeric'), ('sex', 'covariate', 'binary')]
        >>> s.public_bounds("age") is None
        True
        """  # noqa: E501
        from safeflow.data._infer import infer_columns
        from safeflow.data.sources import open_source

        if isinstance(max_levels, bool) or not isinstance(max_levels, int) or max_levels < 1:
            raise SchemaError(f"max_levels must be an integer >= 1; got {max_levels!r}")
        columns, left_out = infer_columns(open_source(data), max_levels=max_levels)
        where = f"site {site!r}" if site else "this site"
        msg = (
            f"schema inferred from the data at {where}: inferred bounds and categories are "
            "not public and will not be accepted for differential privacy; declare them "
            "with sf.Schema"
        )
        if left_out:
            msg += f" (left out, declare them to use them: {', '.join(map(repr, left_out))})"
        warnings.warn(msg, InferredSchemaWarning, stacklevel=_stacklevel)
        return cls(tuple(columns), declared=False)


__all__ = [
    "DATA_CLASSES",
    "KINDS",
    "ROLES",
    "UNITS",
    "Column",
    "InferredSchemaWarning",
    "Schema",
]

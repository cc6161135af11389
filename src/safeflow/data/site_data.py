"""Site data: one site's rows behind its schema, read only in validated, bounded batches.

A :class:`SiteData` never leaves its site: it refuses to be pickled or copied, its repr
holds no data, and analyses see it only through :meth:`SiteData.batches`, which yields
:class:`Batch` es of numpy arrays checked against the schema.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NoReturn

import numpy as np
import pyarrow as pa

from safeflow.data import _validate
from safeflow.data._base import Source, TypeHints
from safeflow.data.schema import Column, Schema
from safeflow.data.sources import open_source
from safeflow.errors import DataError, InvalidParameter, SchemaError

DEFAULT_BATCH_SIZE = 65_536


def _refuse_pickle(what: str) -> NoReturn:
    raise DataError(
        f"site data never leaves its site: a {what} cannot be pickled, copied or "
        "serialised; send only the statistics an analysis computes from it"
    )


class Batch:
    """One batch of validated columns: ``batch["age"]`` is a read-only numpy array.

    Numeric and time columns are float64; categorical, binary and event columns are int64
    codes ``0..k-1`` in the order of the column's categories. ``len(batch)`` is the number
    of rows left after the schema's drops.

    Examples
    --------
    >>> import pandas as pd
    >>> from safeflow.data import Column, Schema, SiteData
    >>> sd = SiteData(pd.DataFrame({"sex": ["M", "F", "F"]}),
    ...               schema=Schema([Column("sex", kind="binary", categories=("F", "M"))]))
    >>> batch = next(sd.batches(["sex"]))
    >>> batch["sex"], len(batch)
    (array([1, 0, 0]), 3)
    """

    __slots__ = ("_arrays", "_n")
    __iter__ = None  # a batch is not a sequence of rows

    def __init__(self, arrays: Mapping[str, np.ndarray], n_rows: int) -> None:
        self._arrays = dict(arrays)
        self._n = n_rows

    @property
    def columns(self) -> tuple[str, ...]:
        """The column names this batch holds, in the order they were asked for."""
        return tuple(self._arrays)

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._arrays[name]
        except KeyError:
            raise SchemaError(
                f"column {name!r} is not in this batch; it holds "
                f"{', '.join(map(repr, self._arrays))}. Ask batches() for it"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._arrays

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return f"Batch(columns={list(self._arrays)})"

    def __reduce__(self) -> NoReturn:
        _refuse_pickle("Batch")


def _rebatch(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.RecordBatch]:
    """Regroup record batches into batches of exactly ``size`` rows (the last may be short)."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for rb in batches:
        while rb.num_rows:
            take = min(size - held, rb.num_rows)
            pending.append(rb.slice(0, take))
            held += take
            rb = rb.slice(take)
            if held == size:
                yield pending[0] if len(pending) == 1 else pa.concat_batches(pending)
                pending, held = [], 0
    if held:
        yield pending[0] if len(pending) == 1 else pa.concat_batches(pending)


def _hints(columns: Sequence[Column]) -> TypeHints:
    hints: dict[str, str] = {}
    for c in columns:
        if c.kind == "numeric":
            hints[c.name] = "number"
        elif c.categories and isinstance(c.categories[0], str):
            hints[c.name] = "text"
        elif c.categories and not isinstance(c.categories[0], bool):
            hints[c.name] = "number"
    return hints


class SiteData:
    """One site's data with its schema, read in validated, bounded-memory batches.

    Parameters
    ----------
    data
        A pandas or polars DataFrame, a pyarrow Table, a path to a ``.csv`` or ``.parquet``
        file (or a directory of Parquet files), or :class:`~safeflow.data.SQL`.
    schema : Schema or dict, optional
        The declared schema (a dict is read with :meth:`Schema.from_dict`). When omitted
        it is inferred from the data with a warning (:meth:`Schema.infer`), and nothing
        in it is public.
    site : str, optional
        The site's name, used in the inference warning.

    Raises
    ------
    DataError
        If ``data`` is of an unsupported type or the file does not exist.
    SchemaError
        If the schema names columns the data does not have.

    Examples
    --------
    >>> import pandas as pd
    >>> from safeflow.data import Column, Schema, SiteData
    >>> df = pd.DataFrame({"age": [34.0, None, 71.0, 130.0], "mrn": [11, 12, 13, 14]})
    >>> schema = Schema([Column("age", bounds=(0, 120), on_missing="drop",
    ...                         on_out_of_bounds="clip"), Column("mrn", role="identifier")])
    >>> sd = SiteData(df, schema=schema)
    >>> [b["age"].tolist() for b in sd.batches(["age"], batch_size=2)]
    [[34.0], [71.0, 120.0]]
    >>> sd.drop_counts
    {'age:missing': 1, 'age:clipped': 1}
    """

    def __init__(
        self,
        data: Any,
        schema: Schema | Mapping[str, Any] | None = None,
        *,
        site: str | None = None,
    ) -> None:
        if isinstance(data, SiteData):
            source = data._source
            schema = data.schema if schema is None else schema
        else:
            source = open_source(data)
        self._source: Source = source
        if schema is None:
            schema = Schema.infer(source, site=site, _stacklevel=3)
        elif isinstance(schema, Mapping):
            schema = Schema.from_dict(schema)
        elif not isinstance(schema, Schema):
            raise SchemaError(
                f"schema must be an sf.Schema (or its dict form); got {type(schema).__name__}"
            )
        missing = [c for c in schema.names if c not in source.column_names]
        if missing:
            raise SchemaError(
                f"the schema names columns the site data does not have: {missing}; the data's "
                f"columns are {list(source.column_names)}"
            )
        self._schema: Schema = schema
        self._drop_counts: dict[str, int] = {}

    @property
    def schema(self) -> Schema:
        """The declared (or inferred) schema."""
        return self._schema

    @property
    def column_names(self) -> tuple[str, ...]:
        """Every column name in the data, in the schema or not."""
        return self._source.column_names

    @property
    def drop_counts(self) -> dict[str, int]:
        """Rows dropped (or values clipped) per ``"column:reason"`` in the last batches() run.

        Reasons are ``missing``, ``out_of_bounds`` and ``clipped``. Each column counts on
        its own, so a row missing two values is counted under both columns. The counts
        grow as batches are read and restart at each :meth:`batches` call.
        """
        return dict(self._drop_counts)

    def n_rows(self) -> int:
        """The number of rows in the data before any drop, from metadata where possible.

        Examples
        --------
        >>> import pyarrow as pa
        >>> from safeflow.data import Column, Schema, SiteData
        >>> SiteData(pa.table({"x": [1.0, 2.0]}), schema=Schema([Column("x")])).n_rows()
        2
        """
        return self._source.n_rows()

    def _columns(self, columns: Sequence[str] | str) -> list[Column]:
        if isinstance(columns, str):
            columns = [columns]
        if not isinstance(columns, Sequence) or not columns:
            raise InvalidParameter(
                f"batches() needs a non-empty list of column names; got {columns!r}"
            )
        out = []
        for name in dict.fromkeys(columns):  # a name asked twice is read once
            if name not in self._schema and name in self._source.column_names:
                raise SchemaError(
                    f"column {name!r} is in the data but not in the schema; declare it with "
                    "sf.Column(...) to use it"
                )
            col = self._schema.column(name)
            if col.role == "identifier":
                raise SchemaError(
                    f"column {name!r} is an identifier; identifiers never enter a statistic. "
                    "Leave it out of the analysis, or declare its real role if it is not an "
                    "identifier"
                )
            out.append(col)
        return out

    def batches(
        self, columns: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE
    ) -> Iterator[Batch]:
        """Stream validated batches of ``columns``.

        Every batch but the last covers exactly ``batch_size`` rows of the source; rows
        dropped by the schema's policies are then removed, so ``len(batch)`` may be less.
        Only one batch (plus the reader's small read-ahead) is in memory at a time.

        Parameters
        ----------
        columns : sequence of str
            Schema columns to read (a name given twice is read once); identifiers are
            refused.
        batch_size : int
            Source rows per batch (>= 1).

        Raises
        ------
        SchemaError
            Unknown or identifier columns (raised at the call, before any reading).
        MissingValueError, OutOfBoundsError, DataError
            While iterating, when a batch breaks the schema.

        Examples
        --------
        >>> import pandas as pd
        >>> from safeflow.data import Column, Schema, SiteData
        >>> sd = SiteData(pd.DataFrame({"x": range(5)}), schema=Schema([Column("x")]))
        >>> [len(b) for b in sd.batches(["x"], batch_size=2)]
        [2, 2, 1]
        """
        cols = self._columns(columns)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
            raise InvalidParameter(f"batch_size must be an integer >= 1; got {batch_size!r}")
        if batch_size < 1:
            raise InvalidParameter(f"batch_size must be an integer >= 1; got {batch_size!r}")
        counts: dict[str, int] = {}
        self._drop_counts = counts
        return self._iter(cols, int(batch_size), counts)

    def max_rows_per_identifier(self) -> int | None:
        """The most rows any one identifier value has (None without an identifier column).

        For the site's own check of the declared ``rows_per_patient`` under differential
        privacy; the identifiers are read, counted and forgotten here, and only the
        check's outcome leaves the site.

        Examples
        --------
        >>> import pandas as pd
        >>> from safeflow.data import Column, Schema, SiteData
        >>> s = Schema([Column("pid", role="identifier", kind="categorical"),
        ...             Column("x")])
        >>> SiteData(pd.DataFrame({"pid": ["a", "b", "a"], "x": [1.0, 2, 3]}),
        ...          schema=s).max_rows_per_identifier()
        2
        """
        ident = [c for c in self._schema if c.role == "identifier"]
        if not ident:
            return None
        seen: dict[str, int] = {}
        for rb in self._source.iter_batches([ident[0].name], DEFAULT_BATCH_SIZE,
                                            _hints(ident[:1])):
            for value in rb.columns[0].to_pylist():
                key = str(value)
                seen[key] = seen.get(key, 0) + 1
        return max(seen.values(), default=0)

    def _iter(self, cols: list[Column], size: int, counts: dict[str, int]) -> Iterator[Batch]:
        names = [c.name for c in cols]
        public = self._schema.declared
        raw = self._source.iter_batches(names, size, _hints(cols))
        for rb in _rebatch(raw, size):
            arrays: dict[str, np.ndarray] = {}
            drops: list[np.ndarray] = []
            for col, arr in zip(cols, rb.columns, strict=True):
                arrays[col.name], d = _validate.convert(col, arr, counts, public=public)
                drops.extend(d)
            n = rb.num_rows
            if drops:
                keep = ~np.logical_or.reduce(drops)
                arrays = {k: v[keep] for k, v in arrays.items()}
                n = int(keep.sum())
            for v in arrays.values():
                v.flags.writeable = False
            yield Batch(arrays, n)

    def __repr__(self) -> str:
        kind = "declared" if self._schema.declared else "inferred"
        n = len(self._schema)
        return f"SiteData({self._source.describe()}, {n} column{'s' * (n != 1)}, {kind} schema)"

    def __reduce__(self) -> NoReturn:
        _refuse_pickle("SiteData")

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        _refuse_pickle("SiteData")

    def __getstate__(self) -> NoReturn:
        _refuse_pickle("SiteData")

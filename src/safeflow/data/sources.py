"""Where site data comes from: in-memory frames, CSV and Parquet files, or a DuckDB query.

Every source yields :class:`pyarrow.RecordBatch` es of the requested columns, in row order,
without materialising the whole source: in-memory frames are sliced per batch, CSV files
are read block by block (:func:`pyarrow.csv.open_csv`), Parquet files fragment by fragment
and row group by row group (:mod:`pyarrow.dataset`), and SQL through DuckDB's streaming
Arrow reader. Batch boundaries are evened out later (``site_data._rebatch``).

Errors never quote a cell: the underlying library's message may contain one, so it is
replaced by a message that names the file or column and the fix.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from safeflow.data._base import ARROW_ERRORS, Source, TypeHints, check_names
from safeflow.data._files import CSVSource, ParquetSource
from safeflow.data._sql import SQLSource
from safeflow.errors import DataError, InvalidParameter

_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst", ".csv.lz4")
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")


@dataclass(frozen=True)
class SQL:
    """A DuckDB query whose result is the site data, streamed in Arrow batches.

    Parameters
    ----------
    query : str
        One ``SELECT`` statement, e.g. ``"SELECT * FROM read_parquet('visits.parquet')"``.
    database : str or path, optional
        A DuckDB database file, opened read-only. Default: an in-memory database.
    config : mapping, optional
        DuckDB settings for the connection, e.g. ``{"threads": 2, "memory_limit": "1GB"}``.
        DuckDB's working memory grows with its thread count (not with the data), so a
        large server may want to cap it.
    tables : mapping of str to DataFrame or Table, optional
        In-memory frames (pandas, polars, pyarrow) to register under these names.

    Examples
    --------
    >>> import pandas as pd
    >>> from safeflow.data import SQL, Column, Schema, SiteData
    >>> df = pd.DataFrame({"age": [50.0, 61.0, 70.0]})
    >>> sd = SiteData(SQL("SELECT age FROM v WHERE age > 55", tables={"v": df}),
    ...               schema=Schema([Column("age", bounds=(0, 120))]))
    >>> sd.n_rows()
    2
    """

    query: str
    database: str | os.PathLike[str] | None = None
    config: Mapping[str, Any] | None = None
    tables: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.query, str) or not self.query.strip(" \n\t;"):
            raise InvalidParameter(
                f"SQL(query) must be a non-empty SELECT statement; got {self.query!r}"
            )
        if self.database is not None and not isinstance(self.database, str | os.PathLike):
            raise InvalidParameter(
                f"SQL(database=...) must be a path to a DuckDB file or None; "
                f"got {type(self.database).__name__}"
            )
        if self.config is not None and not isinstance(self.config, Mapping):
            raise InvalidParameter("SQL(config=...) must map DuckDB setting names to values")
        if self.tables is not None and not isinstance(self.tables, Mapping):
            raise InvalidParameter("SQL(tables=...) must map table names to data frames")

    def __reduce__(self) -> Any:
        if self.tables:
            raise DataError(
                "site data never leaves its site: an SQL source holding "
                "registered tables cannot be pickled or copied"
            )
        return (SQL, (self.query, self.database, self.config))


def _mixed_types(name: str) -> DataError:
    return DataError(
        f"column {name!r} mixes value types (for example numbers and text) and cannot be "
        "read; clean the column so every value has the same type"
    )


class PandasSource(Source):
    """A pandas DataFrame, converted to Arrow one column slice at a time."""

    kind = "pandas DataFrame"

    def __init__(self, df: Any) -> None:
        self._df = df
        self._names = check_names(list(df.columns))
        self._labels = dict(zip(self._names, df.columns, strict=True))

    @property
    def column_names(self) -> tuple[str, ...]:
        return self._names

    def n_rows(self) -> int:
        return len(self._df)

    def iter_batches(
        self, columns: Sequence[str], batch_size: int, hints: TypeHints | None = None
    ) -> Iterator[pa.RecordBatch]:
        series = [self._df[self._labels[c]] for c in columns]
        for start in range(0, len(self._df), batch_size):
            arrays = []
            for name, s in zip(columns, series, strict=True):
                try:
                    arrays.append(pa.Array.from_pandas(s.iloc[start : start + batch_size]))
                except ARROW_ERRORS:
                    raise _mixed_types(name) from None
            yield pa.RecordBatch.from_arrays(arrays, names=list(columns))


class PolarsSource(Source):
    """A polars DataFrame, converted to Arrow one column slice at a time."""

    kind = "polars DataFrame"

    def __init__(self, df: Any) -> None:
        self._df = df
        self._names = check_names(df.columns)

    @property
    def column_names(self) -> tuple[str, ...]:
        return self._names

    def n_rows(self) -> int:
        return int(self._df.height)

    def iter_batches(
        self, columns: Sequence[str], batch_size: int, hints: TypeHints | None = None
    ) -> Iterator[pa.RecordBatch]:
        series = [self._df.get_column(c) for c in columns]
        for start in range(0, self._df.height, batch_size):
            arrays = [s.slice(start, batch_size).to_arrow() for s in series]
            yield pa.RecordBatch.from_arrays(arrays, names=list(columns))


class ArrowSource(Source):
    """A pyarrow Table, sliced without copying (chunks are joined per batch only)."""

    kind = "pyarrow Table"

    def __init__(self, table: pa.Table) -> None:
        self._table = table
        self._names = check_names(table.column_names)

    @property
    def column_names(self) -> tuple[str, ...]:
        return self._names

    def n_rows(self) -> int:
        return int(self._table.num_rows)

    def iter_batches(
        self, columns: Sequence[str], batch_size: int, hints: TypeHints | None = None
    ) -> Iterator[pa.RecordBatch]:
        table = self._table.select(list(columns))
        for start in range(0, table.num_rows, batch_size):
            yield table.slice(start, batch_size).combine_chunks().to_batches()[0]


def open_source(data: Any) -> Source:
    """Wrap ``data`` in the matching :class:`Source`.

    Raises
    ------
    DataError
        For an unsupported type, a missing file, or an unknown file type.

    Examples
    --------
    >>> import pyarrow as pa
    >>> from safeflow.data.sources import open_source
    >>> open_source(pa.table({"a": [1, 2]})).column_names
    ('a',)
    """
    if isinstance(data, Source):
        return data
    from safeflow.data.site_data import SiteData  # here: site_data imports this module

    if isinstance(data, SiteData):
        return data._source
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if isinstance(data, pa.Table):
        return ArrowSource(data)
    if isinstance(data, SQL):
        return SQLSource(data)
    if isinstance(data, str | os.PathLike):
        return _open_path(Path(data))
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(data, pd.DataFrame):
        return PandasSource(data)
    pl = sys.modules.get("polars")
    if pl is not None and isinstance(data, pl.DataFrame):
        return PolarsSource(data)
    raise DataError(
        "site data must be a pandas or polars DataFrame, a pyarrow Table, a CSV or Parquet "
        f"path or sf.data.SQL(...); got {type(data).__name__}"
    )


def _open_path(path: Path) -> Source:
    if not path.exists():
        raise DataError(
            f"site data file {path.name!r} does not exist; check the path in the site config"
        )
    name = path.name.lower()
    if path.is_dir() or name.endswith(_PARQUET_SUFFIXES):
        return ParquetSource(path)
    if name.endswith(_CSV_SUFFIXES):
        return CSVSource(path)
    raise DataError(
        f"site data file {path.name!r} has an unsupported type; use a .csv or .parquet "
        "file, a directory of Parquet files, or sf.data.SQL(...)"
    )


__all__ = ["SQL", "Source", "open_source"]

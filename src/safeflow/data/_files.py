"""File sources: CSV read block by block, Parquet fragment by fragment (internal)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as pads

from safeflow.data._base import ARROW_ERRORS, Source, TypeHints, check_names
from safeflow.errors import DataError


class CSVSource(Source):
    """A CSV file read block by block with :func:`pyarrow.csv.open_csv`."""

    kind = "CSV file"

    def __init__(self, path: Path) -> None:
        self._path = path
        reader = self._open(None, None)
        self._names = check_names(reader.schema.names)
        reader.close()

    def describe(self) -> str:
        return f"CSV file {self._path.name!r}"

    @property
    def column_names(self) -> tuple[str, ...]:
        return self._names

    def _open(self, columns: Sequence[str] | None, hints: TypeHints | None) -> Any:
        types: dict[str, pa.DataType] = {}
        for name, hint in (hints or {}).items():
            types[name] = pa.float64() if hint == "number" else pa.large_string()
        convert = pacsv.ConvertOptions(
            column_types=types,
            include_columns=list(columns) if columns is not None else None,
            strings_can_be_null=True,
        )
        try:
            return pacsv.open_csv(self._path, convert_options=convert)
        except ARROW_ERRORS as e:
            raise self._error(e) from None

    def _error(self, e: Exception) -> DataError:
        m = re.search(r"In CSV column #(\d+)", str(e))
        names = getattr(self, "_names", ())
        if m and int(m.group(1)) < len(names):
            col = names[int(m.group(1))]
            return DataError(
                f"CSV file {self._path.name!r}: column {col!r} holds a value that does not "
                "fit the column's type (for example text in a numeric column); fix the "
                "file, or declare the column in the schema (numeric columns are read as "
                "numbers, text-level categorical columns as text)"
            )
        return DataError(
            f"CSV file {self._path.name!r} cannot be read as CSV ({type(e).__name__}); "
            "check that it is a comma-separated file with one header row"
        )

    def iter_batches(
        self, columns: Sequence[str], batch_size: int, hints: TypeHints | None = None
    ) -> Iterator[pa.RecordBatch]:
        reader = self._open(columns, hints)
        try:
            while True:
                try:
                    rb = reader.read_next_batch()
                except StopIteration:
                    return
                except ARROW_ERRORS as e:
                    raise self._error(e) from None
                yield rb.select(list(columns))
        finally:
            reader.close()

    def n_rows(self) -> int:
        return sum(rb.num_rows for rb in self.iter_batches(self._names[:1], 1 << 16))


class ParquetSource(Source):
    """A Parquet file or directory, streamed fragment by fragment, row group by row group."""

    kind = "Parquet data"

    def __init__(self, path: Path) -> None:
        self._path = path
        try:
            self._dataset = pads.dataset(path, format="parquet")
        except ARROW_ERRORS as e:
            raise DataError(
                f"Parquet data {path.name!r} cannot be opened ({type(e).__name__}); check "
                "that it is a Parquet file or a directory of Parquet files"
            ) from None
        if path.is_dir() and not self._dataset.files:
            raise DataError(f"directory {path.name!r} holds no Parquet files")
        self._names = check_names(self._dataset.schema.names)

    def describe(self) -> str:
        return f"Parquet data {self._path.name!r}"

    @property
    def column_names(self) -> tuple[str, ...]:
        return self._names

    def iter_batches(
        self, columns: Sequence[str], batch_size: int, hints: TypeHints | None = None
    ) -> Iterator[pa.RecordBatch]:
        fragments = sorted(self._dataset.get_fragments(), key=lambda f: f.path)
        for frag in fragments:
            try:
                yield from frag.to_batches(
                    schema=self._dataset.schema,
                    columns=list(columns),
                    batch_size=batch_size,
                    batch_readahead=2,
                    fragment_readahead=1,
                )
            except ARROW_ERRORS as e:
                raise DataError(
                    f"Parquet data {self._path.name!r} could not be read "
                    f"({type(e).__name__}); the file may be damaged or its files may "
                    "disagree on column types"
                ) from None

    def n_rows(self) -> int:
        return int(self._dataset.count_rows())

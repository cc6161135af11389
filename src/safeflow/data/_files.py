"""File sources: CSV read block by block, Parquet file by file and row group by row group."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.parquet as pq

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
    """A Parquet file or directory, streamed file by file, row group by row group.

    Files are found with :mod:`pyarrow.dataset` (sorted by path, hidden and ``_``-files
    ignored) and each is read with :meth:`pyarrow.parquet.ParquetFile.iter_batches` with
    ``pre_buffer=False``: pre-buffering (the dataset scanner's default) reads ahead of a
    slow consumer and can end up holding the whole file in memory.
    """

    kind = "Parquet data"

    def __init__(self, path: Path) -> None:
        self._path = path
        try:
            dataset = pads.dataset(path, format="parquet")
        except ARROW_ERRORS as e:
            raise self._error("cannot be opened", e) from None
        self._files = sorted(dataset.files)
        if not self._files:
            raise DataError(f"directory {path.name!r} holds no Parquet files")
        self._dataset = dataset
        self._names = check_names(dataset.schema.names)

    def _error(self, what: str, e: Exception) -> DataError:
        return DataError(
            f"Parquet data {self._path.name!r} {what} ({type(e).__name__}); check that it "
            "is a Parquet file or a directory of Parquet files with the same columns"
        )

    def describe(self) -> str:
        return f"Parquet data {self._path.name!r}"

    @property
    def column_names(self) -> tuple[str, ...]:
        return self._names

    def iter_batches(
        self, columns: Sequence[str], batch_size: int, hints: TypeHints | None = None
    ) -> Iterator[pa.RecordBatch]:
        for file in self._files:
            try:
                pf = pq.ParquetFile(file, pre_buffer=False)
            except ARROW_ERRORS as e:
                raise self._error("cannot be opened", e) from None
            try:
                lacking = [c for c in columns if c not in pf.schema_arrow.names]
                if lacking:
                    raise DataError(
                        f"Parquet file {Path(file).name!r} in {self._path.name!r} lacks the "
                        f"columns {lacking}; every file of a dataset must hold them"
                    )
                yield from pf.iter_batches(batch_size=batch_size, columns=list(columns))
            except ARROW_ERRORS as e:
                raise self._error("could not be read", e) from None
            finally:
                pf.close()

    def n_rows(self) -> int:
        return int(self._dataset.count_rows())

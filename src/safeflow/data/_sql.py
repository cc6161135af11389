"""The DuckDB source: a query streamed through its Arrow reader (internal)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from safeflow.data._base import ARROW_ERRORS, Source, TypeHints, check_names
from safeflow.errors import DataError

if TYPE_CHECKING:
    from safeflow.data.sources import SQL


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SQLSource(Source):
    """A DuckDB query, streamed with ``relation.to_arrow_reader(batch_size)``."""

    kind = "SQL query"

    def __init__(self, sql: SQL) -> None:
        self._sql = sql
        self._query = sql.query.strip().rstrip(";").strip()
        if sql.database is not None and not Path(sql.database).exists():
            raise DataError(f"DuckDB database {Path(sql.database).name!r} does not exist")
        con = self._connect()
        try:
            self._names = check_names(self._relation(con, self._query).columns)
        finally:
            con.close()

    def describe(self) -> str:
        return "SQL query"

    @property
    def column_names(self) -> tuple[str, ...]:
        return self._names

    def _connect(self) -> Any:
        import duckdb

        try:
            config = {str(k): v for k, v in (self._sql.config or {}).items()}
            if self._sql.database is None:
                con = duckdb.connect(":memory:", config=config)
            else:
                con = duckdb.connect(str(self._sql.database), read_only=True, config=config)
            for name, obj in (self._sql.tables or {}).items():
                con.register(str(name), obj)
        except duckdb.Error as e:
            raise DataError(f"DuckDB could not open the data: {e}") from None
        return con

    def _relation(self, con: Any, query: str) -> Any:
        import duckdb

        try:
            return con.sql(query)
        except (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException) as e:
            # These describe the query's structure, not its rows.
            raise DataError(f"the SQL query is not valid: {e}") from None
        except duckdb.Error as e:
            raise DataError(f"the SQL query failed ({type(e).__name__})") from None

    def _stream(self, query: str, batch_size: int) -> Iterator[pa.RecordBatch]:
        import duckdb

        con = self._connect()
        try:
            reader = self._relation(con, query).to_arrow_reader(batch_size)
            while True:
                try:
                    yield reader.read_next_batch()
                except StopIteration:
                    return
        except (duckdb.Error, *ARROW_ERRORS) as e:
            raise DataError(
                f"the SQL query failed while streaming ({type(e).__name__}); check the "
                "column types in the query"
            ) from None
        finally:
            con.close()

    def iter_batches(
        self, columns: Sequence[str], batch_size: int, hints: TypeHints | None = None
    ) -> Iterator[pa.RecordBatch]:
        cols = ", ".join(_quote(c) for c in columns)
        yield from self._stream(f"SELECT {cols} FROM ({self._query}) AS _sf_q", batch_size)

    def n_rows(self) -> int:
        query = f"SELECT count(*) AS n FROM ({self._query}) AS _sf_q"
        (rb,) = list(self._stream(query, 16))
        return int(rb.column(0)[0].as_py())

"""The source interface every site data reader implements (internal)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import pyarrow as pa

from safeflow.errors import DataError

# Library errors whose messages may quote a cell: always replaced, never shown.
ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError)
# A type hint per column, for readers that parse text (CSV): "number" or "text".
TypeHints = Mapping[str, str]


class Source:
    """A readable site data source (internal base class)."""

    kind: str = "source"

    @property
    def column_names(self) -> tuple[str, ...]:
        raise NotImplementedError

    def iter_batches(
        self, columns: Sequence[str], batch_size: int, hints: TypeHints | None = None
    ) -> Iterator[pa.RecordBatch]:
        """Yield record batches holding ``columns`` (at most about ``batch_size`` rows)."""
        raise NotImplementedError

    def n_rows(self) -> int:
        """Count the rows, from metadata where the format keeps it."""
        raise NotImplementedError

    def describe(self) -> str:
        """A short description for reprs (never any data)."""
        return self.kind


def check_names(names: Sequence[object]) -> tuple[str, ...]:
    out = tuple(str(n) for n in names)
    dup = sorted({n for n in out if out.count(n) > 1})
    if dup:
        raise DataError(f"site data has repeated column names {dup}; rename them first")
    return out


__all__ = ["ARROW_ERRORS", "Source", "TypeHints", "check_names"]

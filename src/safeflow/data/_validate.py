"""Turn one Arrow column of one batch into a validated numpy array (internal).

Numeric columns become float64; categorical and binary columns become int64 codes in the
order of the column's categories. Missing values, values out of bounds and unknown levels
follow the column's policy. Messages name the column, the rule and the fix, and never a
value or a count of rows (STYLE.md item 11); declared bounds and levels are public and may
be named, inferred ones are not.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from safeflow.data.schema import Column
from safeflow.errors import DataError, MissingValueError, OutOfBoundsError

_TEXT = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)
_NUMBER = (
    pa.types.is_integer,
    pa.types.is_floating,
    pa.types.is_boolean,
    pa.types.is_decimal,
)


def _family(t: pa.DataType) -> str:
    if pa.types.is_null(t):
        return "null"  # an all-null slice: fits any kind, and is all missing
    if any(f(t) for f in _TEXT):
        return "text"
    if any(f(t) for f in _NUMBER):
        return "number"
    if pa.types.is_temporal(t):
        return "temporal"
    return "other"


def normalise(arr: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, str]:
    """Decode dictionaries and unify string types; return the array and its family."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    family = _family(arr.type)
    if family == "text" and not pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.large_string())
    return arr, family


def _wrong_type(col: Column, family: str, what: str) -> DataError:
    if family == "temporal":
        return DataError(
            f"column {col.name!r} holds dates or times; convert them to numbers (for example "
            "days since a reference date) before the analysis"
        )
    if family == "other":
        return DataError(
            f"column {col.name!r} holds values of a type safeflow cannot read as {what}; "
            "convert the column to numbers or text first"
        )
    if what == "numbers":
        return DataError(
            f"column {col.name!r} is declared numeric but holds text; convert it to numbers "
            "before the analysis, or declare kind='categorical' with its levels"
        )
    held = "text" if family == "text" else "numbers"
    cats = "text" if held == "numbers" else "numbers"
    return DataError(
        f"column {col.name!r} holds {held} but its declared categories are {cats}; "
        "declare the categories as the values the data holds, or recode the data"
    )


def _missing(col: Column, missing: np.ndarray, counts: dict[str, int]) -> np.ndarray | None:
    """Apply on_missing; return the rows to drop (or None)."""
    if not missing.any():
        return None
    if col.on_missing == "error":
        raise MissingValueError(
            f"column {col.name!r} has missing values (NaN or null) and its schema says "
            "on_missing='error'; declare on_missing='drop' or impute before running the "
            "analysis"
        )
    key = f"{col.name}:missing"
    counts[key] = counts.get(key, 0) + int(missing.sum())
    return missing


def _drop_or_raise(
    col: Column, bad: np.ndarray, counts: dict[str, int], message: str
) -> np.ndarray | None:
    if not bad.any():
        return None
    if col.on_out_of_bounds == "error":
        raise OutOfBoundsError(message)
    key = f"{col.name}:out_of_bounds"
    counts[key] = counts.get(key, 0) + int(bad.sum())
    return bad


def numeric(
    col: Column, arr: pa.Array, counts: dict[str, int], *, public: bool
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Validate a numeric column; return float64 values and the masks of rows to drop."""
    arr, family = normalise(arr)
    if family not in ("number", "null"):
        raise _wrong_type(col, family, "numbers")
    values = pc.cast(arr, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
    drops = [_missing(col, np.isnan(values), counts)]
    if col.bounds is None:
        lo, hi = -np.inf, np.inf
        bad = np.isinf(values)
        message = (
            f"column {col.name!r} holds infinite values; declare bounds=(lo, hi) with "
            "on_out_of_bounds='clip' or 'drop', or fix the data"
        )
    else:
        lo, hi = col.bounds
        bad = (values < lo) | (values > hi)
        where = f"declared bounds [{lo:g}, {hi:g}]" if public else "bounds"
        message = (
            f"column {col.name!r} has values outside its {where}; declare "
            "on_out_of_bounds='clip' or 'drop', widen the bounds, or fix the data"
        )
    if col.on_out_of_bounds == "clip" and bad.any():
        key = f"{col.name}:clipped"
        counts[key] = counts.get(key, 0) + int(bad.sum())
        values = np.clip(values, lo, hi)
    else:
        drops.append(_drop_or_raise(col, bad, counts, message))
    return values, [d for d in drops if d is not None]


def categorical(
    col: Column, arr: pa.Array, counts: dict[str, int], *, public: bool
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Validate a categorical or binary column; return int64 codes and rows to drop."""
    cats = col.categories
    assert cats is not None  # Column guarantees levels for categorical and binary
    arr, family = normalise(arr)
    text_levels = isinstance(cats[0], str)
    if family == "null":
        arr = arr.cast(pa.large_string() if text_levels else pa.float64())
        family = "text" if text_levels else "number"
    if family == "text" and text_levels:
        value_set = pa.array(cats, pa.large_string())
    elif family == "number" and not text_levels:
        arr = pc.cast(arr, pa.float64(), safe=False)
        value_set = pa.array([float(c) for c in cats], pa.float64())
    else:
        raise _wrong_type(col, family, "levels")
    missing = pc.is_null(arr, nan_is_null=True).to_numpy(zero_copy_only=False)
    drops = [_missing(col, missing, counts)]
    idx = pc.index_in(arr, value_set=value_set)
    unknown = ~idx.is_valid().to_numpy(zero_copy_only=False) & ~missing
    levels = f"declared categories {cats!r}" if public else "categories"
    message = (
        f"column {col.name!r} has a level that is not among its {levels}; add the level "
        "to the categories, declare on_out_of_bounds='drop', or recode the data"
    )
    drops.append(_drop_or_raise(col, unknown, counts, message))
    codes = idx.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, [d for d in drops if d is not None]


def convert(
    col: Column, arr: pa.Array, counts: dict[str, int], *, public: bool
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Validate one column of one batch according to its kind."""
    fn = numeric if col.kind == "numeric" else categorical
    return fn(col, arr, counts, public=public)

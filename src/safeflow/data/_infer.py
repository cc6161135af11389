"""Schema inference in one streamed pass over the source (internal; see Schema.infer)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from safeflow.data._base import Source
from safeflow.data._validate import normalise
from safeflow.data.schema import Column

_BATCH = 65_536
# id, mrn, ssn, bsn, nhs_number, patient_id, record.id, "subject id", PatientID, ...
_ID_NAME = re.compile(
    r"^(id|mrn|ssn|bsn|nhs[_ .-]?(number|no)?|patient|patient[_ .-]?(no|nr|number))$"
    r"|[_ .-]id$|mrn",
    re.IGNORECASE,
)
_CAMEL_ID = re.compile(r"[a-z](ID|Id)$")


def looks_like_identifier(name: str) -> bool:
    """True for names like ``id``, ``patient_id``, ``PatientID`` or ``mrn``.

    Examples
    --------
    >>> from safeflow.data._infer import looks_like_identifier
    >>> [looks_like_identifier(n) for n in ("patient_id", "PatientID", "MRN", "covid", "age")]
    [True, True, True, False, False]
    """
    return bool(_ID_NAME.search(name) or _CAMEL_ID.search(name))


@dataclass
class _Stats:
    """What one pass learns about one column."""

    family: str | None = None  # "number", "bool", "text", or "mixed"/"temporal"/"other"
    lo: float = np.inf
    hi: float = -np.inf
    integral: bool = True
    levels: set[object] | None = field(default_factory=set)  # None once above the cap

    def add_family(self, family: str) -> None:
        if self.family is None:
            self.family = family
        elif self.family != family:
            bool_number = {self.family, family} == {"bool", "number"}
            self.family = "number" if bool_number else "mixed"

    def add_levels(self, values: list[object], cap: int) -> None:
        if self.levels is not None:
            self.levels.update(values)
            if len(self.levels) > cap:
                self.levels = None


def _update(st: _Stats, arr: pa.Array, cap: int) -> None:
    arr, family = normalise(arr)
    if pa.types.is_null(arr.type) or arr.null_count == len(arr):
        return
    if family == "number":
        family = "bool" if pa.types.is_boolean(arr.type) else "number"
    st.add_family(family)
    if family == "text":
        st.add_levels(pc.unique(arr.drop_null()).to_pylist(), cap)
    elif family in ("number", "bool"):
        v = pc.cast(arr, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
        v = v[np.isfinite(v)]
        if v.size == 0:
            return
        st.lo, st.hi = min(st.lo, float(v.min())), max(st.hi, float(v.max()))
        if st.integral and not np.all(np.mod(v, 1.0) == 0):
            st.integral = False
            st.levels = None
        st.add_levels(np.unique(v).tolist(), cap)


def _column(name: str, st: _Stats) -> Column | None:
    if st.family == "bool":
        return Column(name, kind="binary", categories=(False, True))
    if st.family == "text" and st.levels is not None:
        cats = tuple(sorted(str(x) for x in st.levels))
        return Column(name, kind="binary" if len(cats) == 2 else "categorical", categories=cats)
    if st.family == "number" and st.lo <= st.hi:
        if st.integral and st.levels is not None:
            ints = tuple(sorted(int(x) for x in st.levels))  # type: ignore[call-overload]
            kind = "binary" if len(ints) == 2 else "categorical"
            return Column(name, kind=kind, categories=ints)
        return Column(name, bounds=(st.lo, st.hi))
    return None


def infer_columns(source: Source, *, max_levels: int) -> tuple[list[Column], list[str]]:
    """Infer one Column per usable data column; also return the names left out."""
    names = source.column_names
    ids = [n for n in names if looks_like_identifier(n)]
    scan = [n for n in names if n not in ids]
    stats = {n: _Stats() for n in scan}
    if scan:
        for rb in source.iter_batches(scan, _BATCH):
            for name, arr in zip(scan, rb.columns, strict=True):
                _update(stats[name], arr, max_levels)
    columns: list[Column] = []
    left_out: list[str] = []
    for name in names:
        if name in ids:
            columns.append(Column(name, role="identifier", classes=("pi",)))
            continue
        col = _column(name, stats[name])
        if col is None:
            left_out.append(name)
        else:
            columns.append(col)
    return columns, left_out

"""Public structure of a Cox fit: the covariate design, the strata and the time grid.

Everything here follows from the public schema and the analysis parameters only, so every
party derives the same design, strata and grid (see :mod:`safeflow.analyses.cox`).

Examples
--------
>>> from safeflow.data import Column, Schema
>>> s = Schema([Column("age", bounds=(20, 80)),
...             Column("arm", kind="categorical", categories=("a", "b", "c"))])
>>> d = Design(s, ["age", "arm"])
>>> d.names, d.center.tolist(), d.half.tolist()
(['age', 'arm[T.b]', 'arm[T.c]'], [50.0, 0.5, 0.5], [30.0, 0.5, 0.5])
>>> TimeGrid.regular(0, 10, 5, "schema").bin(np.array([0.0, 4.9, 5.0, 12.0]))[0].tolist()
[0, 0, 1, 2]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from safeflow.analyses._base import check_columns, levels
from safeflow.analyses.survival_grid import MAX_GRID_POINTS, check_grid
from safeflow.data import Schema
from safeflow.errors import InvalidParameter, ProtocolError

SITE = "site"
_TOL = 1e-9  # fraction of a resolution step tolerated below a grid point


class Design:
    """Covariate columns -> standardised design ``z = (x - c) / h`` (public constants).

    Numeric columns with declared bounds: midpoint and half-range; without: 0 and 1
    (``known`` is False); categorical and binary columns: one indicator per level but the
    first, named ``column[T.level]``, with ``c = h = 1/2`` (so ``z = ±1``).
    """

    def __init__(self, schema: Schema, covariates: Sequence[str]) -> None:
        self.cols = check_columns(schema, list(covariates), what="covariate")
        names: list[str] = []
        c: list[float] = []
        h: list[float] = []
        self.bounded = True
        known: list[bool] = []
        for col in self.cols:
            if col.kind == "numeric":
                b = schema.public_bounds(col.name)
                names.append(col.name)
                known.append(b is not None)
                if b is None:
                    self.bounded = False
                    c.append(0.0)
                    h.append(1.0)
                else:
                    c.append((b[0] + b[1]) / 2)
                    h.append((b[1] - b[0]) / 2 if b[1] > b[0] else 1.0)
                continue
            levs = levels(col)
            if len(levs) < 2:
                raise InvalidParameter(
                    f"covariate {col.name!r} has a single declared level; it cannot be a "
                    "covariate (drop it)"
                )
            names += [f"{col.name}[T.{lev}]" for lev in levs[1:]]
            known += [True] * (len(levs) - 1)
            c += [0.5] * (len(levs) - 1)
            h += [0.5] * (len(levs) - 1)
        self.names, self.center, self.half = names, np.array(c), np.array(h)
        self.known, self.p = np.array(known, dtype=bool), len(names)

    def step_scale(self, sd: np.ndarray) -> np.ndarray:
        """How far each covariate moves the linear predictor per unit of its coefficient:
        its declared range (1 for an indicator), or 4 pooled SDs when undeclared."""
        return np.where(self.known, 2 * self.half, 4 * sd)

    def z(self, batch: Any) -> np.ndarray:
        parts = []
        for col in self.cols:
            x = np.asarray(batch[col.name])
            if col.kind == "numeric":
                parts.append(x.astype(np.float64).reshape(-1, 1))
            else:
                k = len(col.categories or ())
                parts.append((x.reshape(-1, 1) == np.arange(1, k)).astype(np.float64))
        x = np.hstack(parts) if parts else np.zeros((len(batch), 0))
        return (x - self.center) / self.half


class Strata:
    """``strata`` -> a stratum code per row (mixed radix over the columns' levels)."""

    def __init__(self, schema: Schema, strata: Sequence[str]) -> None:
        self.by_site = SITE in strata
        self.cols = check_columns(
            schema,
            [s for s in strata if s != SITE],
            kinds=("categorical", "binary"),
            what="strata column",
        )
        labels = [""]
        for col in self.cols:
            labels = [
                f"{a}, {col.name}={lev}" if a else f"{col.name}={lev}"
                for a in labels
                for lev in levels(col)
            ]
        self.labels, self.size = labels, len(labels)

    def codes(self, batch: Any, n: int) -> np.ndarray:
        code = np.zeros(n, dtype=np.int64)
        for col in self.cols:
            code = code * len(col.categories or ()) + np.asarray(batch[col.name], dtype=np.int64)
        return code


class TimeGrid:
    """The public time grid and the binning rule (see the module docstring)."""

    def __init__(self, points: np.ndarray, source: str, step: float | None) -> None:
        self.points, self.source, self.step = points, source, step
        if points.size > MAX_GRID_POINTS:
            raise InvalidParameter(
                f"the time grid would have more than {MAX_GRID_POINTS} points; declare a "
                "coarser resolution or pass a coarser time_grid="
            )

    @classmethod
    def regular(cls, start: float, end: float, step: float, source: str) -> TimeGrid:
        k = math.floor((end - start) / step + _TOL) + 1
        if k > MAX_GRID_POINTS:
            raise InvalidParameter(
                f"the time grid would have {k} points (more than {MAX_GRID_POINTS}); declare "
                "a coarser resolution or pass a coarser time_grid="
            )
        return cls(start + step * np.arange(max(k, 1)), source, step)

    def bin(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grid index of each duration (clipped to the grid) and a mask of those before it."""
        if self.step is not None:
            raw = np.floor((t - self.points[0]) / self.step + _TOL)
            before = raw < 0
            idx = np.clip(raw, 0, self.points.size - 1).astype(np.int64)
        else:
            idx = np.searchsorted(self.points, t, side="right") - 1
            before = idx < 0
            idx = np.clip(idx, 0, self.points.size - 1)
        return idx, before

    def facts(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source,
            "points": int(self.points.size),
            "start": float(self.points[0]),
            "end": float(self.points[-1]),
            "step": self.step,
        }
        if self.source == "site maxima":
            out["revealed"] = "each site's largest duration, to customs only (set-up round)"
        return out


def check_name(value: Any, what: str) -> str:
    """A single column name (typed error otherwise)."""
    if not isinstance(value, str) or not value:
        raise InvalidParameter(f"{what} must be a column name (a string); got {value!r}")
    return value


def check_names(value: Any, what: str) -> list[str]:
    """One column name or a non-empty list of distinct names (typed error otherwise)."""
    if isinstance(value, str):
        value = [value]
    if (
        not isinstance(value, Sequence)
        or not value
        or not all(isinstance(v, str) and v for v in value)
    ):
        raise InvalidParameter(
            f"{what} must be a column name or a non-empty list of column "
            f"names, e.g. ['age', 'sex']; got {value!r}"
        )
    if len(set(value)) != len(value):
        raise InvalidParameter(f"{what} name a column more than once: {list(value)}")
    return list(value)


def hexes(v: np.ndarray) -> list[str]:
    """Coefficients as exact hex strings for the JSON round request.

    Examples
    --------
    >>> hexes(np.array([0.5])), unhex(["0x1.0000000000000p-1"], 1).tolist()
    (['0x1.0000000000000p-1'], [0.5])
    """
    return [float(x).hex() for x in v]


def unhex(v: Any, p: int) -> np.ndarray:
    """Inverse of :func:`hexes` (typed error when malformed)."""
    if not isinstance(v, list) or len(v) != p or not all(isinstance(s, str) for s in v):
        raise ProtocolError("malformed cox request: the coefficients do not match the model")
    try:
        return np.array([float.fromhex(s) for s in v])
    except ValueError:
        raise ProtocolError("malformed cox request: coefficients are not hex floats") from None


__all__ = [
    "MAX_GRID_POINTS",
    "SITE",
    "Design",
    "Strata",
    "TimeGrid",
    "check_grid",
    "check_name",
    "check_names",
    "hexes",
    "unhex",
]

"""The public time grid of the survival analyses, and how durations are binned to it.

With ``time_grid=None`` the grid comes from the public schema: the duration column's
declared ``bounds=(lo, hi)`` and ``resolution=r`` give the points ``lo, lo + r, ..., hi``
(labels rounded to 15 significant digits, so ``0.1 * 3`` is labelled ``0.3``). Otherwise
the caller passes increasing grid points.

A duration ``t`` is binned to the largest grid point ``<= t``; on a schema grid this is
computed from the step (``floor((t - lo) / r + 1e-9)``), so values on the declared
resolution bin exactly despite floating point. Durations after the last point go to the
last point; durations before the first point get index -1 (the analyses refuse them).

Examples
--------
>>> check_grid([0, 30, 60])
[0.0, 30.0, 60.0]
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from safeflow.data import Schema
from safeflow.errors import InvalidParameter

#: the largest public time grid (a daily grid over 250 years fits)
MAX_GRID_POINTS = 100_000
_TOL = 1e-9  # fraction of a resolution step tolerated below a grid point


def check_grid(time_grid: Any) -> list[float] | None:
    """Validate a caller's time grid: finite, strictly increasing numbers (or None).

    Examples
    --------
    >>> check_grid([0, 30, 60])
    [0.0, 30.0, 60.0]
    """
    if time_grid is None:
        return None
    msg = (
        "time_grid must be a list of finite, strictly increasing numbers, e.g. "
        f"[0, 30, 60, 90]; got {time_grid!r}"
    )
    if isinstance(time_grid, str | bytes) or not isinstance(time_grid, Sequence | np.ndarray):
        raise InvalidParameter(msg)
    try:
        grid = [float(g) for g in time_grid]
    except (TypeError, ValueError) as e:
        raise InvalidParameter(msg) from e
    if (
        not grid
        or not all(math.isfinite(g) for g in grid)
        or any(b <= a for a, b in itertools.pairwise(grid))
    ):
        raise InvalidParameter(msg)
    if len(grid) > MAX_GRID_POINTS:
        raise InvalidParameter(
            f"time_grid has more than {MAX_GRID_POINTS} points; use a coarser grid"
        )
    return grid


class TimeGrid:
    """The public grid of one run and its binning rule.

    Examples
    --------
    >>> from safeflow.data import Column, Schema
    >>> s = Schema([Column("t", role="time", bounds=(0, 0.5), resolution=0.1)])
    >>> g = TimeGrid(s, "t", None)
    >>> g.points.tolist(), g.facts()
    ([0.0, 0.1, 0.2, 0.3, 0.4, 0.5], {'points': 6, 'from': 'schema'})
    >>> g.bin(np.array([0.3, 0.35, 0.5])).tolist()
    [3, 3, 5]
    >>> TimeGrid(s, "t", [1.0, 2.0]).bin(np.array([0.5, 1.0, 1.5, 9.0])).tolist()
    [-1, 0, 0, 1]
    """

    def __init__(self, schema: Schema, duration: str, caller: list[float] | None) -> None:
        if caller is not None:
            self.points, self.source = np.asarray(caller, dtype=np.float64), "caller"
            self._step: tuple[float, float] | None = None
            return
        col, bounds = schema.column(duration), schema.public_bounds(duration)
        if bounds is None or col.resolution is None:
            raise InvalidParameter(
                f"duration column {duration!r} has no public time grid: declare its bounds "
                f"and resolution in the schema (e.g. sf.Column({duration!r}, role='time', "
                "bounds=(0, 1100), resolution=1)) or pass time_grid= (a list of increasing "
                "grid points, e.g. [0, 30, 60, 90])"
            )
        lo, hi, r = bounds[0], bounds[1], col.resolution
        k = math.floor((hi - lo) / r + _TOL) + 1
        if k > MAX_GRID_POINTS:
            raise InvalidParameter(
                f"the schema grid of {duration!r} ({k} points from bounds and resolution) is "
                f"larger than {MAX_GRID_POINTS}; declare a coarser resolution or pass "
                "time_grid="
            )
        # labels normalised to 15 significant digits (0.1 * 3 -> 0.3); binning uses indices
        self.points = np.array([float(f"{lo + r * j:.15g}") for j in range(k)])
        self.source, self._step = "schema", (lo, r)

    def bin(self, t: np.ndarray) -> np.ndarray:
        """Grid index of each duration; -1 for durations before the first point."""
        k = self.points.size
        if self._step is None:
            j = np.searchsorted(self.points, t, side="right") - 1
        else:
            lo, r = self._step
            j = np.floor((t - lo) / r + _TOL).astype(np.int64)
            j = np.where(j < 0, -1, j)
        return np.minimum(j, k - 1)

    def facts(self) -> dict[str, Any]:
        """The grid's disclosure facts: its size and where it came from."""
        return {"points": int(self.points.size), "from": self.source}


__all__ = ["MAX_GRID_POINTS", "TimeGrid", "check_grid"]

"""Kaplan-Meier curves and log-rank tests from secure sums of counts on a public time grid.

**The time grid is public.** With ``time_grid=None`` it comes from the public schema: the
duration column's declared ``bounds=(lo, hi)`` and ``resolution=r`` give the points
``lo, lo + r, ..., hi``. Otherwise the caller passes increasing grid points.

**Binning.** Each site maps every duration ``t`` to the grid point ``g_j``: the largest
grid point ``<= t`` (on a schema grid, up to 1e-9 of a resolution step, so that values on
the declared resolution bin exactly despite floating point). Durations beyond the last
point go to the last point; a duration before the first point of a caller's grid stops
the run with :class:`~safeflow.errors.InvalidParameter` (start the grid at 0 or at the
column's lower bound). Ties therefore follow lifelines: all events and censorings binned
to ``g_j`` happen "at" ``g_j``, events before censorings (a row censored at ``g_j`` is
still at risk at ``g_j``). When durations lie on the grid (e.g. whole days with
``resolution=1``) binning changes nothing and the results equal lifelines on the pooled
raw rows; on a coarser grid they equal lifelines on the binned durations.

**What is summed.** Per group and grid point, each site contributes the number of events
``d_j`` and of removals ``c_j`` (events plus censorings), plus the number of durations
before the grid and of dropped rows: counts only, via
:func:`~safeflow.analyses._base.count_spec`, in one round. Customs computes the number at
risk as the group's total minus the removals before ``g_j``.

**Disclosure facts** (``Done.facts``): ``sdc.min_event_cell`` is the smallest non-zero
event count of any group at any grid time, ``sdc.min_at_risk_cell`` the smallest at-risk
count of a group at a time at which that group has events, ``sdc.min_cell`` the smaller of
the two, ``sdc.n`` the number of rows and ``sdc.has_zero`` whether some group has no rows
or no events; ``time_grid`` gives the grid's size and source (``"schema"`` or
``"caller"``), ``rows_dropped`` the rows the schema's policies dropped at the sites.

**The event column** is binary (or categorical with two levels): its *second* category is
the event, whatever the categories are (``(0, 1)``, ``(False, True)``,
``("censored", "dead")``).

Examples
--------
>>> import pandas as pd, safeflow as sf
>>> s = sf.Schema([sf.Column("t", classes=("public",), role="time", bounds=(0, 10), resolution=1),
...                sf.Column("e", classes=("public",), role="event", categories=(0, 1))])
>>> a = pd.DataFrame({"t": [1.0, 2, 3], "e": [1, 0, 1]})
>>> b = pd.DataFrame({"t": [2.0, 4], "e": [1, 1]})
>>> fed = sf.Federation.local([sf.Site("a", a, "CN", schema=s), sf.Site("b", b, "NL", schema=s)],
...                          destination="NL", purpose="scientific-research")
>>> km = kaplan_meier(fed, "t", "e", protocol="plain").value
>>> km.survival["survival"].round(4).tolist()
[1.0, 0.8, 0.6, 0.3, 0.0]
>>> km.median
3.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from safeflow.analyses._base import (
    Analysis,
    Done,
    check_columns,
    count_spec,
    group_codes,
    levels,
    register,
    with_dp,
)
from safeflow.analyses.survival_grid import TimeGrid, check_grid
from safeflow.analyses.survival_results import (
    SURVIVAL_COLUMNS,
    KaplanMeierResult,
    LogRankResult,
    chi2_sf,
    km_curve,
    logrank_stat,
)
from safeflow.data import Schema, SiteData
from safeflow.errors import ConvergenceError, InvalidParameter
from safeflow.protocols.dp import DPStatistics, NoiseGroup
from safeflow.statspec import StatLayout

if TYPE_CHECKING:  # the federation imports the analyses package: import it lazily
    from safeflow.dp.spec import DP
    from safeflow.federation import Federation
    from safeflow.release import Release


class _Survival(Analysis):
    """Shared layout and local step: counts of events and removals per group and grid time."""

    kind = "survival"
    _group_key = "by"

    def columns(self) -> list[str]:
        g = self.params.get(self._group_key)
        return [self.params["duration"], self.params["event"]] + ([g] if g else [])

    def _groups(self, schema: Schema) -> list[str]:
        p = self.params
        check_columns(schema, [p["duration"]], kinds=("numeric",), what="duration column")
        (ev,) = check_columns(
            schema, [p["event"]], kinds=("binary", "categorical"), what="event column"
        )
        if len(levels(ev)) != 2:
            raise InvalidParameter(
                f"event column {p['event']!r} must have exactly two categories "
                "(censored, event); declare kind='binary' with categories=(0, 1)"
            )
        g = p.get(self._group_key)
        if g is None:
            return ["all"]
        check_columns(schema, [g], kinds=("categorical", "binary"), what="group column")
        if g in (p["duration"], p["event"]):
            raise InvalidParameter(
                f"the group column must differ from the duration and event columns; got {g!r}"
            )
        return levels(schema.column(g))

    def _grid(self, schema: Schema) -> TimeGrid:
        return TimeGrid(schema, self.params["duration"], check_grid(self.params.get("time_grid")))

    def layout(self, schema: Schema, ctx: Mapping[str, Any]) -> StatLayout:
        g, k = len(self._groups(schema)), self._grid(schema).points.size
        return StatLayout(
            (
                count_spec("events", (g, k), ctx),
                count_spec("removed", (g, k), ctx),
                count_spec("before_grid", (g,), ctx),
                count_spec("dropped", (1,), ctx),
            )
        )

    def dp_statistics(self, schema: Schema, ctx: Mapping[str, Any]) -> DPStatistics:
        """Under DP each row adds 1 to one cell of (events, censored, before_grid, dropped).

        Sites send censorings (``removed - events``) so that one row touches one cell;
        customs rebuilds ``removed`` after the noise. The grid must start at or below the
        duration's declared lower bound, so that no row lies before it (a public fact).
        """
        self._groups(schema)
        b = schema.public_bounds(self.params["duration"])
        if b is None or float(self._grid(schema).points[0]) > float(b[0]):
            raise InvalidParameter(
                "under differential privacy the time grid must start at or below the "
                "duration's declared lower bound (declare bounds=(lo, hi) on the duration "
                "column and start time_grid at lo)")

        def encode(stats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            stats["removed"] = stats["removed"] - stats["events"]
            return stats

        def decode(totals: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            totals["removed"] = totals["removed"] + totals["events"]
            totals["before_grid"] = np.zeros_like(totals["before_grid"])
            return totals

        return DPStatistics((NoiseGroup(("events", "removed", "before_grid", "dropped"), "count",
                                        Fraction(1)),), encode=encode, decode=decode)

    def local(self, data: SiteData, ctx: Mapping[str, Any]) -> dict[str, np.ndarray]:
        schema = ctx["public_schema"]
        g, grid = len(self._groups(schema)), self._grid(schema)
        k = grid.points.size
        events, removed, before = np.zeros(g * k), np.zeros(g * k), np.zeros(g)
        for batch in data.batches(self.columns()):
            grp = group_codes(batch, self.params.get(self._group_key), len(batch))
            j = grid.bin(np.asarray(batch[self.params["duration"]], dtype=np.float64))
            is_event = np.asarray(batch[self.params["event"]], dtype=np.int64) == 1
            on = j >= 0
            before += np.bincount(grp[~on], minlength=g)
            cell = grp[on] * k + j[on]
            removed += np.bincount(cell, minlength=g * k)
            events += np.bincount(cell, weights=is_event[on].astype(np.float64), minlength=g * k)
        return {
            "events": events.reshape(g, k),
            "removed": removed.reshape(g, k),
            "before_grid": before,
            "dropped": np.array([sum(data.drop_counts.values())]),
        }

    def _tables(
        self, totals: Mapping[str, np.ndarray], schema: Schema
    ) -> tuple[list[str], TimeGrid, np.ndarray, np.ndarray, np.ndarray]:
        """Group labels, grid, events (g, k), removals (g, k), at risk (g, k)."""
        groups, grid = self._groups(schema), self._grid(schema)
        if int(np.sum(totals["before_grid"])) > 0:
            raise InvalidParameter(
                "some durations lie before the first point of time_grid; start the grid at "
                "or below the smallest possible duration (e.g. at 0 or the column's lower "
                "bound)"
            )
        d = np.asarray(totals["events"], dtype=np.int64)
        c = np.asarray(totals["removed"], dtype=np.int64)
        if int(c.sum()) == 0:
            raise ConvergenceError(
                "no rows to analyse: every site has zero rows (after the schema's drops); "
                "check the sites' data and the schema's on_missing policies"
            )
        n = c.sum(1, keepdims=True) - np.cumsum(c, 1) + c  # at risk: total - removed before
        return groups, grid, d, c, n

    def _facts(
        self,
        totals: Mapping[str, np.ndarray],
        grid: TimeGrid,
        d: np.ndarray,
        c: np.ndarray,
        n: np.ndarray,
    ) -> dict[str, Any]:
        ev = d > 0
        return {
            "sdc": {
                "min_event_cell": int(d[ev].min()) if ev.any() else 0,
                "min_at_risk_cell": int(n[ev].min()) if ev.any() else 0,
                "min_cell": int(min(d[ev].min(), n[ev].min())) if ev.any() else 0,
                "n": int(c.sum()),
                "has_zero": bool((c.sum(1) == 0).any() or (d.sum(1) == 0).any()),
            },
            "time_grid": grid.facts(),
            "rows_dropped": int(totals["dropped"][0]),
        }


@register
class KaplanMeier(_Survival):
    """Kaplan-Meier estimate per group (see the module docstring)."""

    name = "kaplan_meier"

    def combine(
        self, totals: Mapping[str, np.ndarray], schema: Schema, ctx: Mapping[str, Any]
    ) -> Done:
        groups, grid, d, c, n = self._tables(totals, schema)
        alpha, by = float(self.params.get("alpha", 0.05)), self.params.get("by")
        frames: dict[str, pd.DataFrame] = {}
        for gi, label in enumerate(groups):
            total = int(c[gi].sum())
            if total == 0:
                continue
            rows = np.flatnonzero(c[gi] > 0)
            if grid.points[0] <= 0 and rows[0] != 0:
                rows = np.r_[0, rows]  # the curve starts at the first grid point
            times, at_risk = grid.points[rows], n[gi, rows]
            events, removed = d[gi, rows], c[gi, rows]
            if grid.points[0] > 0:  # ... or at time 0, as lifelines' timeline does
                times, at_risk = np.r_[0.0, times], np.r_[total, at_risk]
                events, removed = np.r_[0, events], np.r_[0, removed]
            surv, lo, hi, _ = km_curve(at_risk, events, alpha)
            frames[label] = pd.DataFrame(
                {
                    "survival": surv,
                    "ci_lower": lo,
                    "ci_upper": hi,
                    "at_risk": at_risk,
                    "events": events,
                    "censored": removed - events,
                },
                index=pd.Index(times, name="time"),
            )[SURVIVAL_COLUMNS]
        if by is None:
            table = frames["all"]
        else:
            empty = pd.DataFrame(
                columns=SURVIVAL_COLUMNS,
                index=pd.MultiIndex.from_arrays([[], []], names=["group", "time"]),
            )
            table = pd.concat(frames, names=["group", "time"]) if frames else empty
        value = KaplanMeierResult(
            self.params["duration"], self.params["event"], by, groups, table, alpha, grid.facts()
        )
        return Done(value, self._facts(totals, grid, d, c, n))


@register
class LogRank(_Survival):
    """Log-rank test across the levels of a group column (see the module docstring)."""

    name = "logrank"
    _group_key = "group"

    def combine(
        self, totals: Mapping[str, np.ndarray], schema: Schema, ctx: Mapping[str, Any]
    ) -> Done:
        groups, grid, d, c, n = self._tables(totals, schema)
        sizes = c.sum(1)
        keep = np.flatnonzero(sizes > 0)
        if keep.size < 2:
            raise ConvergenceError(
                f"the log-rank test needs at least two levels of {self.params['group']!r} "
                "with rows; fewer have any. Choose another group column or more sites"
            )
        times = np.flatnonzero(c[keep].sum(0) > 0)
        stat, expected = logrank_stat(c[np.ix_(keep, times)], d[np.ix_(keep, times)])
        df = int(keep.size - 1)
        exp_all = np.full(len(groups), np.nan)
        exp_all[keep] = expected
        table = pd.DataFrame(
            {"n": sizes, "observed": d.sum(1), "expected": exp_all},
            index=pd.Index(groups, name=self.params["group"]),
        )
        value = LogRankResult(
            self.params["duration"],
            self.params["event"],
            self.params["group"],
            stat,
            df,
            chi2_sf(stat, df),
            table,
            grid.facts(),
        )
        return Done(value, self._facts(totals, grid, d, c, n))


def _check_fed(fed: Any) -> Federation:
    from safeflow.federation import Federation

    if not isinstance(fed, Federation):
        raise InvalidParameter(
            f"the first argument must be an sf.Federation (e.g. sf.Federation.local([...])); "
            f"got {type(fed).__name__}"
        )
    return fed


def _check_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidParameter(f"{what} must be a column name (a string); got {value!r}")
    return value


def kaplan_meier(
    fed: Federation,
    duration: str,
    event: str,
    *,
    by: str | None = None,
    time_grid: Sequence[float] | None = None,
    protocol: str = "masking",
    alpha: float = 0.05,
    dp: DP | None = None,
    **options: Any,
) -> Release:
    """Kaplan-Meier survival curves with Greenwood bands, medians and numbers at risk.

    Parameters
    ----------
    fed : sf.Federation
    duration : str
        A numeric column: follow-up time.
    event : str
        A binary column whose second category marks the event (e.g. ``(0, 1)``).
    by : str, optional
        A categorical column: one curve per level.
    time_grid : list of float, optional
        Increasing public grid points. Default: from the duration column's declared
        ``bounds`` and ``resolution``. Durations are binned to the largest grid point at
        or below them (see :mod:`safeflow.analyses.survival`).
    protocol : {"masking", "he", "plain"}
    alpha : float
        The band is a ``1 - alpha`` log(-log) Greenwood interval (lifelines' default).

    Returns
    -------
    Release
        ``.value`` is a :class:`~safeflow.analyses.survival_results.KaplanMeierResult`
        (``.survival``, ``.median``, ``.summary``, ``.at_risk_table()``, ``.plot()``);
        ``.facts["output"]["sdc"]`` holds the smallest event and at-risk cells.

    Raises
    ------
    InvalidParameter
        No public grid (declare bounds and resolution, or pass ``time_grid``), a bad grid,
        wrong column kinds, ``alpha`` outside (0, 1).

    Examples
    --------
    >>> import pandas as pd, safeflow as sf
    >>> pub = ("public",)
    >>> s = sf.Schema([sf.Column("days", classes=pub, role="time", bounds=(0, 100), resolution=1),
    ...                sf.Column("dead", classes=pub, role="event", categories=(0, 1)),
    ...                sf.Column("arm", classes=pub, kind="categorical", categories=("a", "b"))])
    >>> df = pd.DataFrame({"days": [5.0, 8, 12, 20], "dead": [1, 0, 1, 1],
    ...                    "arm": ["a", "b", "a", "b"]})
    >>> fed = sf.Federation.local([sf.Site("x", df, "CN", schema=s),
    ...                           sf.Site("y", df, "NL", schema=s)],
    ...                          destination="NL", purpose="scientific-research")
    >>> km = kaplan_meier(fed, "days", "dead", by="arm", protocol="plain")
    >>> km.value.median.tolist()
    [5.0, 20.0]
    >>> km.value.at_risk_table([0, 10]).to_numpy().tolist()
    [[4, 2], [4, 2]]
    """
    if not (isinstance(alpha, int | float) and not isinstance(alpha, bool) and 0 < alpha < 1):
        raise InvalidParameter(f"alpha must be a number in (0, 1), e.g. 0.05; got {alpha!r}")
    params = {
        "duration": _check_name(duration, "duration"),
        "event": _check_name(event, "event"),
        "by": None if by is None else _check_name(by, "by"),
        "time_grid": check_grid(time_grid),
        "alpha": float(alpha),
    }
    return _check_fed(fed).run(KaplanMeier(with_dp(params, dp)), protocol=protocol, **options)


def logrank(
    fed: Federation,
    duration: str,
    event: str,
    group: str,
    *,
    time_grid: Sequence[float] | None = None,
    protocol: str = "masking",
    dp: DP | None = None,
    **options: Any,
) -> Release:
    """Log-rank test of equal survival across the levels of ``group``.

    Two levels give lifelines' ``logrank_test``, more give ``multivariate_logrank_test``
    (chi-square with one degree of freedom fewer than the levels that have rows). Levels
    with no rows are left out of the test (and listed in ``.table`` with n = 0).

    Parameters
    ----------
    fed : sf.Federation
    duration, event : str
        As in :func:`kaplan_meier`.
    group : str
        A categorical or binary column.
    time_grid : list of float, optional
        As in :func:`kaplan_meier`.
    protocol : {"masking", "he", "plain"}

    Returns
    -------
    Release
        ``.value`` is a :class:`~safeflow.analyses.survival_results.LogRankResult`
        (``.statistic``, ``.df``, ``.p_value``, ``.summary``, ``.table``).

    Raises
    ------
    ConvergenceError
        Fewer than two levels of ``group`` have rows.

    Examples
    --------
    >>> import pandas as pd, safeflow as sf
    >>> pub = ("public",)
    >>> s = sf.Schema([sf.Column("days", classes=pub, role="time", bounds=(0, 100), resolution=1),
    ...                sf.Column("dead", classes=pub, role="event", categories=(0, 1)),
    ...                sf.Column("arm", classes=pub, kind="categorical", categories=("a", "b"))])
    >>> df = pd.DataFrame({"days": [5.0, 8, 12, 20], "dead": [1, 0, 1, 1],
    ...                    "arm": ["a", "b", "a", "b"]})
    >>> fed = sf.Federation.local([sf.Site("x", df, "CN", schema=s),
    ...                           sf.Site("y", df, "NL", schema=s)],
    ...                          destination="NL", purpose="scientific-research")
    >>> lr = logrank(fed, "days", "dead", "arm", protocol="plain").value
    >>> lr.df, round(lr.statistic, 4), round(lr.p_value, 4)
    (1, 5.25, 0.0219)
    """
    params = {
        "duration": _check_name(duration, "duration"),
        "event": _check_name(event, "event"),
        "group": _check_name(group, "group"),
        "time_grid": check_grid(time_grid),
    }
    return _check_fed(fed).run(LogRank(with_dp(params, dp)), protocol=protocol, **options)


__all__ = [
    "KaplanMeier",
    "KaplanMeierResult",
    "LogRank",
    "LogRankResult",
    "kaplan_meier",
    "logrank",
]

"""Kaplan-Meier and log-rank results, and the math that turns count tables into them.

Everything here runs at customs on the secure totals: per group and per public grid time,
the number of events ``d`` and of removals ``c`` (events plus censorings). The number at
risk at grid time ``g_j`` is the group's row total minus the removals before ``g_j``.
The formulas are those of lifelines (``KaplanMeierFitter`` with its default log(-log)
Greenwood band, ``multivariate_logrank_test``), evaluated in the same order, so a run whose
durations lie on the grid reproduces lifelines on the pooled rows.

Examples
--------
>>> import numpy as np
>>> s, lo, hi, var = km_curve(np.array([4, 3, 1]), np.array([1, 1, 0]))
>>> s.round(12).tolist()
[0.75, 0.5, 0.5]
>>> round(chi2_sf(3.841458820694124, 1), 12)
0.05
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

SURVIVAL_COLUMNS = ["survival", "ci_lower", "ci_upper", "at_risk", "events", "censored"]


def km_curve(
    at_risk: np.ndarray, events: np.ndarray, alpha: float = 0.05
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Kaplan-Meier survival, log(-log) Greenwood band and Greenwood sum, as lifelines.

    ``S = exp(cumsum(log(n - d) - log(n)))``; ``var = cumsum(d / (n (n - d)))`` (0 where
    ``n == d``); the band is ``exp(-exp(log(-log S) ∓ z sqrt(var) / log S))`` with 1 where
    that is undefined (``S == 1``).

    Examples
    --------
    >>> s, lo, hi, _ = km_curve(np.array([2]), np.array([0]))
    >>> s.tolist(), lo.tolist(), hi.tolist()
    ([1.0], [1.0], [1.0])
    """
    n = np.asarray(at_risk, dtype=np.int64)
    d = np.asarray(events, dtype=np.int64)
    z = NormalDist().inv_cdf(1 - alpha / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        surv = np.exp(np.cumsum(np.log((n - d).astype(np.float64)) - np.log(n.astype(np.float64))))
        denom = (n * (n - d)).astype(np.float64)
        terms = np.where(denom > 0, d / np.where(denom > 0, denom, 1.0), 0.0)
        var = np.cumsum(terms)
        v = np.log(surv)
        spread = z * np.sqrt(var) / v
        lower = np.exp(-np.exp(np.log(-v) - spread))
        upper = np.exp(-np.exp(np.log(-v) + spread))
    return surv, np.nan_to_num(lower, nan=1.0), np.nan_to_num(upper, nan=1.0), var


def first_at_or_below(times: np.ndarray, surv: np.ndarray, q: float = 0.5) -> float:
    """The first time at which survival is ``<= q``; ``inf`` if it never gets there.

    Examples
    --------
    >>> first_at_or_below(np.array([0.0, 5.0, 9.0]), np.array([1.0, 0.5, 0.2]))
    5.0
    >>> first_at_or_below(np.array([0.0]), np.array([1.0]))
    inf
    """
    if surv.size == 0:
        return float("nan")
    if surv[-1] > q:
        return float("inf")
    return float(times[int(np.argmax(surv <= q))])


def logrank_stat(removed: np.ndarray, events: np.ndarray) -> tuple[float, np.ndarray]:
    """Log-rank chi-square statistic and expected events per group (lifelines' algebra).

    ``removed`` and ``events`` are ``(k, T)`` count tables over the times at which anything
    happened, for ``k >= 2`` groups that all have rows.

    Examples
    --------
    >>> u, e = logrank_stat(np.array([[1, 1], [1, 1]]), np.array([[1, 0], [0, 1]]))
    >>> round(u, 6), e.tolist()
    (0.0, [1.0, 1.0])
    """
    rm = np.asarray(removed, dtype=np.float64).T  # (T, k), as lifelines
    obs = np.asarray(events, dtype=np.float64).T
    n_ij = rm.sum(0) - np.vstack([np.zeros((1, rm.shape[1])), np.cumsum(rm, 0)[:-1]])
    d_i = obs.sum(1)
    n_i = rm.sum() - np.concatenate([[0.0], np.cumsum(rm.sum(1))[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        ev = (n_ij * (d_i / n_i)[:, None]).sum(0)
        ratio = (n_i - d_i) / (n_i - 1)
        ratio[~np.isfinite(ratio)] = 1.0
        factor = ratio * d_i / n_i**2
    z_j = obs.sum(0) - ev
    v_ = np.nan_to_num(np.hstack([n_ij, n_i[:, None]]) * np.sqrt(factor)[:, None], nan=0.0)
    v = -np.dot(v_.T, v_)
    ix = np.arange(rm.shape[1])
    v[ix, ix] = v[ix, ix] - v[-1, ix]
    v = v[:-1, :-1]
    u = z_j[:-1] @ np.linalg.pinv(v[:-1, :-1]) @ z_j[:-1]
    return float(u), ev


def chi2_sf(x: float, df: int) -> float:
    """Upper tail of the chi-square distribution with integer ``df`` (no SciPy needed).

    The regularised upper incomplete gamma ``Q(df/2, x/2)`` by its finite series: every
    term is positive, so the sum is accurate to a few ulps in either tail.

    Examples
    --------
    >>> chi2_sf(0.0, 3), chi2_sf(float("inf"), 2)
    (1.0, 0.0)
    """
    if df < 1:
        raise ValueError("df must be >= 1")
    if math.isnan(x):
        return float("nan")
    if x <= 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    h = x / 2.0
    lh = math.log(h)
    if df % 2 == 0:
        return math.fsum(math.exp(-h + i * lh - math.lgamma(i + 1)) for i in range(df // 2))
    tail = (math.exp(-h + (i - 0.5) * lh - math.lgamma(i + 0.5)) for i in range(1, df // 2 + 1))
    return math.fsum([math.erfc(math.sqrt(h)), *tail])


def _fmt(x: float) -> str:
    return "inf" if math.isinf(x) else ("NaN" if math.isnan(x) else f"{x:g}")


@dataclass(frozen=True, repr=False, eq=False)
class KaplanMeierResult:
    """A federated Kaplan-Meier estimate (one curve per group).

    Attributes
    ----------
    survival : DataFrame
        Indexed by ``time`` (by ``(group, time)`` with a grouping column), columns
        survival, ci_lower, ci_upper, at_risk, events, censored: lifelines'
        ``survival_function_``, ``confidence_interval_`` and ``event_table`` on the times
        at which something happened, starting with a row at time 0 (or the first grid
        point, if below 0). A group level with no rows has no rows here.
    median : float or Series
        Median survival time (lifelines' ``median_survival_time_``): the first time at
        which survival is <= 0.5, ``inf`` if it never drops that far, NaN for an empty
        group. A Series indexed by group when there is a grouping column.
    summary : DataFrame
        Per group: n, events, censored, median.
    groups : list of str
        Group labels (``["all"]`` without a grouping column).
    time_grid : dict
        ``{"points": number of grid points, "from": "schema" or "caller"}``.
    """

    duration: str
    event: str
    by: str | None
    groups: list[str]
    survival: pd.DataFrame
    alpha: float
    time_grid: dict[str, Any] = field(default_factory=dict)

    def _curve(self, group: str) -> pd.DataFrame:
        if self.by is None:
            return self.survival
        if group not in self.survival.index.get_level_values("group"):
            return self.survival.iloc[:0].droplevel("group")
        return self.survival.xs(group, level="group")

    @property
    def median(self) -> float | pd.Series:
        """Median survival time (see the class docstring)."""
        meds = {}
        for g in self.groups:
            c = self._curve(g)
            meds[g] = first_at_or_below(c.index.to_numpy(), c["survival"].to_numpy())
        if self.by is None:
            return meds["all"]
        return pd.Series(meds, name="median", dtype=np.float64).rename_axis(self.by)

    @property
    def summary(self) -> pd.DataFrame:
        """Per group: n (rows), events, censored, median."""
        recs = []
        for g in self.groups:
            c = self._curve(g)
            n = int(c["at_risk"].iloc[0]) if len(c) else 0
            recs.append(
                {
                    "n": n,
                    "events": int(c["events"].sum()),
                    "censored": int(c["censored"].sum()),
                    "median": first_at_or_below(c.index.to_numpy(), c["survival"].to_numpy()),
                }
            )
        return pd.DataFrame.from_records(recs, index=pd.Index(self.groups, name=self.by or "group"))

    def at_risk_table(self, times: Sequence[float]) -> pd.DataFrame:
        """Number at risk (binned duration >= t) at each of ``times``, per group.

        Returns a DataFrame with one row per group and one column per time (the layout of
        the table under a Kaplan-Meier plot).
        """
        ts = np.asarray([float(t) for t in times], dtype=np.float64)
        out = {}
        for g in self.groups:
            c = self._curve(g)
            if not len(c):
                out[g] = np.zeros(ts.size, dtype=np.int64)
                continue
            t = c.index.to_numpy(dtype=np.float64)
            removed = np.cumsum((c["events"] + c["censored"]).to_numpy())
            before = np.searchsorted(t, ts, side="left")  # rows strictly before each t
            gone = np.where(before > 0, removed[np.maximum(before - 1, 0)], 0)
            out[g] = int(c["at_risk"].iloc[0]) - gone
        return pd.DataFrame.from_dict(
            out, orient="index", columns=pd.Index(ts, name="time")
        ).rename_axis(self.by or "group")

    def plot(self, ax: Any = None, ci: bool = True, **kwargs: Any) -> Any:
        """Step plot of each group's curve with its confidence band; returns the Axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots()
        for g in self.groups:
            c = self._curve(g)
            if not len(c):
                continue
            t = c.index.to_numpy(dtype=np.float64)
            label = g if self.by is None else f"{self.by}={g}"
            (line,) = ax.step(t, c["survival"].to_numpy(), where="post", label=label, **kwargs)
            if ci:
                ax.fill_between(
                    t,
                    c["ci_lower"].to_numpy(),
                    c["ci_upper"].to_numpy(),
                    step="post",
                    alpha=0.25,
                    color=line.get_color(),
                    linewidth=0,
                )
        ax.set_xlabel(self.duration)
        ax.set_ylabel("survival probability")
        ax.set_ylim(0, 1.05)
        if self.by is not None:
            ax.legend(title=self.by)
        return ax

    def __repr__(self) -> str:
        s = self.summary
        med = ", ".join(f"{g}: {_fmt(m)}" for g, m in s["median"].items())
        by = f" by {self.by}" if self.by else ""
        return (
            f"<KaplanMeier {self.duration}~{self.event}{by}: {int(s['n'].sum())} rows, "
            f"{int(s['events'].sum())} events; median {med}; "
            f"{int(100 * (1 - self.alpha))}% log(-log) Greenwood band; time grid of "
            f"{self.time_grid.get('points')} points from {self.time_grid.get('from')}>"
        )


@dataclass(frozen=True, repr=False, eq=False)
class LogRankResult:
    """A federated log-rank test (lifelines' ``logrank_test`` / ``multivariate_logrank_test``).

    Attributes
    ----------
    statistic : float
        The chi-square test statistic.
    df : int
        Degrees of freedom: groups with rows minus one.
    p_value : float
        Upper chi-square tail at ``statistic``.
    table : DataFrame
        Per group: n, observed and expected events (groups without rows are left out of
        the test and listed with n = 0 and NaN expected).
    """

    duration: str
    event: str
    group: str
    statistic: float
    df: int
    p_value: float
    table: pd.DataFrame
    time_grid: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> pd.DataFrame:
        """One row: test_statistic, df, p, -log2(p) (like lifelines' summary)."""
        with np.errstate(divide="ignore"):
            nlog2 = float(-np.log2(self.p_value))
        return pd.DataFrame(
            {
                "test_statistic": [self.statistic],
                "df": [self.df],
                "p": [self.p_value],
                "-log2(p)": [nlog2],
            },
            index=pd.Index(["log-rank"], name="test"),
        )

    def __repr__(self) -> str:
        return (
            f"<LogRank {self.duration}~{self.event} by {self.group}: "
            f"chi2 = {self.statistic:.4g}, df = {self.df}, p = {self.p_value:.4g}; "
            f"time grid of {self.time_grid.get('points')} points from "
            f"{self.time_grid.get('from')}>"
        )


__all__ = ["KaplanMeierResult", "LogRankResult", "chi2_sf", "km_curve", "logrank_stat"]

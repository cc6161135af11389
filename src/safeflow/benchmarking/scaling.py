"""Scaling curves: cost of one logistic regression as rows, sites and covariates grow.

Each curve is one protocol (the pooled statsmodels fit, ``plain``, ``masking``, ``he``
BFV and CKKS) along one axis, the other two held at the profile's base point:

* **rows per site** (``10^3 ->``): the sites' local work grows with their rows; what
  crosses the border should not;
* **sites** (``2 -> 50``): masking's pairwise masks and Shamir shares grow with the pairs;
* **covariates** (``2 -> 50``): the gradient and Hessian carry ``p + p(p+1)/2`` values.

The estimand is ``sf.glm(..., family="binomial")`` on :func:`~safeflow.benchmarking.data.
synthetic` rows (seeded). A point measures wall time, bytes across borders, rounds and peak
memory (:mod:`~safeflow.benchmarking.measure`). A protocol's curve stops at the first point
slower than the profile's time cap, or before a point whose cost projected from the previous
one exceeds the time or memory cap; every stop is recorded with its reason.

:func:`fit_growth` fits ``log y = a + b log x`` by least squares (``numpy.linalg.lstsq``);
:func:`growth_words` states the slope ``b`` in words.

Examples
--------
>>> b, a = fit_growth([1e3, 1e4, 1e5], [0.1, 1.0, 10.0])
>>> round(b, 3)
1.0
>>> growth_words(b, "n")
'linear (∝ n^1.00)'
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import safeflow as sf
from safeflow.benchmarking.data import federation, synthetic
from safeflow.benchmarking.measure import measure
from safeflow.benchmarking.variants import POOLED, SECURE_SUMS, Variant
from safeflow.errors import ConvergenceError, SafeflowError

#: axis key -> (label, symbol)
AXES: dict[str, tuple[str, str]] = {
    "rows": ("rows per site", "n"),
    "sites": ("sites", "K"),
    "covariates": ("covariates", "p"),
}
#: CKKS's flooding noise stops Newton short of the default tol (1e-10); this one converges
CKKS_TOL = 1e-6


@dataclass
class Point:
    """One measured point of a curve (or the reason it was not measured)."""

    axis: str
    protocol: str
    x: int
    status: str = "ok"
    note: str = ""
    seconds: float | None = None
    bytes: int | None = None
    rounds: int | None = None
    peak_mib: float | None = None


@dataclass(frozen=True)
class Base:
    """The point every axis starts from: rows per site, sites, covariates."""

    rows: int
    sites: int
    covariates: int

    def at(self, axis: str, x: int) -> tuple[int, int, int]:
        """``(rows, sites, covariates)`` with ``axis`` set to ``x``.

        Examples
        --------
        >>> Base(1000, 3, 5).at("sites", 10)
        (1000, 10, 5)
        """
        vals = {"rows": self.rows, "sites": self.sites, "covariates": self.covariates}
        vals[axis] = x
        return vals["rows"], vals["sites"], vals["covariates"]


def _pooled_fit(parts: Sequence[Any], names: Sequence[str]) -> Any:
    import pandas as pd
    import statsmodels.api as sm

    df = pd.concat(parts, ignore_index=True)
    X = np.column_stack([np.ones(len(df)), df[list(names)].to_numpy(float)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sm.GLM(df["y"].to_numpy(float), X, family=sm.families.Binomial()).fit(
            tol=1e-10)


def run_point(axis: str, variant: Variant, base: Base, x: int, seed: int = 2024) -> Point:
    """Measure one protocol at one point of one axis.

    Examples
    --------
    >>> p = run_point("rows", POOLED, Base(200, 2, 2), 200)
    >>> p.status, p.rounds, p.bytes
    ('ok', 1, 9600)
    """
    rows, sites, p = base.at(axis, x)
    parts, schema = synthetic(rows, sites, p, seed=seed)
    names = [f"x{j + 1}" for j in range(p)]
    point = Point(axis, variant.label, x)
    if variant.protocol is None:
        m = measure(lambda: _pooled_fit(parts, names))
        point.seconds, point.peak_mib, point.rounds = m.seconds, m.peak_mib, 1
        point.bytes = 8 * rows * sites * (p + 1)  # the rows exported, float64
        point.note = "statsmodels GLM on the pooled rows; bytes = the rows' float64 export"
        return point
    fed = federation(parts, schema)
    opts: dict[str, Any] = {"protocol": variant.protocol, **dict(variant.params)}
    tols: tuple[float | None, ...] = (None,)
    if variant.params.get("scheme") == "ckks":
        tols = (CKKS_TOL, 1e-5, 1e-4)
    for tol in tols:
        if tol is not None:
            opts["tol"] = tol
        try:
            m = measure(lambda: sf.glm(fed, "y", names, family="binomial", **opts))
            break
        except ConvergenceError as e:
            if tol == tols[-1]:
                point.status, point.note = "failed", f"{type(e).__name__}: {e}"
                return point
        except SafeflowError as e:
            point.status, point.note = "failed", f"{type(e).__name__}: {e}"
            return point
    if tols[0] is not None and opts["tol"] != CKKS_TOL:
        point.note = f"converged at tol={opts['tol']:g}"
    rel = m.value
    point.seconds, point.peak_mib = m.seconds, m.peak_mib
    point.bytes, point.rounds = rel.bytes_cross_border, rel.rounds
    return point


#: the protocols cheap enough for the largest row counts
CHEAP = ("pooled", "plain", "masking")


def projected_stop(prev: Point | None, x: int, cap_s: float, cap_mib: float) -> str:
    """Why the point at ``x`` is not run, projected from the last measured point, or ``""``.

    Cost is projected linearly in ``x`` (a lower bound for anything that grows faster):
    a point whose projected time exceeds ``cap_s`` or projected peak memory exceeds
    ``cap_mib`` is not run (the machine is shared; a pooled statsmodels fit of
    3 x 10^7 rows needs more than 22 GB).

    Examples
    --------
    >>> prev = Point("rows", "pooled", 10**6, seconds=24.0, peak_mib=2000.0)
    >>> projected_stop(prev, 10**7, cap_s=120, cap_mib=6000)[:40]
    'curve stopped: projected from 1,000,000 '
    >>> projected_stop(prev, 2 * 10**6, cap_s=120, cap_mib=6000)
    ''
    """
    if prev is None or prev.seconds is None or prev.x <= 0:
        return ""
    ratio = x / prev.x
    t, mem = prev.seconds * ratio, (prev.peak_mib or 0.0) * ratio
    why = []
    if t > cap_s:
        why.append(f"time >= {t:.0f} s (cap {cap_s:.0f} s)")
    if mem > cap_mib:
        why.append(f"peak memory >= {mem / 1024:.1f} GiB (cap {cap_mib / 1024:.1f} GiB)")
    if not why:
        return ""
    return f"curve stopped: projected from {prev.x:,} (linear in the axis): " + ", ".join(why)


def sweep(axis: str, values: Sequence[int], base: Base, cap_s: float,
          variants: Sequence[Variant] = (POOLED, *SECURE_SUMS),
          log: Callable[[str], None] = lambda s: None,
          cheap_only: Sequence[int] = (), cap_mib: float = 6144.0) -> list[Point]:
    """Every protocol along ``axis``; a curve stops after its first point slower than ``cap_s``.

    Before each point the cost is projected from the last one (:func:`projected_stop`); a
    point projected over the time or memory cap is not run, and the curve stops there.
    Points in ``cheap_only`` are run for the :data:`CHEAP` protocols only (the others get a
    "not run" point saying so).

    Examples
    --------
    >>> pts = sweep("rows", [100, 200], Base(100, 2, 2), cap_s=60, variants=[POOLED])
    >>> [(p.x, p.status) for p in pts]
    [(100, 'ok'), (200, 'ok')]
    """
    out: list[Point] = []
    for v in variants:
        stopped = ""
        prev: Point | None = None
        for x in sorted({*values, *cheap_only}):
            if x in cheap_only and x not in values and v.label not in CHEAP:
                out.append(Point(axis, v.label, x, "not run",
                                 f"{x:,} is run for the cheap protocols ({', '.join(CHEAP)}) "
                                 "only, to keep the full profile within its time budget"))
                continue
            stopped = stopped or projected_stop(prev, x, cap_s, cap_mib)
            if stopped:
                out.append(Point(axis, v.label, x, "stopped", stopped))
                log(f"  {axis}={x:>8,} {v.label:8s} {stopped}")
                continue
            pt = run_point(axis, v, base, x)
            out.append(pt)
            log(f"  {axis}={x:>8,} {v.label:8s} {pt.status} "
                f"{'' if pt.seconds is None else f'{pt.seconds:.2f} s'} "
                f"{'' if pt.peak_mib is None else f'{pt.peak_mib:.0f} MiB'} {pt.note[:60]}")
            prev = pt
            if pt.seconds is not None and pt.seconds > cap_s:
                stopped = (f"curve stopped: the point at {x:,} took {pt.seconds:.0f} s, over "
                           f"the {cap_s:.0f} s cap")
            elif pt.status == "failed":
                stopped = f"curve stopped: the point at {x:,} failed"
    return out


def fit_growth(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Least-squares ``log10 y = a + b log10 x``; returns ``(b, a)`` (NaN with < 2 points).

    Examples
    --------
    >>> fit_growth([1, 10], [5, 5])
    (0.0, 0.69897)
    """
    xs, ys = np.asarray(x, float), np.asarray(y, float)
    ok = (xs > 0) & (ys > 0) & np.isfinite(xs) & np.isfinite(ys)
    if int(ok.sum()) < 2 or np.unique(xs[ok]).size < 2:
        return float("nan"), float("nan")
    A = np.column_stack([np.log10(xs[ok]), np.ones(int(ok.sum()))])
    (b, a), *_ = np.linalg.lstsq(A, np.log10(ys[ok]), rcond=None)
    return round(float(b), 6) + 0.0, round(float(a), 6) + 0.0


def growth_words(slope: float, symbol: str) -> str:
    """A slope in words: flat, sub-linear, linear, super-linear, quadratic.

    Examples
    --------
    >>> growth_words(0.02, "K"), growth_words(1.93, "K")
    ('flat (∝ K^0.02)', 'quadratic (∝ K^1.93)')
    """
    if math.isnan(slope):
        return "not fitted (fewer than two points)"
    law = f"∝ {symbol}^{slope:.2f}"
    if abs(slope) < 0.15:
        word = "flat"
    elif slope < 0:
        word = "falling"
    elif slope < 0.85:
        word = "sub-linear"
    elif slope <= 1.15:
        word = "linear"
    elif slope < 1.8:
        word = "super-linear"
    elif slope <= 2.2:
        word = "quadratic"
    else:
        word = "faster than quadratic"
    return f"{word} ({law})"


@dataclass(frozen=True)
class Growth:
    """Fitted growth of one protocol's time and bytes along one axis."""

    axis: str
    protocol: str
    points: int
    time_slope: float
    bytes_slope: float
    last_time_slope: float
    bytes_per_round_slope: float = float("nan")
    last_bytes_per_round_slope: float = float("nan")

    def words(self) -> str:
        """E.g. ``"masking: time linear (∝ K^1.02); bytes per round quadratic (∝ K^1.95)"``,
        with the last segment's laws in brackets where they differ in kind."""
        sym = AXES[self.axis][1]
        per = self.bytes_slope if math.isnan(self.bytes_per_round_slope) \
            else self.bytes_per_round_slope
        t, b = growth_words(self.time_slope, sym), growth_words(per, sym)
        lt = growth_words(self.last_time_slope, sym)
        lb = growth_words(self.last_bytes_per_round_slope, sym)
        if self.points > 2 and lt.split(" (")[0] != t.split(" (")[0]:
            t += f" [largest points: {lt}]"
        if self.points > 2 and not math.isnan(self.last_bytes_per_round_slope) \
                and lb.split(" (")[0] != b.split(" (")[0]:
            b += f" [largest points: {lb}]"
        return f"{self.protocol}: time {t}; bytes per round {b}"


def growth(points: Sequence[Point]) -> list[Growth]:
    """Fit every (axis, protocol) curve of ``points``.

    ``last_time_slope`` is the slope between the last two measured points: where fixed
    costs dominate the small points, it is the better guide to the asymptotic growth.
    ``bytes_per_round_slope`` fits bytes ÷ rounds, which removes the noise of Newton's
    iteration count (it varies by a round or two between data sets).

    Examples
    --------
    >>> pts = [Point("rows", "plain", 10, seconds=1.0, bytes=5),
    ...        Point("rows", "plain", 100, seconds=10.0, bytes=5)]
    >>> growth(pts)[0].words()
    'plain: time linear (∝ n^1.00); bytes per round flat (∝ n^0.00)'
    """
    out = []
    keys = dict.fromkeys((p.axis, p.protocol) for p in points)
    for axis, proto in keys:
        pts = [p for p in points if p.axis == axis and p.protocol == proto
               and p.status == "ok" and p.seconds is not None]
        xs = [p.x for p in pts]
        t, _ = fit_growth(xs, [p.seconds or 0.0 for p in pts])
        b, _ = fit_growth(xs, [float(p.bytes or 0) for p in pts])
        last, _ = fit_growth(xs[-2:], [p.seconds or 0.0 for p in pts[-2:]])
        bpr = [float(p.bytes or 0) / max(p.rounds or 1, 1) for p in pts]
        per, _ = fit_growth(xs, bpr)
        last_b, _ = fit_growth(xs[-2:], bpr[-2:])
        out.append(Growth(axis, proto, len(pts), t, b, last, per, last_b))
    return out


__all__ = ["AXES", "CHEAP", "CKKS_TOL", "Base", "Growth", "Point", "fit_growth", "growth",
           "growth_words", "projected_stop", "run_point", "sweep"]

"""Differential privacy on top of any secure-sum protocol: the site half and customs half.

DP is not a fourth way of moving sums: it composes with ``plain``, ``masking`` and ``he``.
An analysis that supports DP declares, for the statistics of its (single) round, how one
row can move them (:class:`DPStatistics`): groups of statistic vectors noised together,
each with its kind (count or real) and the L1 norm one row can change the concatenated
vector by, plus the statistics that are not released at all under DP (the dominance
maxima of Table 1, say). Sensitivities come from the public schema (bounds, levels,
``rows_per_patient``), never from the data.

:class:`DPPlan` turns that into OpenDP mechanisms (:mod:`safeflow.dp.mechanisms`): the
release's ε (and δ) is split evenly over the groups (basic composition, exact Fractions),
and each group's sensitivity is its row L1 times the rows one unit of privacy may
contribute (1 for ``unit="row"``, ``Schema.rows_per_patient`` for ``unit="patient"``).

Two modes (``sf.DP(mode=...)``):

* **central** (what safeflow builds): each site sends its exact statistics under the
  secure-sum protocol; customs, the one place where the exact aggregate exists, adds the
  noise *once* (:meth:`DPPlan.noise`), so the error is that of a single curator. Threat
  model: customs sees the noiseless total, the analyst and everyone downstream see only
  the noised release. Distributed noise (shares added by the sites inside the secure sum
  so that nobody sees the noiseless total) is not implemented.
* **local**: every site noises its own statistics with the same calibrated mechanisms
  before they enter the secure sum (:meth:`DPPlan.site_prepare`); customs adds nothing
  and sees only noised sums. The error of the total grows like √K for K sites. Count
  statistics travel as signed reals in this mode (:meth:`DPPlan.layout`), since a noised
  count may be negative.

In both modes the sites zero the statistics DP does not release, check their data against
the declared ``rows_per_patient`` (when the schema has an identifier column), and debit
their own budget ledgers before any statistic leaves (see :mod:`safeflow.federation`).
Noised counts are post-processed to be ≥ 0 (post-processing never weakens the guarantee).

Examples
--------
>>> from fractions import Fraction
>>> from safeflow.dp import DP
>>> stats = DPStatistics((NoiseGroup(("counts",), "count", Fraction(1)),))
>>> plan = DPPlan(DP(1, unit="row"), stats, contributions=1)
>>> plan.mechanisms[0].scale
1.0
>>> sorted(plan.facts())[:4]
['alpha', 'contributions', 'delta', 'epsilon']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import numpy as np

from safeflow.data import Schema, SiteData
from safeflow.dp.mechanisms import Mechanism, Sensitivity, contributions_for
from safeflow.dp.spec import DP, fraction_str
from safeflow.errors import DataError, InvalidParameter
from safeflow.statspec import StatLayout, StatSpec

#: bound margin (in noise standard deviations) of locally noised counts carried as reals
_LOCAL_SIGMAS = 64.0


@dataclass(frozen=True)
class NoiseGroup:
    """Statistic vectors noised together by one mechanism.

    Parameters
    ----------
    names : tuple of str
        Statistics of the round's layout, concatenated in this order.
    kind : {"count", "real"}
        Integer counts (discrete samplers) or real sums.
    row_l1 : Fraction
        The most one row can change the concatenated vector, in L1 norm (from public
        bounds: 1 for a histogram where a row adds 1 to one cell, ``max |x|`` for sums of
        a bounded column, ...).
    """

    names: tuple[str, ...]
    kind: Literal["count", "real"]
    row_l1: Fraction

    def __post_init__(self) -> None:
        if not self.names or self.kind not in ("count", "real"):
            raise InvalidParameter("a noise group needs statistic names and kind count|real")
        if not (isinstance(self.row_l1, Fraction) and self.row_l1 > 0):
            raise InvalidParameter(
                f"noise group {self.names}: the per-row L1 bound must be a positive Fraction "
                f"derived from declared bounds; got {self.row_l1!r}")


@dataclass(frozen=True)
class DPStatistics:
    """What an analysis releases under DP: noise groups, and statistics never released.

    ``encode`` runs at the site before noise (e.g. turning ``removed`` into ``censored``
    so one row touches one cell); ``decode`` runs after noise, before ``combine``
    (post-processing, e.g. rebuilding ``removed`` and clipping).
    """

    groups: tuple[NoiseGroup, ...]
    drop: tuple[str, ...] = ()
    encode: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None
    decode: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None
    #: like ``decode``, also given each statistic's noise standard deviation in the total
    decode_noisy: Callable[[dict[str, np.ndarray], Mapping[str, float]],
                           dict[str, np.ndarray]] | None = None


def dp_from_params(params: Mapping[str, Any]) -> DP | None:
    """The :class:`~safeflow.dp.DP` of an analysis request (``params["dp"]``), if any.

    Examples
    --------
    >>> dp_from_params({"dp": DP(0.5).to_facts()}).epsilon
    Fraction(1, 2)
    >>> dp_from_params({}) is None
    True
    """
    d = params.get("dp")
    if d is None:
        return None
    if not isinstance(d, Mapping):
        raise InvalidParameter("dp must be an sf.DP(...) object")
    mech = d.get("mechanism")
    return DP(d.get("epsilon"), d.get("delta", 0), unit=d.get("unit", "patient"),
              mode=d.get("mode", "central"), mechanism=None if mech in (None, "auto") else mech,
              alpha=d.get("alpha", 0.05))


class DPPlan:
    """Calibrated mechanisms for one DP release of one analysis round.

    Parameters
    ----------
    dp : DP
        The release's parameters.
    stats : DPStatistics
        The analysis's declaration.
    contributions : int
        Rows one unit of privacy may contribute.
    sites : int
        Sites in the federation (local mode: each adds its own noise to the total).
    """

    def __init__(self, dp: DP, stats: DPStatistics, *, contributions: int,
                 sites: int = 1) -> None:
        if not stats.groups:
            raise InvalidParameter("a DP release needs at least one noised statistic")
        self.dp, self.stats, self.contributions = dp, stats, int(contributions)
        self.sites = max(int(sites), 1)
        shares = dp.split(len(stats.groups))
        central = [DP(s.epsilon, s.delta, unit=s.unit, mode="central",
                      mechanism=s.mechanism, alpha=s.alpha) for s in shares]
        self.mechanisms = tuple(
            Mechanism(g.kind, _sensitivity(g, self.contributions), share)
            for g, share in zip(stats.groups, central, strict=True))

    @classmethod
    def for_analysis(cls, analysis: Any, schema: Schema, ctx: Mapping[str, Any]) -> DPPlan | None:
        """The plan of an analysis request carrying ``params["dp"]`` (None without DP)."""
        dp = dp_from_params(analysis.params)
        if dp is None:
            return None
        declare = getattr(analysis, "dp_statistics", None)
        if declare is None:
            raise InvalidParameter(
                f"{analysis.name} does not support differential privacy; DP is available for "
                "describe, histogram, crosstab, kaplan_meier, logrank and glm(family="
                "'gaussian')")
        m = contributions_for(dp, schema.unit, schema.rows_per_patient)
        return cls(dp, declare(schema, ctx), contributions=m, sites=len(ctx.get("sites", ())))

    def layout(self, layout: StatLayout) -> StatLayout:
        """The round layout as it travels: local mode carries counts as signed reals."""
        if self.dp.mode != "local":
            return layout
        margin = {n: _LOCAL_SIGMAS * float(np.sqrt(m.variance)) + 1.0
                  for g, m in zip(self.stats.groups, self.mechanisms, strict=True)
                  for n in g.names}
        specs = []
        for s in layout.specs:
            if s.kind == "count" and s.name in margin:
                specs.append(StatSpec(s.name, s.shape, "real", s.bound + margin[s.name],
                                      precision="double"))
            elif s.kind == "real" and s.name in margin and s.bound is not None:
                specs.append(StatSpec(s.name, s.shape, "real", s.bound + margin[s.name],
                                      precision=s.precision))
            else:
                specs.append(s)
        return StatLayout(tuple(specs))

    def site_prepare(self, stats: Mapping[str, np.ndarray], data: SiteData,
                     schema: Schema) -> dict[str, np.ndarray]:
        """At the site: check contributions, zero what DP never releases, noise if local."""
        check_contributions(data, schema, self.contributions)
        out = {k: np.array(v, dtype=np.float64) for k, v in stats.items()}
        for name in self.stats.drop:
            out[name] = np.zeros_like(out[name])
        if self.stats.encode is not None:
            out = self.stats.encode(out)
        if self.dp.mode == "local":
            out = self._apply(out)
        return out

    def noise(self, totals: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """At customs: noise the exact totals once (central mode), then post-process."""
        out = {k: np.array(v, dtype=np.float64) for k, v in totals.items()}
        if self.dp.mode == "central":
            out = self._apply(out)
        return self.finish(out)

    def finish(self, totals: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Post-processing: counts ≥ 0 (integers), then the analysis's ``decode``."""
        for g in self.stats.groups:
            if g.kind == "count":
                for n in g.names:
                    totals[n] = np.maximum(np.rint(totals[n]), 0.0)
        if self.stats.decode is not None:
            totals = self.stats.decode(totals)
        if self.stats.decode_noisy is not None:
            totals = self.stats.decode_noisy(totals, self.noise_std())
        return totals

    def noise_std(self) -> dict[str, float]:
        """Standard deviation of the noise in each element of each statistic's total.

        Examples
        --------
        >>> from safeflow.dp import DP
        >>> g = DPStatistics((NoiseGroup(("n",), "count", Fraction(1)),))
        >>> round(DPPlan(DP(1, unit="row"), g, contributions=1).noise_std()["n"], 3)
        1.357
        """
        k = self.sites if self.dp.mode == "local" else 1
        return {n: float(np.sqrt(k * m.variance))
                for g, m in zip(self.stats.groups, self.mechanisms, strict=True)
                for n in g.names}

    def _apply(self, stats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for g, mech in zip(self.stats.groups, self.mechanisms, strict=True):
            flat = np.concatenate([np.ravel(stats[n]) for n in g.names])
            if g.kind == "count":
                flat = np.rint(flat)
            noisy = mech.release(flat).astype(np.float64)
            pos = 0
            for n in g.names:
                size = int(np.size(stats[n]))
                stats[n] = noisy[pos:pos + size].reshape(np.shape(stats[n]))
                pos += size
        return stats

    def facts(self) -> dict[str, Any]:
        """``output.dp`` facts: ε, δ, unit, mode, α and each group's mechanism and accuracy.

        Examples
        --------
        >>> from safeflow.dp import DP
        >>> g = DPStatistics((NoiseGroup(("n",), "count", Fraction(1)),))
        >>> f = DPPlan(DP(1, unit="row"), g, contributions=1).facts()
        >>> f["epsilon"], f["statistics"][0]["mechanism"]
        ('1/1', 'discrete_laplace')
        """
        rows = []
        for g, m in zip(self.stats.groups, self.mechanisms, strict=True):
            d = m.describe()
            rows.append({"statistic": "+".join(g.names), "kind": g.kind,
                         "mechanism": d["mechanism"], "epsilon": d["epsilon"],
                         "delta": d["delta"], "scale": d["scale"], "std": d["std"],
                         "sensitivity_l1": d["sensitivity"]["l1"],
                         "accuracy": d["accuracy"]})
        return {"epsilon": fraction_str(self.dp.epsilon), "delta": fraction_str(self.dp.delta),
                "unit": self.dp.unit, "mode": self.dp.mode, "alpha": self.dp.alpha,
                "contributions": self.contributions, "statistics": rows,
                "withheld": list(self.stats.drop)}

    def accuracy_text(self) -> str:
        """One line per noise group, for a release's summary."""
        pct = f"{100 * (1 - self.dp.alpha):g}%"
        lines = [f"DP ({self.dp.mode} mode): ε={self.dp.epsilon} δ={self.dp.delta}, unit of "
                 f"privacy: {self.dp.unit} (≤ {self.contributions} row(s) each); {pct} of "
                 "each noised value lies within ± the half-width below"]
        for g, m in zip(self.stats.groups, self.mechanisms, strict=True):
            lines.append(f"  {'+'.join(g.names)}: {m.name}, scale {m.scale:.4g}, ε={m.epsilon}, "
                         f"± {m.accuracy():.4g}")
        return "\n".join(lines)


def _sensitivity(group: NoiseGroup, contributions: int) -> Sensitivity:
    l1 = group.row_l1 * contributions
    return Sensitivity(l1, l1, contributions)


def check_contributions(data: SiteData, schema: Schema, limit: int) -> None:
    """At a site: refuse when a patient has more rows than the schema declares.

    Only possible when the schema has an identifier column; without one, every row is
    taken to be a different patient (``rows_per_patient`` is then the declaration).

    Raises
    ------
    DataError
        Naming the declared bound and how to fix it (never the patient).
    """
    if schema.unit != "patient":
        return
    most = data.max_rows_per_identifier()
    if most is not None and most > limit:
        raise DataError(
            f"a patient has more rows than the schema's rows_per_patient ({limit}); the DP "
            "sensitivity would be wrong. Declare sf.Schema(..., rows_per_patient=k) with the "
            "true bound, or aggregate to one row per patient")


def bound_of(schema: Schema, column: str, power: int = 1) -> Fraction:
    """Public ``max |x|^power`` of a numeric column (exact), or a typed refusal.

    Examples
    --------
    >>> from safeflow.data import Column, Schema
    >>> bound_of(Schema([Column("age", bounds=(18, 100))]), "age", 2)
    Fraction(10000, 1)
    """
    b = schema.public_bounds(column)
    if b is None:
        raise InvalidParameter(
            f"column {column!r} has no declared public bounds; differential privacy derives "
            "its noise from them: declare sf.Column(..., bounds=(lo, hi))")
    m = max(abs(Fraction(b[0])), abs(Fraction(b[1])))
    return max(m**power, Fraction(1, 10**12))


def half_range(schema: Schema, column: str) -> tuple[Fraction, Fraction]:
    """Half-range and middle of a numeric column's declared bounds (exact).

    Examples
    --------
    >>> from safeflow.data import Column, Schema
    >>> half_range(Schema([Column("age", bounds=(18, 100))]), "age")
    (Fraction(41, 1), Fraction(59, 1))
    """
    bound_of(schema, column)  # typed refusal without bounds
    lo, hi = (Fraction(v) for v in schema.public_bounds(column))  # type: ignore[union-attr]
    return max((hi - lo) / 2, Fraction(1, 10**12)), (hi + lo) / 2


__all__ = ["DPPlan", "DPStatistics", "NoiseGroup", "bound_of", "check_contributions",
           "dp_from_params", "half_range"]

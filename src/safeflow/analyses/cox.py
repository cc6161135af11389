"""Federated Cox proportional-hazards regression, equal to the pooled fit.

Two modes, chosen by ``strata``:

**Pooled risk sets** (``strata=None`` or categorical columns). Every stratum shares its
risk sets across sites, so each site bins its durations to a **public time grid** (the
largest grid point ``<=`` the duration) and, per stratum and grid point ``t_j``, sums over
the rows *leaving* the risk set at ``t_j`` (events and censored): their count, the
events ``d_j``, and ``Σw, Σz w, Σz zᵀ w`` with ``w = exp(z·beta_z)``; for Efron ties the
same three sums over the events at ``t_j``; plus, once per site, ``Σ_events z``, ``Σz``
and ``Σz²``. Every array has the same public shape at every site. Customs cumulates the
removed sums from the end of the grid (the risk set at ``t_j`` is every row binned at or
after ``t_j``) and evaluates the exact Efron or Breslow log partial likelihood, gradient
and Hessian (:mod:`safeflow.analyses.cox_math`). On a grid that matches the data's
resolution (whole days, ``resolution=1``) the binning changes nothing and the fit equals
lifelines' and statsmodels' on the pooled rows.

**Site strata** (``strata="site"``, optionally with columns: ``["site", "sex"]``). Each
site (and stratum within it) has its own baseline hazard, so the partial likelihood is a
sum over sites: each site computes its strata's log partial likelihood, gradient and
Hessian exactly on its raw durations and only those ``1 + p + p(p+1)/2`` numbers are
summed. With a public grid the sites also sum per-grid event counts and ``Σw`` for the
baseline survival (else it is not reported).

**The time grid** comes from ``time_grid=`` or from the duration column's declared
``bounds`` and ``resolution``. With a resolution but no declared bounds, one extra set-up
round precedes the fit: each site reveals its largest duration to customs (recorded in
the facts) and the grid runs from 0 to the largest by the resolution. A duration before
the first point of a caller's grid stops the run with a typed error.

**Scale and bounds.** Each covariate is standardised with public constants,
``z = (x - c) / h``: a numeric column with declared bounds ``(lo, hi)`` uses its midpoint
and half-range, an indicator ``c = h = 1/2`` (``z = ±1``), a numeric column without bounds
``c = 0, h = 1``. The partial likelihood does not depend on the centring, and nothing
beyond the schema is needed (lifelines centres at the data means, which would cost a
round). With ``|z| <= 1``, every statistic has a public bound: ``max_rows_per_site *
exp(Σ|beta_z|)`` for the weighted sums (the current ``beta`` is public to every party), the
row bound for the rest. When that bound would leave less than about 2^-42 of relative
precision for a single row's weight (large ``Σ|beta_z|``), or a covariate has no declared
bounds, the statistic uses the protocols' scale negotiation instead (each site reveals a
power of two above its largest value).

**Newton.** One round per evaluation of the shared driver
(:mod:`safeflow.analyses.newton`): start at 0, full steps, halving when the objective
decreases, convergence on its relative change; a pooled fit with the same driver takes the
same number of rounds. The ridge ``penalty=λ`` subtracts ``n λ/2 Σ (sd_k beta_k)²`` (sd: the
pooled sample SD, from ``Σz`` and ``Σz²`` summed in every round), which is lifelines'
``penalizer=λ`` (it penalises the coefficients of standardised covariates). No events,
a covariate without variation, collinearity, a monotone likelihood and non-convergence
raise :class:`~safeflow.errors.ConvergenceError` naming the covariates and the fix.

A site with no events or a single row simply contributes its rows to the risk sets (or,
under site strata, nothing to the likelihood). When a site drops out mid-fit (masking
tolerates it), the data changed: Newton restarts from 0 on the remaining sites, so the
result is their pooled fit (the release's contributors say whose).

Examples
--------
>>> Cox({"duration": "t", "event": "e", "covariates": ["age"]}).name
'cox'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from safeflow.analyses._base import (
    Analysis,
    Done,
    Next,
    check_columns,
    count_spec,
    register,
    site_slot,
)
from safeflow.analyses.cox_design import (
    SITE,
    Design,
    Strata,
    TimeGrid,
    check_grid,
    check_name,
    check_names,
    hexes,
    unhex,
)
from safeflow.analyses.cox_math import (
    bin_sums,
    cox_decision,
    exact_terms,
    risk_terms,
    safe_exp,
    unpack,
)
from safeflow.analyses.cox_result import CoxResult, breslow_baseline
from safeflow.analyses.newton import newton_start
from safeflow.data import Schema, SiteData
from safeflow.errors import ConvergenceError, DataError, InvalidParameter
from safeflow.statspec import StatLayout, StatSpec

if TYPE_CHECKING:  # the federation imports the analyses package: import it lazily
    from safeflow.federation import Federation
    from safeflow.release import Release

TIES = ("efron", "breslow")
#: the largest number of statistics one round may sum (grid x strata x covariates)
MAX_STATISTICS = 1 << 24
_PRECISION_BITS = 52  # log2(rows * w_max / w_min * sites) above which bounds are negotiated


@register
class Cox(Analysis):
    """Federated Cox proportional-hazards regression (see the module docstring)."""

    name = "cox"
    kind = "regression"

    # ---- parameters and public structure -------------------------------------------

    def columns(self) -> list[str]:
        strata = [s for s in self.params.get("strata") or [] if s != SITE]
        return [self.params["duration"], self.params["event"], *self.params["covariates"], *strata]

    @property
    def ties(self) -> str:
        return str(self.params.get("ties", "efron"))

    def _parts(self, schema: Schema) -> tuple[Design, Strata]:
        if self.ties not in TIES:
            raise InvalidParameter(f"ties must be 'efron' or 'breslow'; got {self.ties!r}")
        check_columns(schema, [self.params["duration"]], kinds=("numeric",), what="duration")
        (ev,) = check_columns(
            schema, [self.params["event"]], kinds=("binary", "categorical"), what="event"
        )
        if len(ev.categories or ()) != 2:
            raise InvalidParameter(
                f"event column {ev.name!r} needs exactly two levels (censored, event); "
                "declare kind='binary' with categories=(0, 1)"
            )
        return Design(schema, self.params["covariates"]), Strata(
            schema, list(self.params.get("strata") or [])
        )

    def _grid(self, schema: Schema) -> TimeGrid | str | None:
        """The public grid; ``"setup"`` while the site maxima are still unknown; or None."""
        caller = self.params.get("time_grid")
        if caller is not None:
            return TimeGrid(np.asarray(caller, dtype=np.float64), "caller", None)
        dur = self.params["duration"]
        res = schema.column(dur).resolution if schema.declared else None
        bounds = schema.public_bounds(dur)
        if res is None:
            return None
        if bounds is not None:
            return TimeGrid.regular(bounds[0], bounds[1], res, "schema bounds and resolution")
        end = self.state.get("grid_end")
        if end is None:
            return "setup"
        return TimeGrid.regular(0.0, float.fromhex(end), res, "site maxima")

    def _no_grid(self) -> InvalidParameter:
        dur = self.params["duration"]
        return InvalidParameter(
            f"duration column {dur!r} has no public time grid: declare its resolution (and "
            f"bounds) in the schema, e.g. sf.Column({dur!r}, role='time', bounds=(0, 1100), "
            "resolution=1), pass time_grid= (increasing grid points), or stratify by site "
            "(strata='site'), which needs no grid"
        )

    def initial_state(self, schema: Schema) -> dict[str, Any]:
        """Newton starts at 0; a set-up round first when the grid needs the site maxima."""
        design, strata = self._parts(schema)
        grid = self._grid(schema)
        if grid is None and not strata.by_site:
            raise self._no_grid()
        phase = "setup" if grid == "setup" and not strata.by_site else "newton"
        return {
            "phase": phase,
            "beta": hexes(np.zeros(design.p)),
            "grid_end": None,
            "newton": newton_start(design.p),
        }

    def request(self) -> dict[str, Any]:
        """Sites get only the public part of the state: phase, coefficients, grid end."""
        public = {k: self.state.get(k) for k in ("phase", "beta", "grid_end")}
        return {"analysis": self.name, "params": self.params, "state": public}

    def _beta(self, p: int) -> np.ndarray:
        return unhex(self.state.get("beta", hexes(np.zeros(p))), p)

    # ---- layout ----------------------------------------------------------------------

    def _weight_bound(
        self, design: Design, beta_z: np.ndarray, ctx: Mapping[str, Any]
    ) -> float | None:
        """Public per-site bound of sums of ``w`` (and of ``w z``, ``w z zᵀ``), or None."""
        if not design.bounded:
            return None
        a = float(np.sum(np.abs(beta_z)))
        rows, sites = float(ctx["max_rows_per_site"]), len(ctx["sites"])
        if a / math.log(2) + math.log2(rows) > 1000:
            raise ConvergenceError(
                "the coefficients diverge (exp(x·beta) would overflow); drop or merge the "
                "covariate with the largest |coef|, or add a ridge penalty via penalty="
            )
        if math.log2(rows) + 2 * a / math.log(2) + math.log2(sites) > _PRECISION_BITS:
            return None  # a public bound would cost precision: negotiate the scale instead
        return rows * math.exp(a)

    def layout(self, schema: Schema, ctx: Mapping[str, Any]) -> StatLayout:
        design, strata = self._parts(schema)
        rows = float(ctx["max_rows_per_site"])
        n_sites, p = len(ctx["sites"]), design.p
        t = p * (p + 1) // 2
        if self.state.get("phase") == "setup":
            return StatLayout(
                (
                    StatSpec("tmax", (n_sites,), "real", None),
                    count_spec("negative", (1,), ctx),
                    count_spec("dropped", (1,), ctx),
                )
            )
        grid = self._grid(schema)
        if grid == "setup" or (grid is None and not strata.by_site):
            raise self._no_grid()
        beta_z = self._beta(p) * design.half
        bw = self._weight_bound(design, beta_z, ctx)
        bx = rows if design.bounded else None
        specs = [count_spec("dropped", (1,), ctx)]
        if strata.by_site:
            s = (n_sites, strata.size)
            a = float(np.sum(np.abs(beta_z)))
            specs += [
                count_spec("n", s, ctx),
                count_spec("events", s, ctx),
                StatSpec(
                    "ll",
                    (1,),
                    "real",
                    rows * (2 * a + math.log(rows) + 1) if design.bounded else None,
                ),
                StatSpec("grad", (p,), "real", None if bx is None else 2 * bx),
                StatSpec("hess", (t,), "real", None if bx is None else 2 * bx),
            ]
            if isinstance(grid, TimeGrid):
                g = (*s, grid.points.size)
                specs += [
                    count_spec("d", g, ctx),
                    count_spec("before", (1,), ctx),
                    StatSpec("r0", g, "real", bw),
                ]
        else:
            assert isinstance(grid, TimeGrid)
            g = (strata.size, grid.points.size)
            specs += [
                count_spec("cnt", g, ctx),
                count_spec("d", g, ctx),
                count_spec("before", (1,), ctx),
                StatSpec("r0", g, "real", bw),
                StatSpec("r1", (*g, p), "real", bw),
                StatSpec("r2", (*g, t), "real", bw),
            ]
            if self.ties == "efron":
                specs += [
                    StatSpec("e0", g, "real", bw),
                    StatSpec("e1", (*g, p), "real", bw),
                    StatSpec("e2", (*g, t), "real", bw),
                ]
            specs.append(StatSpec("ex", (p,), "real", bx))
        specs += [StatSpec("sx", (p,), "real", bx), StatSpec("sxx", (p,), "real", bx)]
        layout = StatLayout(tuple(specs))
        if layout.size > MAX_STATISTICS:
            raise InvalidParameter(
                f"one Cox round would sum {layout.size} statistics (more than "
                f"{MAX_STATISTICS}); pass a coarser time_grid=, use fewer covariates or "
                "strata, or stratify by site"
            )
        return layout

    # ---- at each site ----------------------------------------------------------------

    def local(self, data: SiteData, ctx: Mapping[str, Any]) -> dict[str, np.ndarray]:
        schema = ctx["public_schema"]
        layout = self.layout(schema, ctx)
        out = {s.name: np.zeros(s.shape) for s in layout.specs}
        design, strata = self._parts(schema)
        dur, ev_name = self.params["duration"], self.params["event"]
        kept = 0
        if self.state.get("phase") == "setup":
            tmax = 0.0
            for batch in data.batches(self.columns()):
                t = np.asarray(batch[dur], dtype=np.float64)
                kept += t.size
                if t.size:
                    tmax = max(tmax, float(t.max()))
                    out["negative"][0] += int(np.sum(t < 0))
            out["tmax"][site_slot(ctx)] = tmax
            out["dropped"][0] = max(data.n_rows() - kept, 0)
            return out
        grid = self._grid(schema)
        beta_z = self._beta(design.p) * design.half
        efron = self.ties == "efron"
        parts: list[tuple[np.ndarray, ...]] = []
        for batch in data.batches(self.columns()):
            n = len(batch)
            kept += n
            t = np.asarray(batch[dur], dtype=np.float64)
            e = (np.asarray(batch[ev_name], dtype=np.int64) == 1).astype(np.float64)
            z = design.z(batch)
            code = strata.codes(batch, n)
            out["sx"] += z.sum(0)
            out["sxx"] += (z * z).sum(0)
            if strata.by_site:
                parts.append((t, e, z, code))
                continue
            assert isinstance(grid, TimeGrid)
            idx, before = grid.bin(t)
            out["before"][0] += int(before.sum())
            k = grid.points.size
            sums = bin_sums(code * k + idx, strata.size * k, e, z, safe_exp(z @ beta_z), efron)
            for name, arr in sums.items():
                out[name] += arr.reshape(out[name].shape)
            out["ex"] += e @ z
        if strata.by_site:
            self._local_exact(out, parts, design, strata, grid, beta_z, site_slot(ctx))
        out["dropped"][0] = max(data.n_rows() - kept, 0)
        return out

    def _local_exact(
        self,
        out: dict[str, np.ndarray],
        parts: list[tuple[np.ndarray, ...]],
        design: Design,
        strata: Strata,
        grid: Any,
        beta_z: np.ndarray,
        slot: int,
    ) -> None:
        """Site strata: exact terms of this site's strata on its raw durations."""
        p = design.p
        if parts:
            t, e, z, code = (np.concatenate([q[i] for q in parts]) for i in range(4))
        else:
            t, e, z, code = np.zeros(0), np.zeros(0), np.zeros((0, p)), np.zeros(0, np.int64)
        i, j = np.triu_indices(p)
        for level in range(strata.size):
            rows = code == level
            ll, g, h = exact_terms(t[rows], e[rows], z[rows], beta_z, self.ties)
            out["ll"][0] += ll
            out["grad"] += g
            out["hess"] += h[i, j]
            out["n"][slot, level] = int(rows.sum())
            out["events"][slot, level] = int(e[rows].sum())
            if isinstance(grid, TimeGrid) and rows.any():
                idx, before = grid.bin(t[rows])
                k = grid.points.size
                out["before"][0] += int(before.sum())
                out["d"][slot, level] += np.bincount(idx, weights=e[rows], minlength=k)
                out["r0"][slot, level] += np.bincount(
                    idx, weights=safe_exp(z[rows] @ beta_z), minlength=k
                )

    # ---- at customs ------------------------------------------------------------------

    def combine(
        self, totals: Mapping[str, np.ndarray], schema: Schema, ctx: Mapping[str, Any]
    ) -> Done | Next:
        design, strata = self._parts(schema)
        p = design.p
        if self.state.get("phase") == "setup":
            if int(totals["negative"][0]) > 0:
                raise DataError(
                    f"durations in {self.params['duration']!r} must be >= 0; declare the "
                    "column's bounds (e.g. bounds=(0, 3650)) so the sites can check them"
                )
            end = float(np.max(totals["tmax"]))
            TimeGrid.regular(
                0.0,
                end,
                float(schema.column(self.params["duration"]).resolution or 1.0),
                "site maxima",
            )  # checks the size
            return Next({**self.state, "phase": "newton", "grid_end": end.hex()})
        if int(totals.get("before", np.zeros(1))[0]) > 0:
            raise InvalidParameter(
                "some durations lie before the first point of time_grid; start the grid at "
                "or below the smallest possible duration (e.g. at 0 or the column's lower "
                "bound)"
            )
        grid = self._grid(schema)
        beta = self._beta(p)
        beta_z = beta * design.half
        if strata.by_site:
            n, events = int(totals["n"].sum()), int(totals["events"].sum())
            ll = float(totals["ll"][0])
            grad_z = np.asarray(totals["grad"], dtype=np.float64)
            hess_z = unpack(np.asarray(totals["hess"], dtype=np.float64), p)
        else:
            n, events = int(totals["cnt"].sum()), int(totals["d"].sum())
            ll, grad_z, hess_z = 0.0, np.asarray(totals["ex"], dtype=np.float64), np.zeros((p, p))
            ll += float(grad_z @ beta_z)
            for level in range(strata.size):
                sums = {
                    k: totals[k][level]
                    for k in ("d", "r0", "r1", "r2", "e0", "e1", "e2")
                    if k in totals
                }
                sums["ex"] = np.zeros(p)
                l_ll, l_g, l_h = risk_terms(sums, beta_z, self.ties)
                ll, grad_z, hess_z = ll + l_ll, grad_z + l_g, hess_z + l_h
        if events == 0:
            raise ConvergenceError(
                "no events: every row is censored (or no site has rows), so the partial "
                "likelihood carries no information; check the event column's coding "
                "(its second category is the event)"
            )
        zbar = np.asarray(totals["sx"], dtype=np.float64) / n
        var_z = (np.asarray(totals["sxx"], dtype=np.float64) - n * zbar**2) / max(n - 1, 1)
        sd = design.half * np.sqrt(np.maximum(var_z, 0.0))
        const = [nm for nm, v in zip(design.names, var_z, strict=True) if not v > 1e-12]
        if const:
            raise ConvergenceError(
                f"covariate {', '.join(map(repr, const))} is constant in the pooled data (an "
                "empty level, or no variation); drop or merge it"
            )
        h = design.half
        state = dict(self.state)
        if state.get("rows") not in (None, [n, events]):  # a site dropped out: refit the rest
            state = {k: v for k, v in state.items() if k not in ("rows", "ll_null")}
            return Next({**state, "newton": newton_start(p), "beta": hexes(np.zeros(p))})
        state["rows"] = [n, events]
        state.setdefault("ll_null", ll)  # the first round is at beta = 0
        newton, fit = cox_decision(
            state["newton"],
            ll,
            h * grad_z,
            hess_z * np.outer(h, h),
            names=design.names,
            penalty=n * float(self.params.get("penalty", 0.0)) * sd**2,
            scale=design.step_scale(sd),
            tol=float(self.params.get("tol", 1e-9)),
            max_iter=int(self.params.get("max_iter", 50)),
        )
        if fit is None:
            return Next({**state, "newton": newton, "beta": hexes(np.asarray(newton["beta"]))})
        labels = strata.labels if strata.size > 1 else ["baseline survival"]
        if strata.by_site:
            labels = [f"{s}, {lab}" if lab else s for s in ctx["sites"] for lab in strata.labels]
        base, gfacts = None, {"source": None}
        if isinstance(grid, TimeGrid):  # Breslow's estimate at the pooled means
            d, r0 = totals["d"], totals["r0"]
            shift = math.exp(-float(beta_z @ zbar))  # S0 at the means = S0 at c * shift
            base = breslow_baseline(
                d.reshape(len(labels), -1), r0.reshape(len(labels), -1), grid.points, labels, shift
            )
            gfacts = grid.facts()
        result = CoxResult(
            names=design.names,
            coef=fit["beta"],
            cov=np.linalg.inv(-fit["hess"]),
            log_likelihood=fit["ll"],
            log_likelihood_null=state["ll_null"],
            n=n,
            events=events,
            iterations=fit["iterations"],
            ties=self.ties,
            strata=labels if len(labels) > 1 else (),
            penalty=float(self.params.get("penalty", 0.0)),
            penalized_log_likelihood=fit["ll_penalized"],
            baseline_survival=base,
            means=pd.Series(design.center + design.half * zbar, index=design.names, name="mean"),
            time_grid=gfacts,
        )
        d = totals["d"] if "d" in totals else totals["events"]
        facts = {
            "sdc": {
                "residual_dof": events - p,
                "n_params": p,
                "n": n,
                "params_per_n": p / n,
                "min_event_cell": int(d[d > 0].min()) if np.any(d > 0) else 0,
            },
            "time_grid": gfacts,
            "rows_dropped": int(totals["dropped"][0]),
        }
        return Done(result, facts)


def cox(
    fed: Federation,
    duration: str,
    event: str,
    covariates: Sequence[str],
    strata: str | Sequence[str] | None = None,
    ties: str = "efron",
    time_grid: Sequence[float] | None = None,
    protocol: str = "masking",
    penalty: float = 0.0,
    max_iter: int = 50,
    tol: float = 1e-9,
    **options: Any,
) -> Release:
    """Cox proportional-hazards regression, identical to the pooled fit.

    Parameters
    ----------
    fed : sf.Federation
    duration : str
        A numeric column: follow-up time.
    event : str
        A binary column whose second category marks the event (e.g. ``(0, 1)``).
    covariates : list of str
        Numeric columns (declare their bounds: they centre and bound the statistics) and
        categorical or binary ones (indicators ``column[T.level]`` against the first level).
    strata : None, "site", a column name, or a list of these
        Each stratum gets its own baseline hazard. ``"site"``: every site is a stratum and
        the sites sum only their partial-likelihood gradients and Hessians (no grid
        needed); categorical columns: strata shared across sites, on the time grid.
    ties : {"efron", "breslow"}
        How tied event times are handled (lifelines and R use Efron).
    time_grid : list of float, optional
        Increasing public grid points. Default: from the duration column's declared
        ``bounds`` and ``resolution`` (see :mod:`safeflow.analyses.cox`).
    protocol : {"masking", "he", "plain"}
    penalty : float
        Ridge penalty ``λ >= 0`` (lifelines' ``penalizer`` with ``l1_ratio=0``).
    max_iter : int
        Most Newton rounds before :class:`~safeflow.errors.ConvergenceError`.
    tol : float
        Convergence: relative change of the log partial likelihood below ``tol`` and a last
        Newton step below ``tol`` on each covariate's range (see
        :func:`~safeflow.analyses.cox_math.cox_decision`).
    **options
        Passed to :meth:`sf.Federation.run` (e.g. ``rng=`` for deterministic tests).

    Returns
    -------
    Release
        ``.value`` is a :class:`~safeflow.analyses.cox_result.CoxResult` (``.coef``,
        ``.summary``, ``.baseline_survival``, ``.plot()``); ``.facts["output"]["sdc"]``
        holds the residual degrees of freedom (events − parameters), the number of
        parameters and rows, parameters per row, and the smallest non-zero event count.

    Raises
    ------
    InvalidParameter
        Bad arguments, wrong column kinds, no public grid for pooled risk sets.
    ConvergenceError
        No events, a covariate without variation, collinear covariates, a monotone
        likelihood (separation) or no convergence in ``max_iter`` rounds.

    Examples
    --------
    >>> import pandas as pd, safeflow as sf
    >>> pub = ("public",)
    >>> s = sf.Schema([sf.Column("days", classes=pub, role="time", bounds=(0, 20), resolution=1),
    ...                sf.Column("dead", classes=("public",), role="event", categories=(0, 1)),
    ...                sf.Column("age", classes=("public",), bounds=(40, 90))])
    >>> a = pd.DataFrame({"days": [1.0, 3, 4, 6, 8, 9], "dead": [1, 1, 0, 1, 0, 1],
    ...                   "age": [80.0, 58, 50, 65, 45, 71]})
    >>> b = pd.DataFrame({"days": [2.0, 5, 7, 9, 12], "dead": [1, 0, 1, 1, 0],
    ...                   "age": [75.0, 60, 55, 62, 48]})
    >>> fed = sf.Federation.local([sf.Site("a", a, "CN", schema=s),
    ...                           sf.Site("b", b, "NL", schema=s)],
    ...                          destination="NL", purpose="scientific-research")
    >>> fit = cox(fed, "days", "dead", ["age"], protocol="masking").value
    >>> round(float(fit.coef["age"]), 4), fit.iterations  # lifelines: 0.1046
    (0.1046, 5)
    """
    from safeflow.federation import Federation

    if not isinstance(fed, Federation):
        raise InvalidParameter(
            f"the first argument must be an sf.Federation (e.g. sf.Federation.local([...])); "
            f"got {type(fed).__name__}"
        )
    dur, ev = check_name(duration, "duration"), check_name(event, "event")
    covs = check_names(covariates, "covariates")
    strat = [] if strata is None else check_names(strata, "strata")
    clash = sorted({dur, ev} & set(covs + strat) | set(covs) & set(strat))
    if clash or dur == ev:
        raise InvalidParameter(
            f"duration, event, covariates and strata must be different columns; "
            f"{clash or [dur]} appear twice"
        )
    if ties not in TIES:
        raise InvalidParameter(f"ties must be 'efron' or 'breslow'; got {ties!r}")
    if not (
        isinstance(penalty, int | float)
        and not isinstance(penalty, bool)
        and math.isfinite(penalty)
        and penalty >= 0
    ):
        raise InvalidParameter(f"penalty must be a finite number >= 0; got {penalty!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or not 1 <= max_iter <= 1000:
        raise InvalidParameter(f"max_iter must be an integer in 1..1000; got {max_iter!r}")
    if not (isinstance(tol, int | float) and not isinstance(tol, bool) and 0 < tol < 1e-3):
        raise InvalidParameter(f"tol must be a number in (0, 1e-3), e.g. 1e-9; got {tol!r}")
    params = {
        "duration": dur,
        "event": ev,
        "covariates": covs,
        "strata": strat,
        "ties": ties,
        "time_grid": check_grid(time_grid),
        "penalty": float(penalty),
        "max_iter": max_iter,
        "tol": float(tol),
    }
    return fed.run(Cox(params), protocol=protocol, **options)


__all__ = ["Cox", "CoxResult", "cox"]

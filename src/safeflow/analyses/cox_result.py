"""The fitted Cox model: coefficients, hazard ratios, summary, baseline survival, forest plot.

Examples
--------
>>> import numpy as np
>>> r = CoxResult(names=["age", "sex[T.2]"], coef=np.array([0.01, -0.5]),
...               cov=np.diag([1e-4, 0.0289]), log_likelihood=-740.0,
...               log_likelihood_null=-750.0, n=228, events=165, iterations=4)
>>> r.summary.loc["sex[T.2]", ["coef", "se", "z"]].round(4).tolist()
[-0.5, 0.17, -2.9412]
>>> r
<CoxResult: 2 covariates, n=228, 165 events, efron ties, 4 Newton rounds, log-likelihood -740>
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats


@dataclass(frozen=True, repr=False)
class CoxResult:
    """A Cox proportional-hazards fit, equal to the pooled fit of the sites' rows.

    Attributes
    ----------
    coef : pandas.Series
        Log hazard ratios, by covariate (dummies named ``column[T.level]``).
    se : pandas.Series
        Standard errors (inverse observed information, penalised when ``penalty > 0``).
    summary : pandas.DataFrame
        ``coef, exp(coef), se, z, p, ci_low, ci_high``: Wald statistics; the interval is
        on the coefficient scale (exponentiate it for the hazard ratio).
    log_likelihood, log_likelihood_null : float
        Log partial likelihood at the estimate and at ``beta = 0`` (unpenalised).
    baseline_survival : pandas.DataFrame or None
        Breslow's estimate at the pooled covariate means (:attr:`means`), as lifelines'
        ``baseline_survival_``: indexed by the grid times with events, one column per
        stratum. None when the fit used no public time grid (site strata without one).
    n, events, iterations : int
        Rows used, events, and Newton rounds (one secure sum each).

    Notes
    -----
    Harrell's concordance is not reported: it compares the risk scores of every pair of
    rows across sites, which the risk-set sums do not determine.
    """

    names: tuple[str, ...]
    coef_: np.ndarray
    cov: np.ndarray
    log_likelihood: float
    log_likelihood_null: float
    n: int
    events: int
    iterations: int
    ties: str = "efron"
    strata: tuple[str, ...] = ()
    penalty: float = 0.0
    penalized_log_likelihood: float | None = None
    baseline_survival: pd.DataFrame | None = None
    means: pd.Series | None = None
    time_grid: Mapping[str, Any] = field(default_factory=dict)
    alpha: float = 0.05

    def __init__(
        self,
        *,
        names: Sequence[str],
        coef: np.ndarray,
        cov: np.ndarray,
        log_likelihood: float,
        log_likelihood_null: float,
        n: int,
        events: int,
        iterations: int,
        ties: str = "efron",
        strata: Sequence[str] = (),
        penalty: float = 0.0,
        penalized_log_likelihood: float | None = None,
        baseline_survival: pd.DataFrame | None = None,
        means: pd.Series | None = None,
        time_grid: Mapping[str, Any] | None = None,
        alpha: float = 0.05,
    ) -> None:
        values = dict(
            names=tuple(names),
            coef_=np.asarray(coef, dtype=np.float64),
            cov=np.asarray(cov, dtype=np.float64),
            log_likelihood=float(log_likelihood),
            log_likelihood_null=float(log_likelihood_null),
            n=int(n),
            events=int(events),
            iterations=int(iterations),
            ties=str(ties),
            strata=tuple(strata),
            penalty=float(penalty),
            penalized_log_likelihood=(
                float(log_likelihood)
                if penalized_log_likelihood is None
                else float(penalized_log_likelihood)
            ),
            baseline_survival=baseline_survival,
            means=means,
            time_grid=dict(time_grid or {}),
            alpha=float(alpha),
        )
        for k, v in values.items():
            object.__setattr__(self, k, v)

    @property
    def coef(self) -> pd.Series:
        """Coefficients (log hazard ratios) indexed by covariate."""
        return pd.Series(self.coef_, index=list(self.names), name="coef")

    @property
    def hazard_ratios(self) -> pd.Series:
        """``exp(coef)``."""
        return pd.Series(np.exp(self.coef_), index=list(self.names), name="exp(coef)")

    @property
    def se(self) -> pd.Series:
        """Standard errors."""
        return pd.Series(np.sqrt(np.diag(self.cov)), index=list(self.names), name="se")

    @property
    def variance(self) -> pd.DataFrame:
        """Variance-covariance matrix of the coefficients."""
        return pd.DataFrame(self.cov, index=list(self.names), columns=list(self.names))

    @property
    def summary(self) -> pd.DataFrame:
        """coef, exp(coef), se, z, p, ci_low, ci_high (Wald, normal reference)."""
        se = self.se.to_numpy()
        z = self.coef_ / se
        q = float(stats.norm.ppf(1 - self.alpha / 2))
        return pd.DataFrame(
            {
                "coef": self.coef_,
                "exp(coef)": np.exp(self.coef_),
                "se": se,
                "z": z,
                "p": 2 * stats.norm.sf(np.abs(z)),
                "ci_low": self.coef_ - q * se,
                "ci_high": self.coef_ + q * se,
            },
            index=pd.Index(list(self.names), name="covariate"),
        )

    @property
    def log_likelihood_ratio_test(self) -> tuple[float, int, float]:
        """Likelihood-ratio test against the null model: ``(statistic, df, p)``."""
        stat = 2.0 * (self.log_likelihood - self.log_likelihood_null)
        df = len(self.names)
        return stat, df, float(stats.chi2.sf(stat, df))

    def plot(self, ax: Any = None) -> Any:
        """Forest plot of the hazard ratios with their confidence intervals (log scale).

        Returns
        -------
        matplotlib.axes.Axes
        """
        import matplotlib.pyplot as plt

        s = self.summary
        est, lo, hi = s["exp(coef)"], np.exp(s["ci_low"]), np.exp(s["ci_high"])
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 0.5 * len(s) + 1.2))
        y = np.arange(len(s))[::-1]
        ax.errorbar(est, y, xerr=[est - lo, hi - est], fmt="s", color="black", capsize=3)
        ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
        ax.set_yticks(y, list(s.index))
        ax.set_xscale("log")
        ax.set_xlabel(f"hazard ratio ({100 * (1 - self.alpha):.0f}% CI)")
        return ax

    def __repr__(self) -> str:
        p = len(self.names)
        strata = f"{len(self.strata)} strata, " if self.strata else ""
        pen = f", ridge penalty {self.penalty:g}" if self.penalty else ""
        return (
            f"<CoxResult: {p} covariate{'s' * (p != 1)}, n={self.n}, {self.events} events, "
            f"{self.ties} ties, {strata}{self.iterations} Newton rounds, "
            f"log-likelihood {self.log_likelihood:.4g}{pen}>"
        )


def breslow_baseline(
    d: np.ndarray, r0: np.ndarray, points: np.ndarray, labels: Sequence[str], shift: float
) -> pd.DataFrame:
    """Breslow's baseline survival per stratum from per-bin sums (lifelines' estimator).

    ``d`` and ``r0`` are ``(strata, bins)`` event counts and sums of ``exp(z·beta_z)`` over
    the rows leaving the risk set at each bin; ``shift`` moves the reference covariate
    values (``S0`` at the means is ``shift * S0``). Indexed by the bins with an event.

    Examples
    --------
    >>> breslow_baseline(np.array([[1, 0, 1]]), np.array([[1.0, 1.0, 2.0]]),
    ...                  np.array([0.0, 1.0, 2.0]), ["s"], 1.0)["s"].round(4).tolist()
    [0.7788, 0.4724]
    """
    d = np.asarray(d, dtype=np.float64)
    at_risk = np.flip(np.cumsum(np.flip(np.asarray(r0, dtype=np.float64), 1), 1), 1) * shift
    with np.errstate(divide="ignore", invalid="ignore"):
        hazard = np.where(d > 0, d / np.where(at_risk > 0, at_risk, 1.0), 0.0)
    rows = np.flatnonzero(d.sum(0) > 0)
    surv = np.exp(-np.cumsum(hazard, axis=1))[:, rows].T
    return pd.DataFrame(surv, columns=list(labels), index=pd.Index(points[rows], name="time"))


__all__ = ["CoxResult", "breslow_baseline"]

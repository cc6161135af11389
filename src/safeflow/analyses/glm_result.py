"""The fitted GLM: coefficients, summary table, fit statistics and a forest plot.

Examples
--------
>>> import numpy as np
>>> r = GLMResult(names=["Intercept", "x"], coef=np.array([0.5, 1.0]),
...               cov=np.diag([0.04, 0.01]), family="binomial", n=100, loglik=-60.0,
...               deviance=120.0, iterations=5, scale=1.0, penalty=0.0)
>>> round(float(r.summary.loc["x", "z"]), 6)
10.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats


@dataclass(frozen=True)
class GLMResult:
    """A fitted generalised linear model (pooled-equivalent estimates)."""

    names: list[str]
    coef_: np.ndarray
    cov: np.ndarray
    family: str
    n: int
    loglik: float
    deviance: float
    iterations: int
    scale: float
    penalty: float
    alpha: float = 0.05

    def __init__(self, *, names: list[str], coef: np.ndarray, cov: np.ndarray, family: str,
                 n: int, loglik: float, deviance: float, iterations: int, scale: float,
                 penalty: float, alpha: float = 0.05) -> None:
        for k, v in dict(names=list(names), coef_=np.asarray(coef, dtype=float),
                         cov=np.asarray(cov, dtype=float), family=family, n=int(n),
                         loglik=float(loglik), deviance=float(deviance),
                         iterations=int(iterations), scale=float(scale),
                         penalty=float(penalty), alpha=float(alpha)).items():
            object.__setattr__(self, k, v)

    @property
    def coef(self) -> pd.Series:
        """Coefficients indexed by design column name."""
        return pd.Series(self.coef_, index=self.names, name="coef")

    @property
    def se(self) -> pd.Series:
        """Standard errors."""
        return pd.Series(np.sqrt(np.diag(self.cov)), index=self.names, name="se")

    @property
    def converged(self) -> bool:
        """Always True: a fit that does not converge raises ConvergenceError instead."""
        return True

    @property
    def aic(self) -> float:
        """Akaike information criterion, ``-2 loglik + 2 p`` (statsmodels' GLM convention)."""
        return -2.0 * self.loglik + 2.0 * len(self.names)

    @property
    def summary(self) -> pd.DataFrame:
        """coef, se, z, p, ci_low, ci_high (Wald, normal reference)."""
        se = self.se.to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):  # se = 0: a DP fit with RSS 0
            z = np.where(se > 0, self.coef_ / np.where(se > 0, se, 1.0), np.nan)
        q = stats.norm.ppf(1 - self.alpha / 2)
        return pd.DataFrame({"coef": self.coef_, "se": se, "z": z,
                             "p": 2 * stats.norm.sf(np.abs(z)),
                             "ci_low": self.coef_ - q * se, "ci_high": self.coef_ + q * se},
                            index=pd.Index(self.names, name="term"))

    def plot(self, ax: Any = None, *, exponentiate: bool | None = None) -> Any:
        """Forest plot of the coefficients (odds or rate ratios for logit/log links)."""
        import matplotlib.pyplot as plt

        expo = self.family != "gaussian" if exponentiate is None else exponentiate
        s = self.summary.drop(index="Intercept")
        est, lo, hi = s["coef"], s["ci_low"], s["ci_high"]
        if expo:
            est, lo, hi = np.exp(est), np.exp(lo), np.exp(hi)
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 0.5 * len(s) + 1.2))
        y = np.arange(len(s))[::-1]
        ax.errorbar(est, y, xerr=[est - lo, hi - est], fmt="o", color="black", capsize=3)
        ax.axvline(1.0 if expo else 0.0, color="grey", linestyle="--", linewidth=1)
        ax.set_yticks(y, list(s.index))
        if expo:
            ax.set_xscale("log")
        label = {"binomial": "odds ratio", "poisson": "rate ratio"}.get(self.family, "coefficient")
        ax.set_xlabel(f"{label} ({100 * (1 - self.alpha):.0f}% CI)")
        return ax

    def __repr__(self) -> str:
        return (f"<GLMResult {self.family}: n={self.n}, {len(self.names)} parameters, "
                f"deviance={self.deviance:.4g}, {self.iterations} Newton evaluation(s)>")

"""The estimands compared: each with its pooled peer fit, its federated call and its error.

Every estimand knows three things:

* **the pooled fit** of an established library on all sites' rows in one place (pandas,
  statsmodels, lifelines): the exact answer, and the "peer" whose time and memory every
  federated row is set against;
* **the federated call** (``sf.describe``, ``sf.glm``, ``sf.cox``, ``sf.kaplan_meier``,
  ``sf.logrank``) under a :class:`~safeflow.benchmarking.variants.Variant`;
* **the error** of a federated value against the pooled fit:

  =====================  ===============================================================
  estimand               error
  =====================  ===============================================================
  Table 1                max |Δ| over the means, SDs (years, points) and percents
  logistic regression    max |Δcoef| against statsmodels (and the AUC gap on the rows)
  linear regression      max |Δcoef| against statsmodels
  pooled Cox             max |Δcoef| against lifelines' CoxPHFitter (Efron ties)
  Kaplan-Meier           sup-norm of the survival difference against lifelines
  log-rank               |Δ χ²| against lifelines' logrank_test
  =====================  ===============================================================

DP is offered where safeflow offers it (Table 1, Kaplan-Meier, log-rank, the gaussian
GLM); the other estimands carry the reason DP rows are skipped (:attr:`Estimand.dp_skip`).

Examples
--------
>>> from safeflow.benchmarking.data import lung
>>> t1 = Table1(lung())
>>> ref = t1.pooled_fit()
>>> round(ref[("age", "", "mean")], 3), t1.error(ref, ref)
(62.46, 0.0)
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

import safeflow as sf
from safeflow.benchmarking.data import Dataset
from safeflow.benchmarking.variants import Variant
from safeflow.release import Release

_NOT_SINGLE_ROUND = ("DP releases are single-round in safeflow (noisy sufficient statistics); "
                     "{what} needs several adaptive Newton rounds, so sf.{call} takes no dp=")


def _options(variant: Variant) -> dict[str, Any]:
    """Keyword arguments of an ``sf.*`` call for ``variant`` (protocol, CKKS, DP)."""
    out: dict[str, Any] = {"protocol": variant.protocol, **dict(variant.params)}
    if variant.is_dp:
        out["dp"] = sf.DP(variant.epsilon, mode=variant.mode)
    return out


def _tol(est: Estimand, variant: Variant) -> dict[str, float]:
    """``{"tol": ...}`` when the estimand or CKKS asks for a tolerance, else ``{}``."""
    tol = est.tol
    if tol is None and variant.params.get("scheme") == "ckks":
        tol = est.ckks_tol
    return {} if tol is None else {"tol": tol}


class Estimand(ABC):
    """One estimand on one data set (see the module docstring).

    Attributes
    ----------
    key : str
        Short name used in file names and tables.
    title : str
        Row label in the report.
    metric : str
        What :meth:`error` measures.
    peer : str
        The library of the pooled fit.
    dp_skip : str or None
        Why there are no DP rows (``None``: DP rows are run).
    """

    key: str = ""
    title: str = ""
    metric: str = ""
    peer: str = ""
    dp_skip: str | None = None
    #: the columns whose rows a pooled fit would export
    columns: tuple[str, ...] = ()
    #: Newton tolerance override (``None``: the analysis's default); GLM and Cox only
    tol: float | None = None
    #: Newton tolerance under CKKS, whose flooding noise is above the default tolerance
    #: (Newton then stops with ConvergenceError); ``None``: the default converges
    ckks_tol: float | None = None

    def __init__(self, data: Dataset) -> None:
        self.data = data
        self._pooled = data.pooled

    @abstractmethod
    def pooled_fit(self) -> Any:
        """The peer library's fit on the pooled rows (the reference value)."""

    @abstractmethod
    def run(self, fed: sf.Federation, variant: Variant) -> Release:
        """The federated release under ``variant``."""

    @abstractmethod
    def error(self, value: Any, ref: Any) -> float:
        """Distance of a value (federated or pooled) from the reference."""

    def auc_gap(self, value: Any, ref: Any) -> float | None:
        """``|AUC(value) - AUC(ref)|`` on the pooled rows, for classifiers; else ``None``."""
        return None

    def export_bytes(self) -> int:
        """Bytes of the rows a pooled fit exports: float64 per used column and row.

        Every site is abroad (see :mod:`safeflow.benchmarking.data`), so all rows cross.
        """
        return 8 * len(self._pooled) * len(self.columns)


# --------------------------------------------------------------------------- Table 1


class Table1(Estimand):
    """Table 1 of the lung data: age and Karnofsky score (mean, SD), sex and ECOG (%)."""

    key, title, peer = "table1", "Table 1 (describe)", "pandas"
    metric = "max |Δ| of means, SDs, percents"
    numeric, categorical = ("age", "ph_karno"), ("sex", "ph_ecog")
    columns = (*numeric, *categorical)

    def pooled_fit(self) -> dict[tuple[str, str, str], float]:
        df, out = self._pooled, {}
        for c in self.numeric:
            out[(c, "", "mean")] = float(df[c].mean())
            out[(c, "", "sd")] = float(df[c].std(ddof=1))
        for c in self.categorical:
            share = df[c].astype(str).value_counts(normalize=True)
            for level, p in share.items():
                out[(c, str(level), "percent")] = 100.0 * float(p)
        return out

    def run(self, fed: sf.Federation, variant: Variant) -> Release:
        return sf.describe(fed, list(self.columns), **_options(variant))

    def value(self, release: Release) -> dict[tuple[str, str, str], float]:
        """The release's table as ``{(variable, level, statistic): value}``."""
        out = {}
        for r in release.value.itertuples(index=False):
            if r.variable in self.numeric:
                out[(r.variable, "", "mean")] = float(r.mean)
                out[(r.variable, "", "sd")] = float(r.sd)
            else:
                out[(r.variable, str(r.level), "percent")] = float(r.percent)
        return out

    def error(self, value: Any, ref: Any) -> float:
        if isinstance(value, Release):
            value = self.value(value)
        return max(abs(value.get(k, np.nan) - v) for k, v in ref.items())


# --------------------------------------------------------------------------- GLMs


class _GLM(Estimand):
    y: str = ""
    X: tuple[str, ...] = ()
    family: str = ""

    @property
    def columns(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.y, *self.X)

    def design(self, df: pd.DataFrame) -> pd.DataFrame:
        """safeflow's design matrix: intercept, numeric columns, ``col[T.level]`` dummies."""
        out = pd.DataFrame({"Intercept": 1.0}, index=df.index)
        for name in self.X:
            col = self.data.schema.column(name)
            if col.kind == "numeric":
                out[name] = df[name].astype(float)
            else:
                for level in (col.categories or ())[1:]:
                    out[f"{name}[T.{level}]"] = (df[name].astype(str) == str(level)).astype(
                        float)
        return out

    def pooled_fit(self) -> pd.Series:
        import statsmodels.api as sm

        fam = sm.families.Binomial() if self.family == "binomial" else sm.families.Gaussian()
        y = self._pooled[self.y].astype(float)
        return sm.GLM(y, self.design(self._pooled), family=fam).fit(tol=1e-12).params

    def run(self, fed: sf.Federation, variant: Variant) -> Release:
        extra = _tol(self, variant)
        return sf.glm(fed, self.y, list(self.X), family=self.family, **_options(variant),
                      **extra)

    def error(self, value: Any, ref: Any) -> float:
        coef = value.value.coef if isinstance(value, Release) else value
        return float(np.max(np.abs(coef.reindex(ref.index).to_numpy() - ref.to_numpy())))


class Logistic(_GLM):
    """Malignancy on four nucleus measurements (breast cancer), binomial GLM."""

    key, title, peer = "logistic", "logistic regression (glm binomial)", "statsmodels"
    metric = "max |Δcoef|"
    y, X, family = "malignant", ("radius", "texture", "smoothness", "symmetry"), "binomial"
    ckks_tol = 1e-6
    dp_skip = _NOT_SINGLE_ROUND.format(what="logistic regression", call="glm(binomial)")

    def auc_gap(self, value: Any, ref: Any) -> float | None:
        from sklearn.metrics import roc_auc_score

        coef = value.value.coef if isinstance(value, Release) else value
        A = self.design(self._pooled)
        y = self._pooled[self.y].to_numpy()
        mine = roc_auc_score(y, A.to_numpy() @ coef.reindex(A.columns).to_numpy())
        base = roc_auc_score(y, A.to_numpy() @ ref.reindex(A.columns).to_numpy())
        return float(abs(mine - base))


class Linear(_GLM):
    """Karnofsky score on age, sex and ECOG grade (lung), gaussian GLM."""

    key, title, peer = "linear", "linear regression (glm gaussian)", "statsmodels"
    metric = "max |Δcoef|"
    y, X, family = "ph_karno", ("age", "sex", "ph_ecog"), "gaussian"


# --------------------------------------------------------------------------- survival


class Cox(Estimand):
    """Pooled Cox (one baseline hazard, the 1-day public grid) of the lung data."""

    key, title, peer = "cox", "pooled Cox (1-day public grid)", "lifelines"
    metric = "max |Δcoef|"
    covariates = ("age", "sex", "ph_ecog")
    columns = ("time", "status", *covariates)
    dp_skip = _NOT_SINGLE_ROUND.format(what="Cox regression", call="cox")
    ckks_tol = 1e-5

    def pooled_fit(self) -> pd.Series:
        from lifelines import CoxPHFitter

        df = self._pooled
        frame = pd.DataFrame({"time": df["time"], "status": df["status"], "age": df["age"],
                              "sex[T.F]": (df["sex"] == "F").astype(float),
                              "ph_ecog[T.1]": (df["ph_ecog"] == "1").astype(float),
                              "ph_ecog[T.2+]": (df["ph_ecog"] == "2+").astype(float)})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = CoxPHFitter().fit(frame, "time", "status")
        return fit.params_

    def run(self, fed: sf.Federation, variant: Variant) -> Release:
        extra = _tol(self, variant)
        return sf.cox(fed, "time", "status", list(self.covariates), **_options(variant),
                      **extra)

    def error(self, value: Any, ref: Any) -> float:
        coef = value.value.coef if isinstance(value, Release) else value
        return float(np.max(np.abs(coef.reindex(ref.index).to_numpy() - ref.to_numpy())))


def step_at(times: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """A right-continuous step function (1 before its first time) evaluated at ``at``.

    Examples
    --------
    >>> step_at(np.array([0.0, 5.0]), np.array([1.0, 0.5]), np.array([-1.0, 4.9, 5.0])).tolist()
    [1.0, 1.0, 0.5]
    """
    i = np.searchsorted(times, at, side="right") - 1
    return np.where(i >= 0, values[np.clip(i, 0, None)], 1.0)


def sup_norm(a: pd.Series, b: pd.Series) -> float:
    """``max_t |a(t) - b(t)|`` of two survival step functions indexed by time.

    Examples
    --------
    >>> sup_norm(pd.Series([1.0, 0.5], index=[0.0, 2.0]), pd.Series([1.0, 0.4], index=[0.0, 3.0]))
    0.5
    """
    t = np.union1d(a.index.to_numpy(float), b.index.to_numpy(float))
    fa = step_at(a.index.to_numpy(float), a.to_numpy(float), t)
    fb = step_at(b.index.to_numpy(float), b.to_numpy(float), t)
    return float(np.max(np.abs(fa - fb)))


class KaplanMeier(Estimand):
    """Overall survival of the lung data (Kaplan-Meier)."""

    key, title, peer = "km", "Kaplan-Meier", "lifelines"
    metric = "sup-norm of ΔS(t)"
    columns = ("time", "status")

    def pooled_fit(self) -> pd.Series:
        from lifelines import KaplanMeierFitter

        df = self._pooled
        km = KaplanMeierFitter().fit(df["time"], df["status"])
        return km.survival_function_.iloc[:, 0]

    def run(self, fed: sf.Federation, variant: Variant) -> Release:
        return sf.kaplan_meier(fed, "time", "status", **_options(variant))

    def error(self, value: Any, ref: Any) -> float:
        curve = value.value.survival["survival"] if isinstance(value, Release) else value
        return sup_norm(curve, ref)


class LogRank(Estimand):
    """Log-rank test of survival by sex (lung)."""

    key, title, peer = "logrank", "log-rank (by sex)", "lifelines"
    metric = "|Δχ²|"
    columns = ("time", "status", "sex")

    def pooled_fit(self) -> float:
        from lifelines.statistics import logrank_test

        df = self._pooled
        m, f = df[df["sex"] == "M"], df[df["sex"] == "F"]
        return float(logrank_test(m["time"], f["time"], m["status"], f["status"])
                     .test_statistic)

    def run(self, fed: sf.Federation, variant: Variant) -> Release:
        return sf.logrank(fed, "time", "status", "sex", **_options(variant))

    def error(self, value: Any, ref: Any) -> float:
        stat = value.value.statistic if isinstance(value, Release) else value
        return float(abs(stat - ref))


def estimands(lung_data: Dataset, breast_data: Dataset) -> list[Estimand]:
    """The compared estimands, in report order.

    Examples
    --------
    >>> from safeflow.benchmarking.data import breast_cancer, lung
    >>> [e.key for e in estimands(lung(), breast_cancer())]
    ['table1', 'logistic', 'linear', 'cox', 'km', 'logrank']
    """
    return [Table1(lung_data), Logistic(breast_data), Linear(lung_data), Cox(lung_data),
            KaplanMeier(lung_data), LogRank(lung_data)]


def release_costs(release: Release) -> Mapping[str, Any]:
    """Bytes across borders, rounds and ε of a release, from its facts.

    Examples
    --------
    >>> r = Release(1, {"run": {"border_bytes": {"CN->NL": 10, "NL->CN": 5}}}, "x", "plain")
    >>> dict(release_costs(r))
    {'bytes': 15, 'rounds': 1, 'epsilon': None}
    """
    eps = release.epsilon
    return {"bytes": release.bytes_cross_border, "rounds": release.rounds,
            "epsilon": None if eps is None else str(eps)}


__all__ = ["Cox", "Estimand", "KaplanMeier", "Linear", "LogRank", "Logistic", "Table1",
           "estimands", "release_costs", "step_at", "sup_norm"]

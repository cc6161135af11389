"""Generalised linear models fitted exactly by federated Newton / IRLS.

* ``gaussian``: one round. Sites sum ``XᵀX``, ``Xᵀy``, ``yᵀy`` and ``n``; customs solves
  the normal equations and computes the residual sum of squares exactly (rational
  arithmetic on the decoded sums).
* ``binomial`` (logit) and ``poisson`` (log, optional offset): each round, at the public
  current ``β``, sites sum the log-likelihood, the score ``Xᵀ(y − μ)`` and the information
  ``XᵀWX``: exactly what a pooled Newton iteration needs, so the federated fit takes as
  many rounds as pooled Newton takes evaluations (:mod:`safeflow.analyses.newton`).

Categorical covariates expand into indicator columns for every declared level but the
first (the reference), named like statsmodels' formulas: ``sex[T.2]``. Every statistic has
a public bound derived from declared covariate bounds, ``β`` and ``max_rows_per_site``
(none needed from the data); a covariate without declared bounds triggers the protocols'
scale negotiation.

Examples
--------
>>> GLM({"y": "leak", "X": ["arm"], "family": "binomial"}).name
'glm'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import numpy as np
from scipy import special

from safeflow.analyses._base import Analysis, Done, Next, check_columns, count_spec, register
from safeflow.analyses.glm_dp import gaussian_dp_statistics
from safeflow.analyses.glm_result import GLMResult
from safeflow.analyses.newton import information, newton_start, newton_step
from safeflow.data import Column, Schema, SiteData
from safeflow.errors import ConvergenceError, DataError, InvalidParameter
from safeflow.protocols.dp import DPStatistics
from safeflow.statspec import StatLayout, StatSpec

FAMILIES = ("gaussian", "binomial", "poisson")


def design_names(schema: Schema, X: list[str]) -> list[str]:
    """Column names of the design matrix: intercept, numeric columns, indicators.

    Examples
    --------
    >>> from safeflow.data import Column, Schema
    >>> s = Schema([Column("age", bounds=(0, 99)),
    ...             Column("arm", kind="categorical", categories=("ic", "ec"))])
    >>> design_names(s, ["age", "arm"])
    ['Intercept', 'age', 'arm[T.ec]']
    """
    names = ["Intercept"]
    for c in check_columns(schema, X, what="covariate"):
        if c.kind == "numeric":
            names.append(c.name)
        else:
            names += [f"{c.name}[T.{lev}]" for lev in (c.categories or ())[1:]]
    return names


def _xmax(schema: Schema, X: list[str]) -> list[float | None]:
    out: list[float | None] = [1.0]
    for c in check_columns(schema, X, what="covariate"):
        if c.kind == "numeric":
            b = schema.public_bounds(c.name)
            out.append(None if b is None else max(abs(b[0]), abs(b[1]), 1e-300))
        else:
            out += [1.0] * (len(c.categories or ()) - 1)
    return out


def design_matrix(batch: Any, cols: list[Column]) -> np.ndarray:
    """Design matrix of one batch (intercept first, then columns in ``cols`` order)."""
    n = len(batch)
    parts = [np.ones((n, 1))]
    for c in cols:
        x = np.asarray(batch[c.name])
        if c.kind == "numeric":
            parts.append(x.astype(float).reshape(-1, 1))
        else:
            k = len(c.categories or ())
            parts.append((x.reshape(-1, 1) == np.arange(1, k)).astype(float))
    return np.hstack(parts)


@register
class GLM(Analysis):
    """Federated GLM (see module docstring)."""

    name = "glm"
    kind = "regression"

    def columns(self) -> list[str]:
        off = self.params.get("offset")
        return [self.params["y"], *self.params["X"], *([off] if off else [])]

    @property
    def family(self) -> str:
        return str(self.params["family"])

    def _y_col(self, schema: Schema) -> Column:
        (col,) = check_columns(schema, [self.params["y"]], what="outcome")
        if self.family == "binomial" and col.kind != "numeric" and len(col.categories or ()) != 2:
            raise InvalidParameter(f"binomial outcome {col.name!r} must have two levels")
        return col

    def _bounds(self, schema: Schema, ctx: Mapping[str, Any]) -> dict[str, float | None]:
        rows = float(ctx["max_rows_per_site"])
        xm = _xmax(schema, list(self.params["X"]))
        x = None if any(v is None for v in xm) else max(v for v in xm if v is not None)
        ycol = self._y_col(schema)
        yb = schema.public_bounds(ycol.name) if ycol.kind == "numeric" else (0.0, 1.0)
        ymax = None if yb is None else max(abs(yb[0]), abs(yb[1]), 1.0)
        beta = np.abs(np.asarray(self.state.get("beta", [0.0] * len(xm)), dtype=float))
        off = self.params.get("offset")
        ob = schema.public_bounds(off) if off else (0.0, 0.0)
        eta = (None if x is None or ob is None
               else float(beta @ np.array(xm, dtype=float)) + max(abs(ob[0]), abs(ob[1])))

        def cap(v: float | None) -> float | None:
            return None if v is None or not math.isfinite(v) or v > 1e300 else max(v, 1.0)

        if self.family == "gaussian":
            return {"xtx": cap(None if x is None else rows * x * x),
                    "xty": cap(None if x is None or ymax is None else rows * x * ymax),
                    "yty": cap(None if ymax is None else rows * ymax * ymax)}
        if self.family == "binomial":
            return {"grad": cap(None if x is None else rows * x),
                    "info": cap(None if x is None else rows * x * x / 4),
                    "loglik": cap(None if eta is None else rows * (eta + 1.0))}
        mu = None if eta is None or eta > 690 else math.exp(eta)
        ok = None not in (x, mu, ymax)
        return {"grad": cap(rows * x * (ymax + mu) if ok else None),  # type: ignore[operator]
                "info": cap(rows * x * x * mu if ok else None),  # type: ignore[operator]
                "loglik": cap(rows * (ymax * eta + mu + special.gammaln(ymax + 1))  # type: ignore[operator]
                              if ok else None),
                "ylogy": cap(None if ymax is None else rows * ymax * max(math.log(ymax), 1.0))}

    def layout(self, schema: Schema, ctx: Mapping[str, Any]) -> StatLayout:
        if self.family not in FAMILIES:
            raise InvalidParameter(f"family must be one of {FAMILIES}; got {self.family!r}")
        p = len(design_names(schema, list(self.params["X"])))
        b = self._bounds(schema, ctx)
        specs = [count_spec("n", (1,), ctx), count_spec("dropped", (1,), ctx)]
        if self.family == "gaussian":
            specs += [StatSpec("xtx", (p, p), "real", b["xtx"]),
                      StatSpec("xty", (p,), "real", b["xty"]),
                      StatSpec("yty", (1,), "real", b["yty"])]
        else:
            specs += [StatSpec("grad", (p,), "real", b["grad"]),
                      StatSpec("info", (p, p), "real", b["info"]),
                      StatSpec("loglik", (1,), "real", b["loglik"]),
                      StatSpec("ysum", (1,), "real", b.get("ylogy") or b["grad"])]
            if self.family == "poisson":
                specs += [StatSpec("ylogy", (1,), "real", b["ylogy"]),
                          StatSpec("lgamma", (1,), "real", b["ylogy"])]
        return StatLayout(tuple(specs))

    def dp_statistics(self, schema: Schema, ctx: Mapping[str, Any]) -> DPStatistics:
        """Gaussian family only: noisy, well-scaled sufficient statistics
        (:mod:`safeflow.analyses.glm_dp`)."""
        if self.family != "gaussian" or self.params.get("offset"):
            raise InvalidParameter(
                "differential privacy is available for glm(family='gaussian') without an "
                "offset (noisy sufficient statistics); binomial and poisson fits need many "
                "rounds, each of which would spend budget")
        return gaussian_dp_statistics(schema, list(self.params["X"]), self._y_col(schema).name)

    def local(self, data: SiteData, ctx: Mapping[str, Any]) -> dict[str, np.ndarray]:
        schema = ctx["public_schema"]
        layout = self.layout(schema, ctx)
        out = {s.name: np.zeros(s.shape) for s in layout.specs}
        cols = check_columns(schema, list(self.params["X"]), what="covariate")
        ycol = self._y_col(schema)
        beta = np.asarray(self.state.get("beta", []), dtype=float)
        off = self.params.get("offset")
        for batch in data.batches(self.columns()):
            X = design_matrix(batch, cols)
            y = np.asarray(batch[ycol.name], dtype=float)
            if self.family == "binomial" and np.any((y != 0) & (y != 1)):
                raise DataError(f"binomial outcome {ycol.name!r} must be 0/1 (or two declared "
                                "levels); recode it or declare kind='binary'")
            if self.family == "poisson" and np.any((y < 0) | (y != np.round(y))):
                raise DataError(f"poisson outcome {ycol.name!r} must hold non-negative counts")
            out["n"][0] += len(y)
            if self.family == "gaussian":
                out["xtx"] += X.T @ X
                out["xty"] += X.T @ y
                out["yty"][0] += float(y @ y)
                continue
            eta = X @ beta + (np.asarray(batch[off], dtype=float) if off else 0.0)
            out["ysum"][0] += float(y.sum())
            if self.family == "binomial":
                mu = special.expit(eta)
                w = mu * (1.0 - mu)
                out["loglik"][0] += float(np.sum(y * eta - np.logaddexp(0.0, eta)))
            else:
                mu = np.exp(eta)
                w = mu
                out["loglik"][0] += float(np.sum(y * eta - mu))
                out["ylogy"][0] += float(np.sum(special.xlogy(y, y)))
                out["lgamma"][0] += float(np.sum(special.gammaln(y + 1.0)))
            out["grad"] += X.T @ (y - mu)
            out["info"] += (X * w[:, None]).T @ X
        out["dropped"][0] = sum(data.drop_counts.values())
        return out

    def combine(self, totals: Mapping[str, np.ndarray], schema: Schema,
                ctx: Mapping[str, Any]) -> Done | Next:
        names = design_names(schema, list(self.params["X"]))
        p, n = len(names), int(totals["n"][0])
        if n <= p:
            raise ConvergenceError(
                f"{n} rows for {p} parameters: the model is not identifiable; use fewer "
                "covariates or more sites")
        lam = float(self.params.get("penalty", 0.0))
        pen = np.full(p, lam)
        pen[0] = 0.0
        facts = {"sdc": {"residual_dof": n - p, "n_params": p, "n": n,
                         "params_per_n": p / n},
                 "rows_dropped": int(totals["dropped"][0])}
        if self.family == "gaussian":
            return Done(self._gaussian(totals, names, n, pen), facts)
        beta = np.asarray(self.state["beta"], dtype=float)
        obj = float(totals["loglik"][0]) - 0.5 * float(pen @ beta**2)
        grad = np.asarray(totals["grad"], dtype=float) - pen * beta
        info = np.asarray(totals["info"], dtype=float) + np.diag(pen)
        if self.family == "binomial":
            ysum = float(totals["ysum"][0])
            facts["sdc"]["min_cell"] = int(min(ysum, n - ysum))
            if lam == 0 and float(totals["loglik"][0]) > -1e-8 * n:
                raise ConvergenceError(
                    "the fit diverges (perfect separation): the covariates predict the outcome "
                    "perfectly; drop or merge a covariate, or add a ridge penalty via penalty=")
        out = newton_step(self.state, obj, grad, -info, tol=float(self.params.get("tol", 1e-10)),
                          max_iter=int(self.params.get("max_iter", 50)), names=names)
        if not out.done:
            return Next(out.state)
        cov = np.linalg.inv(information(-info, names))
        se = np.sqrt(np.diag(cov))
        wild = [nm for nm, b, e in zip(names, beta, se, strict=True) if e > 1e3 * max(1.0, abs(b))]
        if wild and lam == 0:
            raise ConvergenceError(
                f"the fit is not identified for {', '.join(wild)} (quasi-complete separation or "
                "an empty category): drop or merge those levels, or add a ridge penalty via "
                "penalty=")
        loglik = float(totals["loglik"][0])
        if self.family == "poisson":
            loglik -= float(totals["lgamma"][0])
            deviance = 2.0 * (float(totals["ylogy"][0]) - float(totals["ysum"][0])
                              - float(totals["loglik"][0]))
        else:
            deviance = -2.0 * loglik
        return Done(GLMResult(names=names, coef=beta, cov=cov, family=self.family, n=n,
                              loglik=loglik, deviance=deviance, iterations=out.evaluations,
                              scale=1.0, penalty=lam), facts)

    def initial_state(self, schema: Schema) -> dict[str, Any]:
        """Start at β = 0 (binomial, poisson); gaussian needs no state."""
        return newton_start(len(design_names(schema, list(self.params["X"]))))

    def _gaussian(self, totals: Mapping[str, np.ndarray], names: list[str], n: int,
                  pen: np.ndarray) -> GLMResult:
        xtx = np.asarray(totals["xtx"], dtype=float)
        xty = np.asarray(totals["xty"], dtype=float)
        info = information(-(xtx + np.diag(pen)), names)
        beta = np.linalg.solve(info, xty)
        # RSS = yᵀy − 2βᵀXᵀy + βᵀXᵀXβ, in exact rationals (no cancellation error)
        fb = [Fraction(float(b)) for b in beta]
        fy = [Fraction(float(v)) for v in xty]
        rss = Fraction(float(totals["yty"][0])) - 2 * sum(b * v for b, v in zip(fb, fy,
                                                                                strict=True))
        rss += sum(fb[i] * Fraction(float(xtx[i, j])) * fb[j]
                   for i in range(len(fb)) for j in range(len(fb)))
        rss_f = max(float(rss), 0.0)
        p = len(names)
        scale = rss_f / (n - p)
        cov = np.linalg.inv(info) * scale
        loglik = -0.5 * n * (math.log(2 * math.pi * rss_f / n) + 1.0) if rss_f > 0 else math.inf
        return GLMResult(names=names, coef=beta, cov=cov, family="gaussian", n=n, loglik=loglik,
                         deviance=rss_f, iterations=1, scale=scale,
                         penalty=float(pen.max(initial=0.0)))

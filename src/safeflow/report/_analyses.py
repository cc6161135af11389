"""One renderer per analysis: what the result shows, in tables and figures.

Each renderer takes the release and the item's id fragment and returns the item's content
(the provenance block is added by :mod:`safeflow.report._provenance`). A renderer reads
only the documented result types (``GLMResult``, ``CoxResult``, ``KaplanMeierResult``,
``LogRankResult`` and the Table 1 / histogram / crosstab DataFrames).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from safeflow.report import plots
from safeflow.report._markup import (
    DASH,
    SUPPRESSED,
    Markup,
    figure,
    intro,
    join,
    missing,
    num,
    pvalue,
    table,
    tag,
)

Renderer = Callable[[Any, str], Markup]

#: Section id of the first item of each analysis (later ones add their label's id fragment).
SECTION_IDS = {"describe": "table1", "glm": "glm", "kaplan_meier": "kaplan-meier",
               "logrank": "logrank", "cox": "cox", "histogram": "histogram",
               "crosstab": "crosstab"}

KIND_TITLES = {"describe": "Table 1: characteristics of the patients",
               "glm": "Regression model", "kaplan_meier": "Survival curves (Kaplan-Meier)",
               "logrank": "Log-rank test", "cox": "Cox proportional-hazards model",
               "histogram": "Histogram", "crosstab": "Cross-tabulation"}


def _level(alpha: float) -> str:
    return f"{100 * (1 - float(alpha)):.0f}%"


def _ci(lo: float, hi: float, digits: int = 2) -> Markup:
    if missing(lo) or missing(hi):
        return DASH
    return join([num(lo, digits), "–", num(hi, digits)])


# ------------------------------------------------------------------ Table 1


def _col_label(key: tuple[Any, ...], names: list[str], by: str) -> str:
    parts = [str(v) if n == "site" else f"{by} = {v}" for n, v in zip(names, key, strict=True)]
    return " · ".join(parts) or "all patients"


def describe(rel: Any, s: str) -> Markup:
    """Table 1: mean (SD) of measurements, n (%) of categories, one column per group."""
    df: pd.DataFrame = rel.value
    names = [c for c in ("site", "group") if c in df.columns]
    by = str(df.attrs.get("by") or "group")
    keys = (list(dict.fromkeys(df[names].itertuples(index=False, name=None)))
            if names else [()])
    index = {k: i for i, k in enumerate(keys)}
    headers = ["", *(_col_label(k, names, by) for k in keys)]
    rows: list[list[Any]] = []
    classes: list[str | None] = []
    n_suppressed = 0
    for var, block in df.groupby("variable", sort=False):
        levels = block["level"].astype(str)
        if levels.eq("").all():
            cells: list[Any] = [DASH] * len(keys)
            for _, r in block.iterrows():
                key = tuple(r[c] for c in names)
                if r["n"] and missing(r["mean"]):
                    cell, n_suppressed = SUPPRESSED, n_suppressed + 1
                elif not r["n"]:
                    cell = DASH
                else:
                    cell = join([num(r["mean"], 1), " (", num(r["sd"], 1), ") ",
                                 tag("span", f"n = {int(r['n'])}", class_="n")])
                cells[index[key]] = cell
            rows.append([f"{var}, mean (SD)", *cells])
            classes.append("var")
            continue
        ns: list[Any] = [DASH] * len(keys)
        per_level: dict[str, list[Any]] = {}
        for _, r in block.iterrows():
            key = tuple(r[c] for c in names)
            ns[index[key]] = tag("span", f"n = {int(r['n'])}", class_="n")
            cells = per_level.setdefault(str(r["level"]), [DASH] * len(keys))
            if missing(r["count"]):
                cells[index[key]], n_suppressed = SUPPRESSED, n_suppressed + 1
            else:
                cells[index[key]] = join([num(int(r["count"])), " (", num(r["percent"], 1),
                                          "%)"])
        rows.append([f"{var}, n (%)", *ns])
        classes.append("var")
        for lvl, cells in per_level.items():
            rows.append([lvl, *cells])
            classes.append("level")
    note = (f" {n_suppressed} cell(s) were suppressed by disclosure control: too few patients "
            "to publish safely." if n_suppressed else "")
    return join([
        intro("Who the patients are. Measurements show the mean and standard deviation (SD); "
              "categories show the number and percentage of patients. The numbers are computed "
              "over all hospitals together, as if the records were pooled, but no record left "
              "its hospital." + note),
        table(headers, rows, numeric=range(1, len(headers)), row_classes=classes,
              id=f"table-{s}", class_="table1"),
    ])


# ------------------------------------------------------------------ regression


def _exp(x: Any) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.exp(np.asarray(x, dtype=float))


#: A ratio interval wider than this factor is not drawn (separation, a near-empty level).
_TOO_WIDE = 1e6


def _forest(s: str, names: list[str], est: Any, lo: Any, hi: Any, *, xlabel: str,
            ratio: bool, what: str) -> Markup:
    est, lo, hi = (np.asarray(v, dtype=float) for v in (est, lo, hi))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ok = np.isfinite(est) & np.isfinite(lo) & np.isfinite(hi)
        if ratio:
            ok &= (lo > 0) & (hi / np.where(lo > 0, lo, 1.0) < _TOO_WIDE)
    left_out = [n for n, k in zip(names, ok, strict=True) if not k]
    names = [n for n, k in zip(names, ok, strict=True) if k]
    if not names:
        return Markup("")
    est, lo, hi = est[ok], lo[ok], hi[ok]
    p = plots.forest_plot(names, est, lo, hi, xlabel=xlabel, ratio=ratio)
    alt = (f"Forest plot of {what}: " + "; ".join(
        f"{n} {e:.2f} ({a:.2f} to {b:.2f})" for n, e, a, b in zip(names, est, lo, hi,
                                                                   strict=True)))
    note = (f" Not drawn, because the interval is too wide to estimate (very few patients "
            f"or events in that group): {', '.join(left_out)}." if left_out else "")
    return figure(p.uri, alt, id=f"forest-{s}", width=p.width, height=p.height,
                  caption=f"Each square is an estimate and its line the {xlabel}. A line "
                          f"crossing the dashed line ({1 if ratio else 0}) is compatible with "
                          "no effect." + note)


def glm(rel: Any, s: str) -> Markup:
    """Coefficient table (odds or rate ratios for log/logit links) and a forest plot."""
    v = rel.value
    sm = v.summary
    level = _level(v.alpha)
    ratio_name = {"binomial": "odds ratio", "poisson": "rate ratio"}.get(v.family)
    headers = ["term", "coef", "SE", "z", "p"]
    if ratio_name:
        headers += [ratio_name.split()[0].capitalize() + " ratio"]
    headers += [f"{level} CI" + (f" ({ratio_name})" if ratio_name else "")]
    rows = []
    for term, r in sm.iterrows():
        row = [term, num(r["coef"], 3), num(r["se"], 3), num(r["z"], 2), pvalue(r["p"])]
        if ratio_name:
            row += [num(_exp(r["coef"]), 2), _ci(_exp(r["ci_low"]), _exp(r["ci_high"]))]
        else:
            row += [_ci(r["ci_low"], r["ci_high"], 3)]
        rows.append(row)
    fit = table(["n", "deviance", "AIC", "Newton steps"],
                [[num(v.n), num(v.deviance, 2), num(v.aic, 2), num(v.iterations)]],
                numeric=range(4), caption="Fit")
    terms = sm.drop(index="Intercept", errors="ignore")
    if ratio_name:
        est, lo, hi = (_exp(terms[c].to_numpy()) for c in ("coef", "ci_low", "ci_high"))
        meaning = (f"An {ratio_name} above 1 means higher odds of the outcome for that "
                   "characteristic (or per unit), below 1 lower odds"
                   if v.family == "binomial" else
                   f"A {ratio_name} above 1 means a higher event rate, below 1 a lower one")
    else:
        est, lo, hi = (terms[c].to_numpy() for c in ("coef", "ci_low", "ci_high"))
        meaning = "A coefficient is the change in the outcome per unit of the covariate"
    return join([
        intro(f"A {v.family} regression model fitted over all hospitals' patients together; "
              "the estimates equal those of a pooled analysis, but only protected sums "
              f"crossed the borders. {meaning}; p is the Wald test and the interval a "
              f"{level} confidence interval."),
        table(headers, rows, numeric=range(1, len(headers)), id=f"coef-{s}"),
        _forest(s, [str(t) for t in terms.index], est, lo, hi,
                xlabel=f"{ratio_name or 'coefficient'} ({level} CI)", ratio=bool(ratio_name),
                what=f"{ratio_name or 'coefficient'}s"),
        fit,
    ])


def cox(rel: Any, s: str) -> Markup:
    """Hazard-ratio table and forest plot of a Cox model."""
    v = rel.value
    sm = v.summary
    level = _level(v.alpha)
    rows = [[term, num(r["coef"], 3), num(r["se"], 3), num(r["z"], 2), pvalue(r["p"]),
             num(r["exp(coef)"], 2), _ci(_exp(r["ci_low"]), _exp(r["ci_high"]))]
            for term, r in sm.iterrows()]
    stat, df, p = v.log_likelihood_ratio_test
    fit = table(["n", "events", "ties", "strata", "Newton steps", "LR test χ²", "df", "p"],
                [[num(v.n), num(v.events), v.ties, ", ".join(v.strata) or "none",
                  num(v.iterations), num(stat, 2), num(df), pvalue(p)]],
                numeric=[0, 1, 4, 5, 6, 7], caption="Fit")
    hr = sm["exp(coef)"].to_numpy()
    return join([
        intro("How each characteristic changes the hazard (the instantaneous risk) of the "
              "event, fitted over all hospitals' patients together. A hazard ratio (HR) "
              "above 1 means a higher risk, below 1 a lower risk, per unit of the covariate "
              f"or against the reference level; the interval is a {level} confidence "
              "interval."),
        table(["covariate", "coef", "SE", "z", "p", "HR", f"{level} CI (HR)"], rows,
              numeric=range(1, 7), id=f"coef-{s}"),
        _forest(s, [str(t) for t in sm.index], hr, _exp(sm["ci_low"]),
                _exp(sm["ci_high"]), xlabel=f"hazard ratio ({level} CI)",
                ratio=True, what="hazard ratios"),
        fit,
    ])


# ------------------------------------------------------------------ survival


def _group_label(v: Any, g: str) -> str:
    return str(g) if v.by is None else f"{v.by} = {g}"


def kaplan_meier(rel: Any, s: str) -> Markup:
    """Curves with bands, the numbers at risk under the plot, and medians."""
    v = rel.value
    curves = plots.km_curves(v)
    t_max = max((float(t[-1]) for _, t, _ in curves), default=0.0)
    grid = sorted({float(x) for _, t, _ in curves for x in t})
    # a coarse public grid (disclosure control): its own points are the natural ticks
    ticks = grid if 2 <= len(grid) <= 8 else plots.km_ticks(t_max)
    p = plots.km_plot(v, ticks)
    level = _level(v.alpha)
    alt = "Kaplan-Meier survival curves: " + "; ".join(
        f"{_group_label(v, g)}, median {m if not np.isinf(m) else 'not reached'}"
        for g, m in v.summary["median"].items())
    tg = v.time_grid or {}
    grid = (f" Follow-up times are binned to a public grid of {tg['points']} points (from the "
            f"{tg.get('from', 'study')}), as disclosure control requires."
            if tg.get("points") else "")
    risk = v.at_risk_table(ticks)
    risk_rows = [[_group_label(v, g), *(num(int(x)) for x in row)]
                 for g, row in zip(risk.index, risk.to_numpy(), strict=True)]
    med = v.summary
    med_rows = [[_group_label(v, g), num(int(r["n"])), num(int(r["events"])),
                 num(int(r["censored"])),
                 "not reached" if np.isinf(r["median"]) else num(r["median"], 1)]
                for g, r in med.iterrows()]
    return join([
        intro("The share of patients still free of the event over time, per group, with "
              f"{level} confidence bands (shaded). The table under the plot gives the number "
              "of patients still at risk at each time. Event and censoring counts were summed "
              "securely over the hospitals on a public time grid."),
        figure(p.uri, alt, id=f"km-{s}", width=p.width, height=p.height,
               caption=f"Kaplan-Meier estimate with {level} log(-log) Greenwood bands." + grid),
        table([f"number at risk at {v.duration} =", *(f"{t:g}" for t in ticks)], risk_rows,
              numeric=range(1, len(ticks) + 1), id=f"numbers-at-risk-{s}",
              caption="Number at risk"),
        table(["group", "patients", "events", "censored", f"median {v.duration}"], med_rows,
              numeric=range(1, 5), caption="Median survival", id=f"median-{s}"),
    ])


def logrank(rel: Any, s: str) -> Markup:
    """The log-rank test statistic and the observed/expected events per group."""
    v = rel.value
    groups = [[f"{v.group} = {g}", num(int(r["n"])), num(int(r["observed"])),
               num(r["expected"], 1)] for g, r in v.table.iterrows()]
    return join([
        intro("Tests whether survival differs between the groups: a small p-value means the "
              "observed numbers of events differ more from those expected under equal "
              "survival than chance alone would explain."),
        table(["test", "χ²", "df", "p"],
              [["log-rank", num(v.statistic, 2), num(v.df), pvalue(v.p_value)]],
              numeric=[1, 2, 3], id=f"test-{s}"),
        table(["group", "patients", "observed events", "expected events"], groups,
              numeric=[1, 2, 3], caption="Events per group"),
    ])


# ------------------------------------------------------------------ counts


def _count_cell(x: Any) -> Any:
    return SUPPRESSED if missing(x) else num(int(x))


def histogram(rel: Any, s: str) -> Markup:
    """Counts per public bin (per group) and a bar chart."""
    df: pd.DataFrame = rel.value
    bins = list(dict.fromkeys(df["bin"].astype(str)))
    if "group" in df.columns:
        groups = list(dict.fromkeys(df["group"]))
        by = str(df.attrs.get("by") or "group")
        series = {f"{by} = {g}": [df[(df["group"] == g) & (df["bin"].astype(str) == b)]["count"]
                           .iloc[0] for b in bins] for g in groups}
    else:
        series = {"count": df["count"].tolist()}
    rows = [[b, *(_count_cell(series[k][i]) for k in series)] for i, b in enumerate(bins)]
    p = plots.bar_plot(bins, series, xlabel=str(df.attrs.get("column") or "interval"))
    alt = "Bar chart of counts per bin: " + "; ".join(
        f"{b}: " + ", ".join("suppressed" if missing(series[k][i]) else str(int(series[k][i]))
                             for k in series) for i, b in enumerate(bins))
    return join([
        intro("How many patients fall in each interval, over all hospitals. Intervals were "
              "fixed in advance (public), so only counts were summed."),
        table(["bin", *series], rows, numeric=range(1, len(series) + 1), id=f"table-{s}"),
        figure(p.uri, alt, id=f"bars-{s}", width=p.width, height=p.height,
               caption="Counts per bin (S: suppressed by disclosure control)."),
    ])


def crosstab(rel: Any, s: str) -> Markup:
    """A table of counts of two categorical columns."""
    df: pd.DataFrame = rel.value
    corner = f"{df.index.name or ''} \\ {df.columns.name or ''}".strip(" \\")
    rows = [[str(i), *(_count_cell(x) for x in row)]
            for i, row in zip(df.index, df.to_numpy(dtype=object), strict=True)]
    return join([
        intro("Number of patients for each combination of the two characteristics, over all "
              "hospitals."),
        table([corner, *(str(c) for c in df.columns)], rows, numeric=range(1, df.shape[1] + 1),
              id=f"table-{s}"),
    ])


def generic(rel: Any, s: str) -> Markup:
    """Any other analysis: its value as text."""
    return join([
        intro(f"The released value of this {rel.analysis} analysis, as text."),
        table(["", "value"], [["value", tag("pre", repr(rel.value))]], id=f"table-{s}",
              class_="wide"),
    ])


RENDERERS: dict[str, Renderer] = {"describe": describe, "glm": glm,
                                  "kaplan_meier": kaplan_meier, "logrank": logrank, "cox": cox,
                                  "histogram": histogram, "crosstab": crosstab}


def suppressed_cells(rel: Any) -> int | None:
    """Cells hidden by disclosure control in a table value (None if not a table)."""
    sdc = (rel.facts or {}).get("output", {}).get("sdc") or {}
    given = sdc.get("suppressed")
    if isinstance(given, int):
        return given
    if isinstance(given, list | tuple):
        return len(given)
    v = rel.value
    if not isinstance(v, pd.DataFrame):
        return None
    if rel.analysis == "describe" and {"level", "count", "mean", "n"} <= set(v.columns):
        cat = v["level"].astype(str) != ""
        return int((cat & v["count"].isna()).sum()
                   + (~cat & v["mean"].isna() & (v["n"] > 0)).sum())
    if rel.analysis == "histogram" and "count" in v.columns:
        return int(v["count"].isna().sum())
    if rel.analysis == "crosstab":
        return int(v.isna().to_numpy().sum())
    return None


__all__ = ["KIND_TITLES", "RENDERERS", "SECTION_IDS", "generic", "suppressed_cells"]

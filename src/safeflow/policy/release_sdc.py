"""Automatic suppression: release a table with its disclosive cells hidden, not a denial.

When the SDC profile fails a frequency or Table 1 output only on its cell rules (minimum
count, zeros), customs may suppress instead of deny: primary suppression of the failing
cells and secondary suppression so that no hidden cell can be recomputed from the margins
(:func:`~safeflow.policy.sdc.suppress_table`), per variable block. The facts are then
recomputed on what is actually released and the decision is taken again; the certificate
covers the suppressed table.

Examples
--------
>>> import pandas as pd
>>> t = pd.DataFrame({"a": [30, 2, 40], "b": [25, 40, 33], "c": [50, 60, 70]},
...                  index=pd.Index(["x", "y", "z"], name="r"))
>>> value, sdc = suppress_release("crosstab", t, "acro")
>>> int(value.isna().to_numpy().sum()), sdc["min_cell"]
(4, 33)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from safeflow.policy.sdc import PROFILES, suppress_table

SUPPRESSIBLE = ("describe", "crosstab", "histogram")


def _cell_facts(counts: list[Any]) -> dict[str, Any]:
    shown = [int(c) for c in counts if not pd.isna(c)]
    nonzero = [c for c in shown if c > 0]
    # nothing left to show: unmeasured, so the profile still refuses (margins only)
    return {"min_cell": min(nonzero, default=None), "has_zero": any(c == 0 for c in shown)}


def _describe(value: pd.DataFrame, profile: str) -> tuple[pd.DataFrame, list[Any]]:
    out = value.copy()
    out["mean"] = out["mean"].astype("Float64")
    out["sd"] = out["sd"].astype("Float64")
    out["percent"] = out["percent"].astype("Float64")
    threshold = PROFILES[profile].min_cell
    cells: list[Any] = []
    keys = [k for k in ("site",) if k in out]
    gcol = "group" if "group" in out else None
    for _, block in out.groupby(["variable", *keys], sort=False):
        if block["level"].eq("").all():  # numeric: hide mean and SD of small groups
            small = (block["n"] > 0) & (block["n"] < threshold)
            out.loc[block.index[small], ["mean", "sd"]] = pd.NA
            cells += block["n"].tolist()
            continue
        rows = block[gcol] if gcol else pd.Series("", index=block.index)
        table = pd.pivot_table(block.assign(_g=rows), index="_g", columns="level",
                               values="count", aggfunc="first", sort=False).astype(int)
        res = suppress_table(table, profile).table
        for idx, row in block.iterrows():
            v = res.loc[rows[idx], row["level"]]
            if pd.isna(v):
                out.loc[idx, ["count", "percent"]] = pd.NA
        cells += [v for v in res.to_numpy().ravel()]
    return out, cells


def _histogram(value: pd.DataFrame, profile: str) -> tuple[pd.DataFrame, list[Any]]:
    out = value.copy()
    groups = out["group"] if "group" in out else pd.Series("", index=out.index)
    table = pd.pivot_table(out.assign(_g=groups), index="_g", columns="bin", values="count",
                           aggfunc="first", sort=False).astype(int)
    res = suppress_table(table, profile).table
    out["count"] = [res.loc[g, b] for g, b in zip(groups, out["bin"], strict=True)]
    out["count"] = out["count"].astype("Int64")
    return out, list(res.to_numpy().ravel())


def suppress_release(analysis: str, value: Any, profile: str) -> tuple[Any, dict[str, Any]]:
    """The suppressed value and its recomputed cell facts (``min_cell``, ``has_zero``).

    Raises ``KeyError`` for an analysis whose output cannot be suppressed cell by cell.
    """
    if analysis == "crosstab":
        res = suppress_table(value.astype(int), profile)
        return res.table, _cell_facts(list(res.table.to_numpy().ravel()))
    if analysis == "histogram":
        out, cells = _histogram(value, profile)
        return out, _cell_facts(cells)
    if analysis == "describe":
        out, cells = _describe(value, profile)
        return out, _cell_facts([c for c in cells if not (isinstance(c, float) and np.isnan(c))])
    raise KeyError(analysis)

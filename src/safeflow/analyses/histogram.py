"""Histogram of a numeric column over public bin edges (optionally by group).

Bins follow :func:`numpy.histogram`: ``[e0, e1), [e1, e2), ..., [e_{k-1}, e_k]``. Values
outside the edges are counted in ``below`` and ``above`` rows, so nothing vanishes silently.

Examples
--------
>>> Histogram({"column": "age", "bins": [0, 50, 100], "by": None}).name
'histogram'
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

from safeflow.analyses._base import (
    Analysis,
    Done,
    check_columns,
    count_spec,
    group_codes,
    levels,
    register,
)
from safeflow.analyses.describe import _table_facts
from safeflow.data import Schema, SiteData
from safeflow.errors import InvalidParameter
from safeflow.protocols.dp import DPStatistics, NoiseGroup
from safeflow.statspec import StatLayout


def check_edges(bins: Any) -> list[float]:
    """Validate public bin edges: at least two, finite, strictly increasing.

    Examples
    --------
    >>> check_edges([0, 1, 2])
    [0.0, 1.0, 2.0]
    """
    try:
        edges = [float(b) for b in bins]
    except (TypeError, ValueError) as e:
        raise InvalidParameter(f"bins must be a list of numbers; got {bins!r}") from e
    if len(edges) < 2 or not all(np.isfinite(edges)) or any(
            b <= a for a, b in itertools.pairwise(edges)):
        raise InvalidParameter(
            "bins must be at least two finite, strictly increasing edges, e.g. [20, 30, 40]; "
            f"got {bins!r}")
    return edges


@register
class Histogram(Analysis):
    """Counts per bin (and group)."""

    name = "histogram"
    kind = "freq_table"

    def columns(self) -> list[str]:
        by = self.params.get("by")
        return [self.params["column"]] + ([by] if by else [])

    def _groups(self, schema: Schema) -> list[str]:
        check_columns(schema, [self.params["column"]], kinds=("numeric",))
        by = self.params.get("by")
        if by:
            check_columns(schema, [by], kinds=("categorical", "binary"), what="group column")
            return levels(schema.column(by))
        return [""]

    def layout(self, schema: Schema, ctx: Mapping[str, Any]) -> StatLayout:
        g, k = len(self._groups(schema)), len(check_edges(self.params["bins"])) - 1
        return StatLayout((count_spec("counts", (g, k + 2), ctx),
                           count_spec("dropped", (1,), ctx)))

    def dp_statistics(self, schema: Schema, ctx: Mapping[str, Any]) -> DPStatistics:
        """Under DP every row adds 1 to one cell of (counts, dropped)."""
        self._groups(schema)
        return DPStatistics((NoiseGroup(("counts", "dropped"), "count", Fraction(1)),))

    def local(self, data: SiteData, ctx: Mapping[str, Any]) -> dict[str, np.ndarray]:
        edges = np.asarray(check_edges(self.params["bins"]))
        g, k = len(self._groups(ctx["public_schema"])), len(edges) - 1
        counts = np.zeros((g, k + 2))
        for batch in data.batches(self.columns()):
            x = batch[self.params["column"]]
            grp = group_codes(batch, self.params.get("by"), len(batch))
            idx = np.searchsorted(edges, x, side="right")  # 0: below; k+1: above
            idx[x == edges[-1]] = k  # the last bin is closed
            counts += np.bincount(grp * (k + 2) + idx, minlength=g * (k + 2)).reshape(g, k + 2)
        return {"counts": counts, "dropped": np.array([sum(data.drop_counts.values())])}

    def combine(self, totals: Mapping[str, np.ndarray], schema: Schema,
                ctx: Mapping[str, Any]) -> Done:
        edges = check_edges(self.params["bins"])
        groups = self._groups(schema)
        labels = (["below"] + [f"[{a:g}, {b:g})" for a, b in itertools.pairwise(edges)]
                  + ["above"])
        labels[-2] = labels[-2][:-1] + "]"
        recs = []
        for gi, grp in enumerate(groups):
            for bi, lab in enumerate(labels):
                lo = edges[bi - 1] if 0 < bi <= len(edges) else np.nan
                hi = edges[bi] if bi < len(edges) else np.nan
                recs.append({"group": grp, "bin": lab, "lower": lo, "upper": hi,
                             "count": int(totals["counts"][gi, bi])})
        df = pd.DataFrame.from_records(recs)
        if not self.params.get("by"):
            df = df.drop(columns=["group"])
        df.attrs.update(column=self.params["column"], by=self.params.get("by"))
        cells = [int(c) for c in totals["counts"][:, 1:-1].ravel()]
        return Done(df, _table_facts(cells, total_rows=int(totals["counts"].sum()),
                                     dropped=int(totals["dropped"][0])))

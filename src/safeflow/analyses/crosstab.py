"""Cross-tabulation of two categorical columns (counts, like :func:`pandas.crosstab`).

Examples
--------
>>> Crosstab({"rows": "sex", "cols": "arm"}).name
'crosstab'
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

from safeflow.analyses._base import Analysis, Done, check_columns, count_spec, levels, register
from safeflow.analyses.describe import _table_facts
from safeflow.data import Schema, SiteData
from safeflow.protocols.dp import DPStatistics, NoiseGroup
from safeflow.statspec import StatLayout


@register
class Crosstab(Analysis):
    """Counts per (row level, column level)."""

    name = "crosstab"
    kind = "freq_table"

    def columns(self) -> list[str]:
        return [self.params["rows"], self.params["cols"]]

    def _dims(self, schema: Schema) -> tuple[list[str], list[str]]:
        r, c = check_columns(schema, self.columns(), kinds=("categorical", "binary"))
        return levels(r), levels(c)

    def layout(self, schema: Schema, ctx: Mapping[str, Any]) -> StatLayout:
        r, c = self._dims(schema)
        return StatLayout((count_spec("counts", (len(r), len(c)), ctx),
                           count_spec("dropped", (1,), ctx)))

    def dp_statistics(self, schema: Schema, ctx: Mapping[str, Any]) -> DPStatistics:
        """Under DP every row adds 1 to one cell of (counts, dropped)."""
        self._dims(schema)
        return DPStatistics((NoiseGroup(("counts", "dropped"), "count", Fraction(1)),))

    def local(self, data: SiteData, ctx: Mapping[str, Any]) -> dict[str, np.ndarray]:
        r, c = self._dims(ctx["public_schema"])
        counts = np.zeros((len(r), len(c)))
        for batch in data.batches(self.columns()):
            a = np.asarray(batch[self.params["rows"]], dtype=np.int64)
            b = np.asarray(batch[self.params["cols"]], dtype=np.int64)
            counts += np.bincount(a * len(c) + b, minlength=len(r) * len(c)).reshape(counts.shape)
        return {"counts": counts, "dropped": np.array([sum(data.drop_counts.values())])}

    def combine(self, totals: Mapping[str, np.ndarray], schema: Schema,
                ctx: Mapping[str, Any]) -> Done:
        r, c = self._dims(schema)
        df = pd.DataFrame(np.asarray(totals["counts"], dtype=np.int64),
                          index=pd.Index(r, name=self.params["rows"]),
                          columns=pd.Index(c, name=self.params["cols"]))
        cells = [int(v) for v in df.to_numpy().ravel()]
        return Done(df, _table_facts(cells, total_rows=int(df.to_numpy().sum()),
                                     dropped=int(totals["dropped"][0])))

"""Table 1: n, mean and SD of numeric columns; counts and percentages of categories.

Each site sums, per group (and per site slot when ``by_site``): row counts, ``Σx``,
``Σx²``, category counts, and for the dominance check ``max|x|`` and the sum of its two
largest ``|x|``. From the totals customs computes the mean and SD exactly (rational
arithmetic on the decoded sums, one rounding), and *conservative* dominance facts: the
sum over sites of each site's top-two contributions bounds the pooled top-two share from
above, so the n-k and p-ratio rules can only err towards suppression, and no individual
value is revealed to anyone.

Examples
--------
>>> import pandas as pd, safeflow as sf
>>> df = pd.DataFrame({"age": [50.0, 60, 70, 80], "sex": [1, 2, 1, 2]})
>>> s = sf.Schema([sf.Column("age", classes=("public",), bounds=(0, 120)),
...                sf.Column("sex", classes=("public",), kind="categorical", categories=(1, 2))])
>>> fed = sf.Federation.local([sf.Site("a", df, "CN", schema=s),
...                           sf.Site("b", df, "NL", schema=s)],
...                          destination="NL", purpose="scientific-research")
>>> t1 = sf.describe(fed, ["age", "sex"], protocol="plain")
>>> float(t1.value.query("variable == 'age'")["mean"].iloc[0])
65.0
"""

from __future__ import annotations

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
    magnitude_bound,
    register,
    site_slot,
)
from safeflow.data import Column, Schema, SiteData
from safeflow.protocols.dp import DPStatistics, NoiseGroup, half_range
from safeflow.statspec import StatLayout, StatSpec


@register
class Describe(Analysis):
    """The Table 1 analysis (see module docstring)."""

    name = "describe"
    kind = "magnitude_table"

    def columns(self) -> list[str]:
        by = self.params.get("by")
        return list(self.params["columns"]) + ([by] if by else [])

    def _shape(self, schema: Schema, ctx: Mapping[str, Any]) -> tuple[int, int]:
        by = self.params.get("by")
        g = len(levels(schema.column(by))) if by else 1
        s = len(ctx["sites"]) if self.params.get("by_site") else 1
        return s, g

    def _cols(self, schema: Schema) -> list[Column]:
        cols = check_columns(schema, list(self.params["columns"]))
        by = self.params.get("by")
        if by:
            check_columns(schema, [by], kinds=("categorical", "binary"), what="group column")
        return cols

    def layout(self, schema: Schema, ctx: Mapping[str, Any]) -> StatLayout:
        shape = self._shape(schema, ctx)
        specs = [count_spec("rows", shape, ctx), count_spec("dropped", (1,), ctx)]
        for c in self._cols(schema):
            if c.kind == "numeric":
                b1 = magnitude_bound(c, schema, ctx, 1)
                bx = None if b1 is None else b1 / float(ctx["max_rows_per_site"])
                specs += [
                    StatSpec(f"sum:{c.name}", shape, "real", b1),
                    StatSpec(f"sumsq:{c.name}", shape, "real",
                             magnitude_bound(c, schema, ctx, 2)),
                    StatSpec(f"top1:{c.name}", shape, "real", bx),
                    StatSpec(f"top12:{c.name}", shape, "real", None if bx is None else 2 * bx),
                ]
            else:
                specs.append(count_spec(f"count:{c.name}", (*shape, len(levels(c))), ctx))
        return StatLayout(tuple(specs))

    def dp_statistics(self, schema: Schema, ctx: Mapping[str, Any]) -> DPStatistics:
        """Under DP: row counts, sums, sums of squares and level counts are noised (each
        row adds to one cell of each); the dominance maxima are not released.

        Sums are centred on the middle ``c`` of the declared bounds before the noise
        (``Σ(x - c)`` and ``Σ(x - c)²``, computed exactly from the site's sums), so their
        sensitivity is the half-range of the bounds rather than ``max |x|``: for ages in
        ``(18, 100)`` the sum of squares needs 6 times less noise. Customs shifts them back
        after the noise (the SD does not depend on ``c``).
        """
        groups = [NoiseGroup(("rows", "dropped"), "count", Fraction(1))]
        drop: list[str] = []
        centre: dict[str, float] = {}
        for c in self._cols(schema):
            if c.kind == "numeric":
                half, mid = half_range(schema, c.name)
                centre[c.name] = float(mid)
                groups += [NoiseGroup((f"sum:{c.name}",), "real", half),
                           NoiseGroup((f"sumsq:{c.name}",), "real", half * half)]
                drop += [f"top1:{c.name}", f"top12:{c.name}"]
            else:
                groups.append(NoiseGroup((f"count:{c.name}",), "count", Fraction(1)))

        def shift(stats: dict[str, np.ndarray], sign: float) -> dict[str, np.ndarray]:
            n = stats["rows"]
            for name, cv in centre.items():
                s, ss = stats[f"sum:{name}"], stats[f"sumsq:{name}"]
                if sign < 0:  # site: moments about c
                    stats[f"sumsq:{name}"] = ss - 2 * cv * s + n * cv * cv
                    stats[f"sum:{name}"] = s - n * cv
                else:  # customs: back to moments about 0
                    stats[f"sumsq:{name}"] = ss + 2 * cv * s + n * cv * cv
                    stats[f"sum:{name}"] = s + n * cv
            return stats

        return DPStatistics(tuple(groups), tuple(drop), encode=lambda st: shift(st, -1.0),
                            decode=lambda st: shift(st, 1.0))

    def local(self, data: SiteData, ctx: Mapping[str, Any]) -> dict[str, np.ndarray]:
        schema = data.schema
        layout = self.layout(ctx["public_schema"], ctx)
        out = {s.name: np.zeros(s.shape, dtype=np.float64) for s in layout.specs}
        slot = site_slot(ctx) if self.params.get("by_site") else 0
        by = self.params.get("by")
        cols = check_columns(schema, list(self.params["columns"]))
        g = out["rows"].shape[1]
        top = {c.name: np.zeros((g, 2)) for c in cols if c.kind == "numeric"}
        for batch in data.batches(self.columns()):
            n = len(batch)
            grp = group_codes(batch, by, n)
            out["rows"][slot] += np.bincount(grp, minlength=g)
            for c in cols:
                x = batch[c.name]
                if c.kind == "numeric":
                    out[f"sum:{c.name}"][slot] += np.bincount(grp, weights=x, minlength=g)
                    out[f"sumsq:{c.name}"][slot] += np.bincount(grp, weights=x * x, minlength=g)
                    _update_top2(top[c.name], grp, np.abs(x))
                else:
                    k = out[f"count:{c.name}"].shape[-1]
                    out[f"count:{c.name}"][slot] += np.bincount(
                        grp * k + np.asarray(x, dtype=np.int64), minlength=g * k).reshape(g, k)
        for name, t in top.items():
            out[f"top1:{name}"][slot] = t[:, 0]
            out[f"top12:{name}"][slot] = t[:, 0] + t[:, 1]
        out["dropped"][0] = sum(data.drop_counts.values())
        return out

    def combine(self, totals: Mapping[str, np.ndarray], schema: Schema,
                ctx: Mapping[str, Any]) -> Done:
        by = self.params.get("by")
        groups = levels(schema.column(by)) if by else [""]
        sites = list(ctx["sites"]) if self.params.get("by_site") else [""]
        rows, records = totals["rows"], []
        cells, shares, pratios = [], [], []
        for c in self._cols(schema):
            for si, site in enumerate(sites):
                for gi, grp in enumerate(groups):
                    base = {"variable": c.name, "site": site, "group": grp}
                    n = int(rows[si, gi])
                    if c.kind == "numeric":
                        s, ss = totals[f"sum:{c.name}"][si, gi], totals[f"sumsq:{c.name}"][si, gi]
                        mean, sd = _mean_sd(float(s), float(ss), n)
                        records.append({**base, "level": "", "n": n, "mean": mean, "sd": sd,
                                        "count": np.nan, "percent": np.nan})
                        cells.append(n)
                        t1 = float(totals[f"top1:{c.name}"][si, gi])
                        t12 = float(totals[f"top12:{c.name}"][si, gi])
                        mag = abs(float(s))
                        if n and mag > 0:
                            shares.append(min(1.0, t12 / mag))
                            pratios.append(max(0.0, (mag - t12) / t1) if t1 > 0 else 0.0)
                    else:
                        counts = totals[f"count:{c.name}"][si, gi]
                        for lev, k in zip(levels(c), counts, strict=True):
                            records.append({**base, "level": lev, "n": n, "mean": np.nan,
                                            "sd": np.nan, "count": int(k),
                                            "percent": 100.0 * int(k) / n if n else np.nan})
                            cells.append(int(k))
        df = pd.DataFrame.from_records(records)
        if len(df):
            df["count"] = df["count"].astype("Int64")
        drop = [k for k in ("site", "group") if (df[k] == "").all()] if len(df) else []
        df = df.drop(columns=drop)
        df.attrs["by"] = by  # the grouping column, for reports
        facts = _table_facts(cells, total_rows=int(rows.sum()), dropped=int(totals["dropped"][0]))
        facts["sdc"].update({"nk_top2_share": max(shares, default=0.0),
                             "p_ratio": min(pratios, default=None),
                             "dominance_bound": "conservative (sum of per-site top two)"})
        return Done(df, facts)


def _update_top2(top: np.ndarray, grp: np.ndarray, ax: np.ndarray) -> None:
    for g in np.unique(grp):
        vals = ax[grp == g]
        best = np.concatenate([top[g], np.partition(vals, -min(2, vals.size))[-2:]])
        top[g] = np.sort(best)[::-1][:2]


def _mean_sd(s: float, ss: float, n: int) -> tuple[float, float]:
    """Mean and sample SD from exact sums, with a single rounding each."""
    if n == 0:
        return float("nan"), float("nan")
    fs, fss = Fraction(s), Fraction(ss)
    mean = fs / n
    if n == 1:
        return float(mean), float("nan")
    var = (fss - fs * fs / n) / (n - 1)
    return float(mean), float(np.sqrt(float(max(var, Fraction(0)))))


def _table_facts(cells: list[int], *, total_rows: int, dropped: int) -> dict[str, Any]:
    nonzero = [c for c in cells if c > 0]
    return {"sdc": {"min_cell": min(nonzero, default=0), "has_zero": any(c == 0 for c in cells),
                    "n": total_rows},
            "rows_dropped": dropped}

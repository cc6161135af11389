"""Helpers for the safeflow.data tests: one frame, its schema, and every source format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from safeflow.data import SQL, Column, Schema

N_ROWS = 503  # not a multiple of any batch size used below


def make_frame(n: int = N_ROWS, seed: int = 7) -> pd.DataFrame:
    """A small mixed-type frame with missing values, out-of-bounds values and an id."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(18, 95, n).round(1)
    age[rng.choice(n, 9, replace=False)] = np.nan
    age[rng.choice(n, 4, replace=False)] = 130.0  # above the declared bound: clipped
    sex = rng.choice(["F", "M"], n).astype(object)
    sex[rng.choice(n, 3, replace=False)] = None
    return pd.DataFrame(
        {
            "mrn": np.arange(1000, 1000 + n),
            "age": age,
            "stage": rng.integers(1, 5, n),
            "sex": sex,
            "smoker": rng.random(n) < 0.3,
            "time": rng.integers(1, 2000, n).astype(float),
        }
    )


SCHEMA = Schema(
    [
        Column("mrn", role="identifier", classes=("pi",)),
        Column("age", bounds=(18, 100), on_missing="drop", on_out_of_bounds="clip"),
        Column("stage", kind="categorical", categories=(1, 2, 3, 4)),
        Column("sex", kind="binary", categories=("F", "M"), on_missing="drop"),
        Column("smoker", kind="binary"),
        Column("time", role="time", bounds=(0, 2000), resolution=1.0),
    ]
)
COLUMNS = ["age", "stage", "sex", "smoker", "time"]


def write_sources(frame: pd.DataFrame, d: Path) -> dict[str, object]:
    """Write ``frame`` as every supported source type under directory ``d``."""
    import polars as pl

    table = pa.Table.from_pandas(frame, preserve_index=False)
    frame.to_csv(d / "site.csv", index=False)
    pq.write_table(table, d / "site.parquet", row_group_size=64)
    parts = d / "parts"
    parts.mkdir()
    for i, start in enumerate(range(0, len(frame), 200)):
        pq.write_table(table.slice(start, 200), parts / f"part-{i}.parquet")
    chunked = pa.Table.from_batches(table.to_batches(max_chunksize=37))
    return {
        "pandas": frame,
        "polars": pl.from_pandas(frame),
        "arrow": chunked,
        "csv": d / "site.csv",
        "csv-str": str(d / "site.csv"),
        "parquet": d / "site.parquet",
        "parquet-dir": parts,
        "sql-parquet": SQL(f"SELECT * FROM read_parquet('{d / 'site.parquet'}')"),
        "sql-pandas": SQL("SELECT * FROM visits", tables={"visits": frame}),
    }

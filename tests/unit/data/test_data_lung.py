"""A real example: the NCCTG lung cancer data (lifelines), inferred and declared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lifelines.datasets import load_lung

from safeflow.data import Column, InferredSchemaWarning, Schema, SiteData
from safeflow.errors import MissingValueError, SchemaError

LUNG_SCHEMA = Schema(
    [
        Column("inst", role="group", categories=tuple(range(1, 34)), on_missing="drop"),
        Column("time", role="time", bounds=(0, 1100), resolution=1.0),
        Column("status", role="event", categories=(0, 1)),
        Column("age", bounds=(18, 100)),
        Column("sex", kind="binary", categories=(1, 2)),
        Column("ph.ecog", kind="categorical", categories=(0, 1, 2, 3, 4), on_missing="drop"),
        Column("ph.karno", bounds=(0, 100), on_missing="drop"),
        Column("pat.karno", bounds=(0, 100), on_missing="drop"),
        Column("meal.cal", bounds=(0, 4000), on_missing="drop"),
        Column("wt.loss", bounds=(-50, 100), on_missing="drop"),
    ]
)


@pytest.fixture(scope="module")
def lung() -> pd.DataFrame:
    return load_lung()


def test_inferred_lung_schema(lung: pd.DataFrame) -> None:
    with pytest.warns(
        InferredSchemaWarning,
        match=r"^schema inferred from the data at site 'amsterdam': inferred bounds and "
        r"categories are not public and will not be accepted for differential privacy; "
        r"declare them with sf.Schema$",
    ) as record:
        sd = SiteData(lung, site="amsterdam")
    assert record[0].filename == __file__
    s = sd.schema
    assert s.declared is False
    assert s.names == tuple(lung.columns)
    assert s.column("age").bounds == (float(lung["age"].min()), float(lung["age"].max()))
    assert s.public_bounds("age") is None
    assert s.column("sex").kind == "binary" and s.column("sex").categories == (1, 2)
    assert s.column("status").categories == (0, 1)
    assert s.column("ph.ecog").categories == (0, 1, 2, 3)
    assert s.column("inst").kind == "categorical"
    assert s.column("meal.cal").kind == "numeric"
    with pytest.raises(SchemaError, match="must not be shared"):
        s.to_dict()
    # the inferred schema keeps on_missing="error": lung has missing weight loss
    with pytest.raises(MissingValueError, match=r"column 'wt\.loss'"):
        list(sd.batches(["age", "wt.loss"]))


@pytest.mark.parametrize("fmt", ["pandas", "parquet", "csv"])
def test_declared_lung_drop_counts_match_pandas(
    lung: pd.DataFrame, fmt: str, tmp_path: Path
) -> None:
    data: object = lung
    if fmt == "parquet":
        data = tmp_path / "lung.parquet"
        lung.to_parquet(data)
    elif fmt == "csv":
        data = tmp_path / "lung.csv"
        lung.to_csv(data, index=False)
    sd = SiteData(data, LUNG_SCHEMA)
    names = list(lung.columns)
    batches = list(sd.batches(names, batch_size=50))
    na = lung.isna().sum()
    assert sd.drop_counts == {f"{c}:missing": int(na[c]) for c in names if na[c]}
    complete = lung.dropna()
    assert sum(len(b) for b in batches) == len(complete)
    got = {c: np.concatenate([b[c] for b in batches]) for c in names}
    np.testing.assert_array_equal(got["age"], complete["age"].to_numpy(float))
    np.testing.assert_array_equal(got["time"], complete["time"].to_numpy(float))
    np.testing.assert_array_equal(got["status"], complete["status"].to_numpy())
    np.testing.assert_array_equal(got["sex"], (complete["sex"] == 2).astype(np.int64))
    np.testing.assert_array_equal(got["ph.ecog"], complete["ph.ecog"].astype(np.int64))
    np.testing.assert_array_equal(got["inst"], complete["inst"].astype(np.int64) - 1)
    np.testing.assert_array_equal(got["wt.loss"], complete["wt.loss"].to_numpy(float))


def test_lung_single_column_counts(lung: pd.DataFrame) -> None:
    sd = SiteData(lung, LUNG_SCHEMA)
    kept = sum(len(b) for b in sd.batches(["meal.cal"], batch_size=64))
    assert kept == lung["meal.cal"].notna().sum()
    assert sd.drop_counts == {"meal.cal:missing": int(lung["meal.cal"].isna().sum())}
    assert sd.n_rows() == len(lung)

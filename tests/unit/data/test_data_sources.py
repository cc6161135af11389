"""Every source type streams the same validated batches; source-level errors are typed."""

from __future__ import annotations

import itertools
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from safeflow.data import SQL, Column, Schema, SiteData
from safeflow.data.site_data import _rebatch
from safeflow.errors import DataError, InvalidParameter, SchemaError
from tests.unit.data.sfdata_helpers import COLUMNS, N_ROWS, SCHEMA

SOURCE_NAMES = [
    "pandas",
    "polars",
    "arrow",
    "csv",
    "csv-str",
    "parquet",
    "parquet-dir",
    "sql-parquet",
    "sql-pandas",
]


def read_all(sd: SiteData, columns: list[str], batch_size: int) -> list[dict[str, np.ndarray]]:
    return [{c: b[c] for c in columns} | {"_n": len(b)} for b in sd.batches(columns, batch_size)]


def expected(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The validated columns, computed with pandas from the same rows."""
    keep = frame["age"].notna() & frame["sex"].notna()
    f = frame[keep]
    return {
        "age": f["age"].clip(18, 100).to_numpy(float),
        "stage": f["stage"].to_numpy() - 1,
        "sex": (f["sex"] == "M").to_numpy().astype(np.int64),
        "smoker": f["smoker"].to_numpy().astype(np.int64),
        "time": f["time"].to_numpy(float),
    }


@pytest.mark.parametrize("batch_size", [3, 64, 100, N_ROWS, 10_000])
def test_every_source_yields_identical_batches(
    sources: dict[str, object], frame: pd.DataFrame, batch_size: int
) -> None:
    reference = read_all(SiteData(frame, SCHEMA), COLUMNS, batch_size)
    assert len(reference) == -(-N_ROWS // batch_size)
    for name in SOURCE_NAMES:
        got = read_all(SiteData(sources[name], SCHEMA), COLUMNS, batch_size)
        assert len(got) == len(reference), name
        for g, r in zip(got, reference, strict=True):
            assert g["_n"] == r["_n"], name
            for c in COLUMNS:
                assert g[c].dtype == (np.float64 if c in ("age", "time") else np.int64)
                np.testing.assert_array_equal(g[c], r[c], err_msg=f"{name}:{c}")


def test_batches_match_pandas_computation(frame: pd.DataFrame) -> None:
    sd = SiteData(frame, SCHEMA)
    batches = list(sd.batches(COLUMNS, batch_size=100))
    for c, want in expected(frame).items():
        np.testing.assert_array_equal(np.concatenate([b[c] for b in batches]), want)
    assert sd.drop_counts == {
        "age:missing": int(frame["age"].isna().sum()),
        "age:clipped": int((frame["age"] > 100).sum()),
        "sex:missing": int(frame["sex"].isna().sum()),
    }


@pytest.mark.parametrize("name", SOURCE_NAMES)
def test_n_rows_and_column_names(sources: dict[str, object], name: str) -> None:
    sd = SiteData(sources[name], SCHEMA)
    assert sd.n_rows() == N_ROWS
    assert sd.column_names == ("mrn", "age", "stage", "sex", "smoker", "time")


@pytest.mark.parametrize("name", SOURCE_NAMES)
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(batch_size=st.integers(min_value=1, max_value=N_ROWS + 50))
@example(batch_size=1)
@example(batch_size=N_ROWS)
def test_concatenated_batches_equal_the_whole(
    sources: dict[str, object], frame: pd.DataFrame, name: str, batch_size: int
) -> None:
    sd = SiteData(sources[name], SCHEMA)
    batches = list(sd.batches(["time", "smoker"], batch_size=batch_size))
    # every batch but the last covers exactly batch_size source rows (nothing dropped here)
    assert [len(b) for b in batches[:-1]] == [batch_size] * (len(batches) - 1)
    assert 1 <= len(batches[-1]) <= batch_size
    np.testing.assert_array_equal(np.concatenate([b["time"] for b in batches]), frame["time"])
    np.testing.assert_array_equal(
        np.concatenate([b["smoker"] for b in batches]), frame["smoker"].astype(np.int64)
    )


@settings(max_examples=60, deadline=None)
@given(
    chunks=st.lists(st.integers(min_value=0, max_value=40), min_size=0, max_size=12),
    size=st.integers(min_value=1, max_value=50),
)
def test_rebatch_regroups_any_chunking_exactly(chunks: list[int], size: int) -> None:
    total = sum(chunks)
    values = np.arange(total, dtype=np.float64)
    starts = np.cumsum([0, *chunks])
    incoming = [pa.record_batch({"x": values[a:b]}) for a, b in itertools.pairwise(starts)]
    out = list(_rebatch(iter(incoming), size))
    sizes = [rb.num_rows for rb in out]
    assert sizes == [size] * (total // size) + ([total % size] if total % size else [])
    joined = np.concatenate([rb.column(0).to_numpy() for rb in out]) if out else values
    np.testing.assert_array_equal(joined, values)


def test_sql_on_a_duckdb_database_file(tmp_path: Path, frame: pd.DataFrame) -> None:
    db = tmp_path / "site.duckdb"
    con = duckdb.connect(str(db))
    con.register("f", frame)
    con.execute("CREATE TABLE visits AS SELECT * FROM f")
    con.close()
    sd = SiteData(SQL("SELECT * FROM visits WHERE stage >= 3;", database=db), SCHEMA)
    got = np.concatenate([b["stage"] for b in sd.batches(["stage"], batch_size=50)])
    np.testing.assert_array_equal(got, frame.loc[frame["stage"] >= 3, "stage"] - 1)
    assert sd.n_rows() == int((frame["stage"] >= 3).sum())


def test_unsupported_type_is_a_data_error() -> None:
    with pytest.raises(DataError) as e:
        SiteData([1, 2, 3])
    assert str(e.value) == (
        "site data must be a pandas or polars DataFrame, a pyarrow Table, a CSV or Parquet "
        "path or sf.data.SQL(...); got list"
    )


def test_missing_file_and_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        SiteData(tmp_path / "nope.parquet", SCHEMA)
    (tmp_path / "notes.txt").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match=r"unsupported type; use a \.csv or \.parquet"):
        SiteData(tmp_path / "notes.txt", SCHEMA)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no Parquet files"):
        SiteData(tmp_path / "empty", SCHEMA)
    (tmp_path / "fake.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="cannot be opened"):
        SiteData(tmp_path / "fake.parquet", SCHEMA)


def test_sql_errors_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="SQL query is not valid"):
        SiteData(SQL("SELECT * FROM no_such_table"))
    with pytest.raises(DataError, match="does not exist"):
        SiteData(SQL("SELECT 1 AS x", database=tmp_path / "missing.duckdb"))
    with pytest.raises(InvalidParameter, match="non-empty SELECT"):
        SQL("  ; ")


def test_schema_columns_must_exist_in_the_data(frame: pd.DataFrame) -> None:
    schema = Schema([Column("age"), Column("bmi", bounds=(10, 60))])
    with pytest.raises(SchemaError, match=r"does not have: \['bmi'\]; the data's columns are"):
        SiteData(frame, schema)


def test_csv_text_in_numeric_column_names_column_not_value(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("id,age\n1,40\n2,secret-value-123\n3,50\n")
    sd = SiteData(path, Schema([Column("age")]))
    with pytest.raises(DataError) as e:
        list(sd.batches(["age"]))
    assert "column 'age'" in str(e.value) and "fix the file" in str(e.value)
    assert "secret" not in str(e.value)


def test_pandas_mixed_object_column_does_not_leak_the_value() -> None:
    df = pd.DataFrame({"age": pd.Series([40.0, "secret-value-123", 50.0], dtype=object)})
    sd = SiteData(df, Schema([Column("age")]))
    with pytest.raises(DataError) as e:
        list(sd.batches(["age"]))
    assert "column 'age'" in str(e.value) and "secret" not in str(e.value)


def test_pandas_non_string_and_repeated_column_names() -> None:
    df = pd.DataFrame({0: [1.0, 2.0]})
    assert SiteData(df, Schema([Column("0")])).column_names == ("0",)
    dup = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(DataError, match="repeated column names"):
        SiteData(dup, Schema([Column("a")]))


def test_a_site_data_wraps_another_without_reinferring(frame: pd.DataFrame) -> None:
    sd = SiteData(frame, SCHEMA)
    again = SiteData(sd)
    assert again.schema is SCHEMA
    assert again.n_rows() == N_ROWS


def test_record_batch_and_dict_schema_are_accepted(frame: pd.DataFrame) -> None:
    rb = pa.RecordBatch.from_pandas(frame, preserve_index=False)
    sd = SiteData(rb, SCHEMA.to_dict())
    assert sd.schema == SCHEMA
    assert sum(len(b) for b in sd.batches(["time"])) == N_ROWS


def test_sql_config_reaches_duckdb(frame: pd.DataFrame) -> None:
    q = SQL("SELECT * FROM v", config={"threads": 1, "memory_limit": "256MB"}, tables={"v": frame})
    assert SiteData(q, SCHEMA).n_rows() == N_ROWS
    with pytest.raises(DataError, match="not recognized"):
        SiteData(SQL("SELECT 1 AS x", config={"no_such_setting": 1}))


def test_sql_holding_tables_is_not_picklable(frame: pd.DataFrame) -> None:
    import pickle

    plain = SQL("SELECT 1 AS x", config={"threads": 1})
    assert pickle.loads(pickle.dumps(plain)) == plain
    with pytest.raises(DataError, match="site data never leaves its site"):
        pickle.dumps(SQL("SELECT * FROM v", tables={"v": frame}))


def test_parquet_directory_files_must_share_the_asked_columns(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1.0, 2.0], "y": [1.0, 1.0]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"x": [3.0]}), tmp_path / "b.parquet")
    sd = SiteData(tmp_path, Schema([Column("x"), Column("y")]))
    assert sd.n_rows() == 3
    got = np.concatenate([b["x"] for b in sd.batches(["x"], batch_size=2)])
    np.testing.assert_array_equal(got, [1.0, 2.0, 3.0])
    with pytest.raises(DataError, match=r"'b.parquet' in .* lacks the columns \['y'\]"):
        list(sd.batches(["y"]))


def test_schema_infer_accepts_site_data(frame: pd.DataFrame) -> None:
    from safeflow.data import InferredSchemaWarning

    with pytest.warns(InferredSchemaWarning):
        inferred = Schema.infer(SiteData(frame, SCHEMA))
    assert inferred.column("mrn").role == "identifier"

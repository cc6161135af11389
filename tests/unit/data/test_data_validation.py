"""Per-batch validation: typed errors whose messages name the fix and never the data."""

from __future__ import annotations

import copy
import pickle
from datetime import date

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from safeflow.data import Batch, Column, Schema, SiteData
from safeflow.errors import (
    DataError,
    InvalidParameter,
    MissingValueError,
    OutOfBoundsError,
    SchemaError,
)


def site(data: object, *columns: Column, declared: bool = True) -> SiteData:
    return SiteData(data, Schema(list(columns), declared=declared))


def collect(sd: SiteData, name: str, batch_size: int = 65_536) -> np.ndarray:
    return np.concatenate([b[name] for b in sd.batches([name], batch_size=batch_size)])


# ---- missing values ----------------------------------------------------------------------


def test_missing_value_error_names_column_and_fix_not_the_row() -> None:
    df = pd.DataFrame({"age": [40.0, np.nan, 61.0], "weight": [81.25, 93.75, 70.5]})
    sd = site(df, Column("age"), Column("weight"))
    with pytest.raises(MissingValueError) as e:
        list(sd.batches(["weight", "age"]))
    msg = str(e.value)
    assert "column 'age'" in msg
    assert "declare on_missing='drop' or impute before" in msg
    assert "93.75" not in msg and "40" not in msg


@pytest.mark.parametrize(
    "values",
    [
        pd.Series([1.0, None, 3.0]),
        pd.Series([1, None, 3], dtype="Int64"),
        pa.array([1.0, float("nan"), 3.0], from_pandas=False),  # NaN that is not a null
    ],
)
def test_nan_and_null_are_both_missing(values: object) -> None:
    data = pa.table({"x": values}) if isinstance(values, pa.Array) else pd.DataFrame({"x": values})
    with pytest.raises(MissingValueError):
        list(site(data, Column("x")).batches(["x"]))
    sd = site(data, Column("x", on_missing="drop"))
    np.testing.assert_array_equal(collect(sd, "x"), [1.0, 3.0])
    assert sd.drop_counts == {"x:missing": 1}


def test_categorical_null_is_missing() -> None:
    df = pd.DataFrame({"arm": ["a", None, "b", "a"]})
    with pytest.raises(MissingValueError, match="column 'arm'"):
        list(site(df, Column("arm", kind="categorical", categories=("a", "b"))).batches(["arm"]))
    sd = site(df, Column("arm", kind="categorical", categories=("a", "b"), on_missing="drop"))
    np.testing.assert_array_equal(collect(sd, "arm"), [0, 1, 0])


def test_rows_are_dropped_across_columns_and_counted_per_column() -> None:
    df = pd.DataFrame({"a": [1.0, np.nan, 3.0, np.nan], "b": [np.nan, np.nan, 30.0, 40.0]})
    sd = site(df, Column("a", on_missing="drop"), Column("b", on_missing="drop"))
    (batch,) = sd.batches(["a", "b"])
    assert len(batch) == 1
    np.testing.assert_array_equal(batch["a"], [3.0])
    np.testing.assert_array_equal(batch["b"], [30.0])
    assert sd.drop_counts == {"a:missing": 2, "b:missing": 2}


# ---- bounds ------------------------------------------------------------------------------


def test_out_of_bounds_error_names_bounds_not_value() -> None:
    df = pd.DataFrame({"age": [40.0, 137.5, 60.0]})
    with pytest.raises(OutOfBoundsError) as e:
        list(site(df, Column("age", bounds=(0, 120))).batches(["age"]))
    msg = str(e.value)
    assert "column 'age'" in msg and "[0, 120]" in msg
    assert "on_out_of_bounds='clip' or 'drop'" in msg
    assert "137" not in msg


def test_undeclared_bounds_are_not_named_in_messages() -> None:
    df = pd.DataFrame({"age": [40.0, 137.5]})
    sd = site(df, Column("age", bounds=(23.5, 99.5)), declared=False)
    with pytest.raises(OutOfBoundsError) as e:
        list(sd.batches(["age"]))
    assert "23.5" not in str(e.value) and "137" not in str(e.value)


def test_clip_and_drop_counts() -> None:
    df = pd.DataFrame({"x": [-5.0, 0.0, 5.0, 10.0, 15.0, 20.0], "y": [1.0] * 6})
    clip = site(df, Column("x", bounds=(0, 10), on_out_of_bounds="clip"))
    np.testing.assert_array_equal(collect(clip, "x", 4), [0, 0, 5, 10, 10, 10])
    assert clip.drop_counts == {"x:clipped": 3}
    drop = site(df, Column("x", bounds=(0, 10), on_out_of_bounds="drop"), Column("y"))
    batches = list(drop.batches(["x", "y"], batch_size=4))
    assert [len(b) for b in batches] == [3, 0]
    np.testing.assert_array_equal(batches[0]["y"], [1.0, 1.0, 1.0])
    assert drop.drop_counts == {"x:out_of_bounds": 3}


def test_infinite_values_without_bounds_are_refused() -> None:
    df = pd.DataFrame({"x": [1.0, np.inf]})
    with pytest.raises(OutOfBoundsError, match="infinite values; declare bounds"):
        list(site(df, Column("x")).batches(["x"]))
    sd = site(df, Column("x", on_out_of_bounds="drop"))
    np.testing.assert_array_equal(collect(sd, "x"), [1.0])


def test_drop_counts_grow_while_reading_and_reset_per_call() -> None:
    df = pd.DataFrame({"x": [np.nan, 1.0, np.nan, 2.0]})
    sd = site(df, Column("x", on_missing="drop"))
    it = sd.batches(["x"], batch_size=2)
    assert sd.drop_counts == {}
    next(it)
    assert sd.drop_counts == {"x:missing": 1}
    list(it)
    assert sd.drop_counts == {"x:missing": 2}
    sd.batches(["x"])
    assert sd.drop_counts == {}


# ---- types and categories ---------------------------------------------------------------


def test_text_in_numeric_column() -> None:
    df = pd.DataFrame({"age": ["40", "fifty"]})
    with pytest.raises(DataError, match="declared numeric but holds text") as e:
        list(site(df, Column("age")).batches(["age"]))
    assert "fifty" not in str(e.value)


def test_dates_are_refused_with_a_fix() -> None:
    t = pa.table({"when": pa.array([date(2020, 1, 1)])})
    with pytest.raises(DataError, match="holds dates or times; convert them to numbers"):
        list(site(t, Column("when")).batches(["when"]))


def test_unknown_level_error_and_drop() -> None:
    df = pd.DataFrame({"arm": ["a", "b", "secret-level", "a"]})
    col = Column("arm", kind="categorical", categories=("a", "b"))
    with pytest.raises(OutOfBoundsError) as e:
        list(site(df, col).batches(["arm"]))
    msg = str(e.value)
    assert "not among its declared categories ('a', 'b')" in msg and "secret" not in msg
    sd = site(df, Column("arm", kind="categorical", categories=("a", "b"), on_out_of_bounds="drop"))
    np.testing.assert_array_equal(collect(sd, "arm"), [0, 1, 0])
    assert sd.drop_counts == {"arm:out_of_bounds": 1}


def test_level_type_mismatch() -> None:
    df = pd.DataFrame({"sex": [1, 2, 1]})
    with pytest.raises(DataError, match="holds numbers but its declared categories are text"):
        list(site(df, Column("sex", kind="binary", categories=("F", "M"))).batches(["sex"]))
    df = pd.DataFrame({"sex": ["1", "2"]})
    with pytest.raises(DataError, match="holds text but its declared categories are numbers"):
        list(site(df, Column("sex", kind="binary", categories=(1, 2))).batches(["sex"]))


def test_codes_follow_declared_order_not_data_order() -> None:
    df = pd.DataFrame({"stage": [3, 1, 2, 3]})
    sd = site(df, Column("stage", kind="categorical", categories=(3, 2, 1)))
    np.testing.assert_array_equal(collect(sd, "stage"), [0, 2, 1, 0])


@pytest.mark.parametrize(
    "data",
    [
        pd.DataFrame({"dead": [True, False, True]}),
        pd.DataFrame({"dead": pd.array([True, False, True], dtype="boolean")}),
        pd.DataFrame({"dead": [1, 0, 1]}),
        pd.DataFrame({"dead": [1.0, 0.0, 1.0]}),
        pl.DataFrame({"dead": [True, False, True]}),
    ],
)
def test_binary_booleans_and_zero_one_map_to_false_true(data: object) -> None:
    sd = site(data, Column("dead", role="event"))
    assert sd.schema.column("dead").categories == (False, True)
    codes = collect(sd, "dead")
    assert codes.dtype == np.int64
    np.testing.assert_array_equal(codes, [1, 0, 1])


@pytest.mark.parametrize(
    "data",
    [
        pd.DataFrame({"arm": pd.Categorical(["b", "a", "b"], categories=["b", "a"])}),
        pl.DataFrame({"arm": pl.Series(["b", "a", "b"], dtype=pl.Categorical)}),
        pl.DataFrame({"arm": ["b", "a", "b"]}),
        pa.table({"arm": pa.array(["b", "a", "b"]).dictionary_encode()}),
    ],
)
def test_dictionary_and_string_types_are_decoded(data: object) -> None:
    sd = site(data, Column("arm", kind="categorical", categories=("a", "b")))
    np.testing.assert_array_equal(collect(sd, "arm"), [1, 0, 1])


def test_batch_arrays_are_read_only_and_do_not_alias_user_data() -> None:
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    (batch,) = site(df, Column("x")).batches(["x"])
    with pytest.raises(ValueError, match="read-only"):
        batch["x"][0] = 99.0
    assert df["x"].tolist() == [1.0, 2.0, 3.0]


# ---- columns, identifiers, parameters ----------------------------------------------------


def test_identifier_columns_never_enter_a_statistic() -> None:
    df = pd.DataFrame({"mrn": [1, 2], "age": [40.0, 50.0]})
    sd = site(df, Column("mrn", role="identifier"), Column("age"))
    with pytest.raises(SchemaError, match="column 'mrn' is an identifier; identifiers never"):
        sd.batches(["age", "mrn"])  # refused at the call, before any reading


def test_unknown_columns() -> None:
    df = pd.DataFrame({"age": [40.0], "bmi": [22.0]})
    sd = site(df, Column("age"))
    with pytest.raises(
        SchemaError, match="unknown column 'weight'; the schema's columns are: 'age'"
    ):
        sd.batches(["weight"])
    with pytest.raises(SchemaError, match="'bmi' is in the data but not in the schema"):
        sd.batches(["bmi"])
    (batch,) = sd.batches("age")
    with pytest.raises(SchemaError, match="not in this batch"):
        batch["bmi"]
    assert "age" in batch and batch.columns == ("age",)
    with pytest.raises(TypeError):
        iter(batch)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10"])
def test_batch_size_must_be_a_positive_integer(bad: object) -> None:
    sd = site(pd.DataFrame({"x": [1.0]}), Column("x"))
    with pytest.raises(InvalidParameter, match="batch_size must be an integer >= 1"):
        sd.batches(["x"], batch_size=bad)  # type: ignore[arg-type]


def test_columns_must_be_a_non_empty_list_and_repeats_are_read_once() -> None:
    sd = site(pd.DataFrame({"x": [1.0], "y": [2.0]}), Column("x"), Column("y"))
    with pytest.raises(InvalidParameter, match="non-empty list"):
        sd.batches([])
    (batch,) = sd.batches(["y", "x", "y"])
    assert batch.columns == ("y", "x")


def test_empty_data_yields_no_batches() -> None:
    sd = site(pd.DataFrame({"x": pd.Series([], dtype=float)}), Column("x"))
    assert list(sd.batches(["x"])) == []
    assert sd.n_rows() == 0


# ---- site data never leaves its site -----------------------------------------------------


@pytest.mark.parametrize(
    "leak",
    [pickle.dumps, copy.copy, copy.deepcopy, lambda o: pickle.dumps(o, protocol=0)],
)
def test_site_data_and_batches_refuse_pickling(leak: object) -> None:
    sd = site(pd.DataFrame({"x": [1.0]}), Column("x"))
    (batch,) = sd.batches(["x"])
    for obj in (sd, batch):
        with pytest.raises(DataError, match="site data never leaves its site"):
            leak(obj)  # type: ignore[operator]


def test_repr_shows_no_data() -> None:
    sd = site(pd.DataFrame({"x": [123.456]}), Column("x"))
    assert repr(sd) == "SiteData(pandas DataFrame, 1 column, declared schema)"
    (batch,) = sd.batches(["x"])
    assert "123" not in repr(batch)
    assert isinstance(batch, Batch)

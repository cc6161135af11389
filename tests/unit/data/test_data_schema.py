"""Column and Schema: validation, JSON round trips, public bounds and inference."""

from __future__ import annotations

import json
import warnings
from datetime import date

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safeflow.data import (
    DATA_CLASSES,
    Column,
    InferredSchemaWarning,
    Schema,
    SiteData,
)
from safeflow.data._infer import looks_like_identifier
from safeflow.errors import DataError, SchemaError

# ---- Column ------------------------------------------------------------------------------


def test_column_defaults_and_kind_from_role() -> None:
    c = Column("age")
    assert (c.role, c.kind, c.classes, c.on_missing, c.on_out_of_bounds) == (
        "covariate",
        "numeric",
        ("health",),
        "error",
        "error",
    )
    assert Column("dead", role="event").kind == "binary"
    assert Column("dead", role="event").categories == (False, True)
    assert Column("site", role="group", categories=("a", "b")).kind == "categorical"
    assert Column("x", bounds=[0, 1]).bounds == (0.0, 1.0)
    assert Column("x", classes="genetic").classes == ("genetic",)
    assert Column("n", kind="categorical", categories=(np.int64(1), 2)).categories == (1, 2)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"name": ""}, "non-empty string"),
        ({"name": "x", "role": "patient"}, "role must be one of"),
        ({"name": "x", "kind": "ordinal"}, "kind must be one of"),
        ({"name": "x", "classes": ("health", "secret")}, "classes must be a non-empty subset"),
        ({"name": "x", "classes": ()}, "classes must be a non-empty subset"),
        ({"name": "x", "classes": ("public", "health")}, "'public' .* cannot be combined"),
        ({"name": "x", "bounds": (5, 1)}, "lo <= hi"),
        ({"name": "x", "bounds": (0, float("inf"))}, "two finite numbers"),
        ({"name": "x", "bounds": (0, 1, 2)}, "two finite numbers"),
        ({"name": "x", "bounds": (False, True)}, "two finite numbers"),
        ({"name": "x", "kind": "categorical"}, "needs its public levels"),
        ({"name": "x", "kind": "categorical", "categories": ("a", 1)}, "all text or all numbers"),
        ({"name": "x", "kind": "categorical", "categories": (1, True)}, "distinct"),
        ({"name": "x", "kind": "categorical", "categories": (1.5, 2)}, "str, int or bool"),
        ({"name": "x", "kind": "categorical", "categories": "ab"}, "tuple of levels"),
        ({"name": "x", "kind": "binary", "categories": (1, 2, 3)}, "exactly two categories"),
        ({"name": "x", "categories": (1, 2)}, "categories apply to categorical"),
        ({"name": "x", "kind": "binary", "bounds": (0, 1)}, "numeric columns only"),
        ({"name": "x", "on_missing": "impute"}, "on_missing must be one of"),
        ({"name": "x", "on_out_of_bounds": "clip"}, "needs a numeric column with declared"),
        ({"name": "x", "resolution": 0}, "resolution must be a finite number > 0"),
        ({"name": "t", "role": "time", "kind": "binary"}, "time column must be numeric"),
        ({"name": "e", "role": "event", "kind": "numeric"}, "event column must be binary"),
    ],
)
def test_column_validation(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(SchemaError, match=words):
        Column(**kwargs)  # type: ignore[arg-type]


# ---- Schema ------------------------------------------------------------------------------


def test_schema_lookup_and_public_bounds() -> None:
    s = Schema(
        [Column("age", bounds=(0, 120)), Column("sex", kind="binary", categories=("F", "M"))]
    )
    assert s.names == ("age", "sex") and len(s) == 2 and "age" in s
    assert s.column("age").bounds == (0.0, 120.0)
    assert s.public_bounds("age") == (0.0, 120.0)
    assert s.public_bounds("sex") is None
    assert s.public_categories("sex") == ("F", "M")
    with pytest.raises(
        SchemaError, match="unknown column 'bmi'; the schema's columns are: 'age', 'sex'"
    ):
        s.column("bmi")
    inferred = Schema(s.columns, declared=False)
    assert inferred.public_bounds("age") is None
    assert inferred.public_categories("sex") is None


def test_schema_validation() -> None:
    with pytest.raises(SchemaError, match="repeated"):
        Schema([Column("a"), Column("a")])
    with pytest.raises(SchemaError, match="unit must be 'patient' or 'row'"):
        Schema([Column("a")], unit="visit")  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match=r"sf\.Column objects"):
        Schema([{"name": "a"}])  # type: ignore[list-item]
    with pytest.raises(SchemaError, match=r"list of sf\.Column"):
        Schema(Column("a"))  # type: ignore[arg-type]


def test_to_dict_is_json_and_round_trips() -> None:
    s = Schema(
        [
            Column("id", role="identifier", classes=("pi",)),
            Column("time", role="time", bounds=(0, 3650), resolution=1.0),
            Column("dead", role="event", categories=(0, 1)),
            Column("smoker", kind="binary"),
            Column("arm", role="group", categories=("extra", "intra"), on_missing="drop"),
            Column("age", bounds=(18, 100), on_out_of_bounds="clip", classes=("health", "pi")),
        ],
        unit="row",
    )
    text = json.dumps(s.to_dict())
    back = Schema.from_dict(json.loads(text))
    assert back == s
    assert back.to_dict() == s.to_dict()
    assert back.column("smoker").categories == (False, True)


def test_inferred_schema_is_not_shared_by_default() -> None:
    s = Schema([Column("age", bounds=(39, 82))], declared=False)
    with pytest.raises(SchemaError, match=r"inferred from the data.*must not be shared"):
        s.to_dict()
    d = s.to_dict(allow_inferred=True)
    assert Schema.from_dict(d).declared is False


@pytest.mark.parametrize(
    ("d", "words"),
    [
        ({"columns": [{"name": "a", "bound": [0, 1]}]}, "unknown: \\['bound'\\]"),
        ({"columns": [{"role": "covariate"}]}, "needs a 'name'"),
        ({"format": "other/2", "columns": []}, "unsupported schema format"),
        ({"cols": []}, "unknown keys: \\['cols'\\]"),
        ([1, 2], "must be a mapping"),
    ],
)
def test_from_dict_errors(d: object, words: str) -> None:
    with pytest.raises(SchemaError, match=words):
        Schema.from_dict(d)  # type: ignore[arg-type]


_name = st.text(alphabet="abcdefghij_.", min_size=1, max_size=8)
_finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)
_numeric = st.builds(
    lambda n, a, b, m, o, r: Column(
        n, bounds=(min(a, b), max(a, b)), on_missing=m, on_out_of_bounds=o, resolution=r
    ),
    _name,
    _finite,
    _finite,
    st.sampled_from(["error", "drop"]),
    st.sampled_from(["error", "clip", "drop"]),
    st.none() | st.floats(min_value=1e-6, max_value=1e6),
)
_levels = st.lists(st.text(max_size=5), min_size=1, max_size=6, unique=True) | st.lists(
    st.integers(-1000, 1000), min_size=1, max_size=6, unique=True
)
_categorical = st.builds(
    lambda n, levels, classes: Column(
        n, kind="categorical", categories=tuple(levels), classes=classes
    ),
    _name,
    _levels,
    st.one_of(
        st.just(("public",)),
        st.lists(st.sampled_from([c for c in DATA_CLASSES if c != "public"]), min_size=1,
                 max_size=5, unique=True).map(tuple),
    ),
)


@settings(max_examples=60, deadline=None)
@given(
    columns=st.lists(_numeric | _categorical, max_size=6, unique_by=lambda c: c.name),
    unit=st.sampled_from(["patient", "row"]),
)
def test_schema_json_round_trip_property(columns: list[Column], unit: str) -> None:
    s = Schema(columns, unit=unit)  # type: ignore[arg-type]
    assert Schema.from_dict(json.loads(json.dumps(s.to_dict()))) == s


# ---- inference ---------------------------------------------------------------------------


def test_infer_kinds_identifiers_and_left_out_columns() -> None:
    n = 60
    df = pd.DataFrame(
        {
            "patient_id": np.arange(n),
            "MRN": [f"m{i}" for i in range(n)],
            "age": np.linspace(20.5, 80.5, n),
            "stage": np.tile([1, 2, 3], n // 3),
            "ecog": np.tile([0.0, 1.0, 2.0, np.nan], n // 4),
            "sex": np.tile(["M", "F"], n // 2),
            "smoker": np.tile([True, False, False], n // 3),
            "notes": [f"free text {i}" for i in range(n)],
            "visit": [date(2020, 1, 1)] * n,
            "empty": [None] * n,
            "count": np.arange(n),
        }
    )
    with pytest.warns(InferredSchemaWarning) as record:
        s = Schema.infer(df, site="amsterdam")
    msg = str(record[0].message)
    assert msg.startswith(
        "schema inferred from the data at site 'amsterdam': inferred bounds and categories are "
        "not public and will not be accepted for differential privacy; declare them with sf.Schema"
    )
    assert "'notes', 'visit', 'empty'" in msg
    assert record[0].filename == __file__  # the warning points at the caller
    assert s.declared is False
    kinds = {c.name: (c.role, c.kind, c.bounds, c.categories) for c in s}
    assert kinds["patient_id"][0] == "identifier" and kinds["MRN"][0] == "identifier"
    assert s.column("patient_id").classes == ("pi",)
    assert kinds["age"] == ("covariate", "numeric", (20.5, 80.5), None)
    assert kinds["stage"] == ("covariate", "categorical", None, (1, 2, 3))
    assert kinds["ecog"] == ("covariate", "categorical", None, (0, 1, 2))
    assert kinds["sex"] == ("covariate", "binary", None, ("F", "M"))
    assert kinds["smoker"] == ("covariate", "binary", None, (False, True))
    assert kinds["count"] == ("covariate", "numeric", (0.0, n - 1.0), None)
    assert "notes" not in s and "visit" not in s and "empty" not in s
    assert s.public_bounds("age") is None


def test_infer_max_levels_and_site_default() -> None:
    df = pd.DataFrame({"grade": [1, 2, 3, 4, 1]})
    with pytest.warns(InferredSchemaWarning, match="at this site"):
        s = Schema.infer(df, max_levels=3)
    assert s.column("grade").kind == "numeric"
    with pytest.raises(SchemaError, match="max_levels"):
        Schema.infer(df, max_levels=0)


def test_site_data_without_schema_infers_with_warning() -> None:
    df = pd.DataFrame({"age": [50.0, 60.0], "id": [1, 2]})
    with pytest.warns(InferredSchemaWarning, match="at site 'beijing'"):
        sd = SiteData(df, site="beijing")
    assert sd.schema.declared is False
    assert sd.schema.column("id").role == "identifier"
    assert repr(sd) == "SiteData(pandas DataFrame, 2 columns, inferred schema)"
    with pytest.raises(SchemaError, match="identifier"):
        sd.batches(["id"])


def test_infer_streams_file_sources(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "d.csv"
    pd.DataFrame({"x": np.arange(200_000) / 7.0, "g": ["a", "b"] * 100_000}).to_csv(
        path, index=False
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.warns(InferredSchemaWarning):
            s = Schema.infer(path)
    assert s.column("x").bounds == (0.0, 199_999 / 7.0)
    assert s.column("g").categories == ("a", "b")


@pytest.mark.parametrize(
    ("name", "is_id"),
    [
        ("id", True),
        ("ID", True),
        ("patient_id", True),
        ("PatientID", True),
        ("subjectId", True),
        ("record.id", True),
        ("mrn", True),
        ("hospital_mrn", True),
        ("bsn", True),
        ("nhs_number", True),
        ("covid", False),
        ("paid", False),
        ("age", False),
        ("idle_time", False),
    ],
)
def test_identifier_guess(name: str, is_id: bool) -> None:
    assert looks_like_identifier(name) is is_id


def test_schema_type_errors_in_site_data() -> None:
    with pytest.raises(SchemaError, match=r"schema must be an sf\.Schema"):
        SiteData(pd.DataFrame({"a": [1.0]}), schema=[Column("a")])  # type: ignore[arg-type]
    with pytest.raises(DataError):
        SiteData({"a": [1.0]}, schema=Schema([Column("a")]))

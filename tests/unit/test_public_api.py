"""The front door: exactly these names, typed errors with instructions."""

from __future__ import annotations

import pickle

import pandas as pd
import pytest

import safeflow as sf
from tests.conftest import LUNG_SCHEMA, lung, lung_federation


def test_public_names_are_exactly_these() -> None:
    assert sorted(sf.__all__) == sorted([
        "DP", "SQL", "Column", "Federation", "PolicySettings", "Release", "Schema", "Site",
        "__version__", "cox",
        "crosstab", "describe", "errors", "fl", "glm", "histogram", "kaplan_meier", "logrank"])


def test_errors_form_one_tree() -> None:
    for name in sf.errors.__all__:
        assert issubclass(getattr(sf.errors, name), sf.errors.SafeflowError)
    assert issubclass(sf.errors.InvalidParameter, ValueError)


@pytest.mark.parametrize("kwargs,msg", [
    ({"name": "bad name!", "jurisdiction": "CN"}, "site name must be"),
    ({"name": "aggregator", "jurisdiction": "CN"}, "site name must be"),
    ({"name": "a", "jurisdiction": "China"}, "ISO 3166"),
])
def test_site_validation(kwargs: dict, msg: str) -> None:
    with pytest.raises(sf.errors.InvalidParameter, match=msg):
        sf.Site(data=lung(), schema=LUNG_SCHEMA, **kwargs)


def test_federation_validation() -> None:
    a = sf.Site("a", lung(), "CN", schema=LUNG_SCHEMA)
    with pytest.raises(sf.errors.InvalidParameter, match=r"2\.\.1024 sites"):
        sf.Federation.local([a], destination="NL", purpose="x")
    b = sf.Site("a", lung(), "NL", schema=LUNG_SCHEMA)
    with pytest.raises(sf.errors.InvalidParameter, match="unique"):
        sf.Federation.local([a, b], destination="NL", purpose="x")
    c = sf.Site("c", lung(), "NL", schema=LUNG_SCHEMA)
    with pytest.raises(sf.errors.InvalidParameter, match="destination"):
        sf.Federation.local([a, c], destination="Holland", purpose="x")
    with pytest.raises(sf.errors.InvalidParameter, match="threshold"):
        sf.Federation.local([a, c], destination="NL", purpose="x", threshold=1)
    other = sf.Schema([sf.Column("age", bounds=(0, 150))])
    d = sf.Site("d", lung()[["age"]], "NL", schema=other)
    with pytest.raises(sf.errors.SchemaError, match="different schema"):
        sf.Federation.local([a, d], destination="NL", purpose="x")


def test_analysis_argument_errors() -> None:
    fed = lung_federation(2)
    with pytest.raises(sf.errors.InvalidParameter, match="unknown protocol 'rot13'"):
        sf.describe(fed, ["age"], protocol="rot13")
    with pytest.raises(sf.errors.InvalidParameter, match="non-empty list"):
        sf.describe(fed, "age")
    with pytest.raises(sf.errors.SchemaError, match="unknown column 'bmi'"):
        sf.describe(fed, ["bmi"], protocol="plain")
    with pytest.raises(sf.errors.InvalidParameter, match="strictly increasing"):
        sf.histogram(fed, "age", bins=[50, 40])
    with pytest.raises(sf.errors.InvalidParameter, match="categorical or binary"):
        sf.crosstab(fed, "age", "sex")
    with pytest.raises(sf.errors.InvalidParameter, match=r"sf\.Federation"):
        sf.describe(pd.DataFrame(), ["age"])


def test_release_is_certified_and_exports(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rel = sf.describe(lung_federation(2), ["age"], protocol="masking")
    assert "certified ALLOW" in repr(rel) and "masking" in repr(rel)
    out = rel.export(tmp_path / "out")
    assert sorted(p.name for p in out.iterdir()) == [
        "SUMMARY.txt", "certificate.json", "value.csv", "value.parquet"]
    with pytest.raises(sf.errors.SafeflowError, match="empty"):
        rel.export(tmp_path / "out")  # never overwrites
    facts = rel.facts
    assert facts["output"]["protocol"] == "masking"
    assert {o["jurisdiction"] for o in facts["origin"]} == {"CN", "NL"}
    assert facts["run"]["border_bytes"]["CN->NL"] > 0
    assert len(facts["run"]["protocol_spec_sha256"]) == 64


def test_uncertified_release_refuses_export(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rel = sf.Release(value=pd.DataFrame({"a": [1]}), facts={}, analysis="describe",
                     protocol="masking")
    with pytest.raises(sf.errors.Uncertified, match="uncertified"):
        rel.export(tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_sites_and_data_refuse_pickling() -> None:
    site = sf.Site("a", lung(), "CN", schema=LUNG_SCHEMA)
    with pytest.raises(sf.errors.SafeflowError):
        pickle.dumps(site)


def test_out_of_bounds_value_is_a_typed_error_before_anything_is_sent() -> None:
    df = lung().copy()
    df.loc[df.index[0], "age"] = 130
    sites = [sf.Site("a", df, "CN", schema=LUNG_SCHEMA), sf.Site("b", lung(), "NL",
                                                                 schema=LUNG_SCHEMA)]
    fed = sf.Federation.local(sites, destination="NL", purpose="scientific-research")
    with pytest.raises(sf.errors.OutOfBoundsError, match="age") as e:
        sf.describe(fed, ["age"], protocol="masking")
    assert "130" not in str(e.value)


def test_inferred_schema_warns_and_still_computes() -> None:
    df = lung()[["age", "sex"]]
    with pytest.warns(sf.data.InferredSchemaWarning if hasattr(sf, "data") else UserWarning):
        sites = [sf.Site("a", df.iloc[:100], "CN"), sf.Site("b", df.iloc[100:], "NL")]
    fed = sf.Federation.local(sites, destination="NL", purpose="scientific-research")
    rel = sf.describe(fed, ["age"], protocol="masking")
    assert rel.value["mean"][0] == df["age"].mean()

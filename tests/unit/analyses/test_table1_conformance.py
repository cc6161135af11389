"""Every Table 1 analysis x protocol reproduces pandas on the pooled rows.

Real data: the NCCTG lung data (lifelines) split by its ``inst`` column into sites in
different jurisdictions; plus hypothesis over random partitions and site counts.
Counts and integer sums are exact; means of integer data are bit-identical to pandas;
SDs are the correctly rounded value of the exact sums (pandas' two-pass SD may differ in
the last bits, so they are compared at 1e-12); plain, masking and BFV are bit-identical to
each other; CKKS lies within its documented bound.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import safeflow as sf
from tests.conftest import JURISDICTIONS, LUNG_SCHEMA, lung, lung_federation

EXACT = ["plain", "masking"] + (["he"] if importlib.util.find_spec("tenseal") else [])
NUM, CAT = ["age", "time", "wt.loss"], ["sex", "ph.ecog", "status"]


def _pooled(cols: list[str]) -> pd.DataFrame:
    df = lung()
    drop = [c for c in cols if LUNG_SCHEMA.column(c).on_missing == "drop"]
    return df.dropna(subset=drop)


def _check_describe(value: pd.DataFrame, ref: pd.DataFrame) -> None:
    t = value.set_index(["variable", "level"])
    for c in NUM:
        assert t.loc[(c, ""), "n"] == ref[c].count()
        if c != "wt.loss":  # integer-valued columns: bit-identical means
            assert t.loc[(c, ""), "mean"] == ref[c].mean()
        np.testing.assert_allclose(t.loc[(c, ""), "mean"], ref[c].mean(), rtol=1e-14)
        np.testing.assert_allclose(t.loc[(c, ""), "sd"], ref[c].std(), rtol=1e-12)
    for c in CAT:
        counts = ref[c].value_counts()
        for lev in LUNG_SCHEMA.column(c).categories or ():
            assert t.loc[(c, str(lev)), "count"] == counts.get(lev, 0)


@pytest.mark.parametrize("protocol", EXACT)
def test_describe_matches_pandas_on_lung(protocol: str) -> None:
    rel = sf.describe(lung_federation(3), NUM + CAT, protocol=protocol)
    _check_describe(rel.value, _pooled(NUM + CAT))
    assert rel.facts["output"]["sdc"]["n"] == len(_pooled(NUM + CAT))
    assert rel.certified and rel.decision.exportable


@pytest.mark.parametrize("protocol", EXACT)
def test_describe_by_group_matches_pandas(protocol: str) -> None:
    rel = sf.describe(lung_federation(2), ["age"], by="sex", protocol=protocol)
    ref = lung().groupby("sex")["age"]
    for lev in (1, 2):
        row = rel.value[rel.value["group"] == str(lev)].iloc[0]
        assert row["n"] == ref.count()[lev]
        assert row["mean"] == ref.mean()[lev]
        np.testing.assert_allclose(row["sd"], ref.std()[lev], rtol=1e-12)


@pytest.mark.parametrize("protocol", EXACT)
def test_describe_by_site_matches_each_site(protocol: str) -> None:
    fed = lung_federation(2)
    rel = sf.describe(fed, ["age"], by_site=True, protocol=protocol)
    from tests.conftest import split_by_inst

    for i, part in enumerate(split_by_inst(lung(), 2)):
        row = rel.value[rel.value["site"] == f"site{i}"].iloc[0]
        assert row["n"] == len(part) and row["mean"] == part["age"].mean()


@pytest.mark.parametrize("protocol", EXACT)
def test_histogram_matches_numpy(protocol: str) -> None:
    edges = [30, 40, 50, 60, 70, 80, 90]
    rel = sf.histogram(lung_federation(3), "age", bins=edges, protocol=protocol)
    want, _ = np.histogram(lung()["age"], bins=edges)
    counts = rel.value.set_index("bin")["count"]
    assert counts.iloc[1:-1].tolist() == want.tolist()
    assert counts["below"] == (lung()["age"] < 30).sum()
    assert counts["above"] == (lung()["age"] > 90).sum()


@pytest.mark.parametrize("protocol", EXACT)
def test_crosstab_matches_pandas(protocol: str) -> None:
    rel = sf.crosstab(lung_federation(4), "sex", "status", protocol=protocol)
    ref = pd.crosstab(lung()["sex"], lung()["status"])
    assert rel.value.to_numpy().tolist() == ref.to_numpy().tolist()
    assert rel.facts["output"]["sdc"]["min_cell"] == int(ref.to_numpy().min())


def test_protocols_are_bit_identical() -> None:
    fed = lung_federation(3)
    outs = {p: sf.describe(fed, NUM + CAT, by="sex", protocol=p).value for p in EXACT}
    for p in EXACT[1:]:
        pd.testing.assert_frame_equal(outs[EXACT[0]], outs[p], check_exact=True)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_sites=st.integers(2, 6), seed=st.integers(0, 2**32 - 1),
       protocol=st.sampled_from(["plain", "masking"]))
def test_random_partitions(n_sites: int, seed: int, protocol: str) -> None:
    df = lung()
    rng = np.random.default_rng(seed)
    owner = rng.integers(0, n_sites, size=len(df))
    owner[:n_sites] = np.arange(n_sites)  # every site holds at least one row
    sites = [sf.Site(f"s{i}", df[owner == i], JURISDICTIONS[i], schema=LUNG_SCHEMA)
             for i in range(n_sites)]
    fed = sf.Federation.local(sites, destination="NL", purpose="scientific-research")
    rel = sf.describe(fed, NUM + CAT, protocol=protocol)
    _check_describe(rel.value, _pooled(NUM + CAT))


@pytest.mark.skipif("he" not in EXACT, reason="TenSEAL is not installed")
def test_ckks_table1_is_within_its_documented_bound() -> None:
    """CKKS: |T' - T| <= 1e-10 * M^2 * B for each total (he.py docstring), counts exact."""
    m, rows = 3, 500
    fed = lung_federation(m, max_rows_per_site=rows)
    rel = sf.describe(fed, ["age", "time", "sex"], protocol="he", scheme="ckks")
    ref = lung()
    t = rel.value.set_index(["variable", "level"])
    assert t.loc[("sex", "1"), "count"] == (ref["sex"] == 1).sum()
    for col, hi in (("age", 100.0), ("time", 1100.0)):
        n = len(ref)
        assert t.loc[(col, ""), "n"] == n
        bound_sum = 1e-10 * m**2 * rows * hi
        assert abs(t.loc[(col, ""), "mean"] - ref[col].mean()) <= bound_sum / n
        assert t.loc[(col, ""), "mean"] != ref[col].mean()  # flooded: not bit-exact

"""Local mode through OpenDP's Polars API.

OpenDP 0.16's Polars plugin only works with the Polars it was built with (1.36.1): where
another Polars is installed, the release tests are skipped and the typed error is tested.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from safeflow.dp import DP, BudgetLedger, local_counts, local_sum, polars_api_available
from safeflow.dp.local import required_polars_version
from safeflow.errors import BudgetExceeded, InvalidParameter, ProtocolError

needs_api = pytest.mark.skipif(
    not polars_api_available(),
    reason=f"OpenDP's Polars API needs polars=={required_polars_version()}",
)

LOCAL = DP(1, unit="row", mode="local")


@pytest.fixture
def df() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 2000
    return pd.DataFrame(
        {
            "sex": rng.choice([1, 2], n),
            "arm": rng.choice(["a", "b"], n),
            "age": rng.uniform(18, 100, n),
            "days": rng.integers(0, 30, n),
        }
    )


def test_required_version_is_read_from_opendp() -> None:
    assert required_polars_version() == "1.36.1"


@pytest.mark.skipif(polars_api_available(), reason="the compatible Polars is installed")
def test_incompatible_polars_is_a_typed_error(df: pd.DataFrame) -> None:
    with pytest.raises(ProtocolError, match=r"needs polars==1\.36\.1"):
        local_counts(df, None, LOCAL)
    with pytest.raises(ProtocolError, match="opendp\\[polars\\]"):
        local_sum(df, "age", (18, 100), LOCAL)


def test_arguments_are_checked_before_anything_runs(df: pd.DataFrame) -> None:
    with pytest.raises(InvalidParameter, match="mode='local'"):
        local_counts(df, None, DP(1))
    with pytest.raises(InvalidParameter, match=r"sf\.DP"):
        local_counts(df, None, 1.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter, match="max_contributions"):
        local_counts(df, None, LOCAL, max_contributions=0)
    with pytest.raises(InvalidParameter, match="max_rows"):
        local_counts(df, None, LOCAL, max_rows=2**40)
    with pytest.raises(InvalidParameter, match="lower < upper"):
        local_sum(df, "age", (5, 5), LOCAL)


@needs_api
def test_total_count(df: pd.DataFrame) -> None:
    r = local_counts(df, None, DP(2, unit="row", mode="local"))
    assert list(r.value.columns) == ["count"] and r.value["count"].dtype == np.int64
    f = r.facts
    assert f["mechanism"] == "discrete_laplace" and r.scale == 0.5
    assert f["epsilon"] == "2/1" and f["mode"] == "local" and f["unit"] == "row"
    assert abs(int(r.value["count"][0]) - len(df)) < 60  # 60 = 120 x scale: p < 1e-50


@needs_api
def test_grouped_counts_use_public_keys_including_empty_groups(df: pd.DataFrame) -> None:
    r = local_counts(
        df, ["sex", "arm"], LOCAL, levels={"sex": [1, 2, 3], "arm": ["a", "b"]}, max_contributions=2
    )
    assert r.value[["sex", "arm"]].values.tolist() == [
        [1, "a"],
        [1, "b"],
        [2, "a"],
        [2, "b"],
        [3, "a"],
        [3, "b"],
    ]
    assert r.scale == 2.0  # 2 rows per patient, ε = 1
    assert r.facts["max_contributions"] == 2
    exact = df.groupby(["sex", "arm"]).size()
    for row in r.value.itertuples():
        truth = exact.get((row.sex, row.arm), 0)
        assert abs(row.count - truth) < 100  # 50 x scale


@needs_api
def test_grouped_counts_need_public_levels(df: pd.DataFrame) -> None:
    with pytest.raises(InvalidParameter, match="group keys must be public"):
        local_counts(df, "sex", LOCAL)
    with pytest.raises(InvalidParameter, match="unknown group column"):
        local_counts(df, "nope", LOCAL, levels={"nope": [1]})


@needs_api
def test_sum_float_and_integer(df: pd.DataFrame) -> None:
    r = local_sum(df, "age", (0, 100), LOCAL)
    assert r.facts["mechanism"] == "laplace" and 100 <= r.scale < 100.1
    assert abs(float(r.value["age"][0]) - float(df["age"].sum())) < 50 * r.scale
    i = local_sum(df, "days", (0, 30), LOCAL)
    assert i.facts["mechanism"] == "discrete_laplace" and i.scale == 30.0
    g = local_sum(df, "age", (0, 100), LOCAL, by="sex", levels={"sex": [1, 2]})
    assert g.value["sex"].tolist() == [1, 2]
    assert g.facts["bounds"] == [0.0, 100.0]
    assert r.accuracy == pytest.approx(-math.log(0.05) * r.scale, rel=1e-3)


@needs_api
def test_gaussian_local_mode_fits_epsilon_delta(df: pd.DataFrame) -> None:
    r = local_counts(df, None, DP(1, delta=1e-6, unit="row", mode="local"))
    assert r.facts["mechanism"] == "discrete_gaussian" and r.facts["rho"] > 0


@needs_api
def test_ledger_is_debited_before_release(df: pd.DataFrame, tmp_path: Path) -> None:
    ledger = BudgetLedger(tmp_path / "b.sqlite")
    ledger.set_total("lung@beijing", "1.5")
    r = local_counts(df, None, LOCAL, ledger=ledger, dataset="lung@beijing", query_id="n")
    assert r.facts["receipt"]["epsilon"] == "1/1"
    with pytest.raises(BudgetExceeded):
        local_counts(df, None, LOCAL, ledger=ledger, dataset="lung@beijing", query_id="n2")
    assert ledger.remaining("lung@beijing").epsilon == Fraction(1, 2)
    with pytest.raises(InvalidParameter, match="dataset= and query_id="):
        local_counts(df, None, LOCAL, ledger=ledger)


@needs_api
def test_too_many_rows_is_refused(df: pd.DataFrame) -> None:
    with pytest.raises(InvalidParameter, match="max_rows"):
        local_counts(df, None, LOCAL, max_rows=10)


@needs_api
def test_polars_frames_are_accepted(df: pd.DataFrame) -> None:
    import polars as pl

    r = local_counts(pl.from_pandas(df), None, LOCAL)
    assert len(r.value) == 1
    r = local_counts(pl.from_pandas(df).lazy(), None, LOCAL)
    assert len(r.value) == 1
    with pytest.raises(InvalidParameter, match="pandas or polars"):
        local_counts([1, 2], None, LOCAL)


@needs_api
def test_local_noise_scale_matches_the_central_mechanism(df: pd.DataFrame) -> None:
    """Same ε and sensitivity: the site's Polars-API noise has the central scale."""
    from safeflow.dp import count_mechanism

    r = local_counts(df, None, DP("0.5", unit="row", mode="local"))
    assert r.scale == count_mechanism(1, DP("0.5", unit="row")).scale

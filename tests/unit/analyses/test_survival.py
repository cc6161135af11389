"""Federated Kaplan-Meier and log-rank reproduce lifelines on the pooled rows.

Real data: the NCCTG lung data (lifelines) split by institution into 2-5 sites and into all
18; scikit-survival's veterans and whas500 data split at random into 2-5 sites. Durations
are whole days and the schema grid has resolution 1, so binning is exact: counts (at risk,
events, censored), times and medians are identical to lifelines, survival is bit-identical
(same formula, same order), and the confidence band and log-rank statistic and p-value
agree to 1e-8 relative (they differ from lifelines only in the last bits: the normal
quantile, BLAS summation order and SciPy's chi-square tail are computed differently).
"""

from __future__ import annotations

import importlib
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lifelines import KaplanMeierFitter
from lifelines.statistics import logrank_test, multivariate_logrank_test
from scipy import stats
from sksurv.datasets import load_veterans_lung_cancer, load_whas500

import safeflow as sf
from safeflow.analyses.survival import KaplanMeier, LogRank, kaplan_meier, logrank
from safeflow.analyses.survival_results import chi2_sf
from tests.conftest import JURISDICTIONS, LUNG_SCHEMA, lung, lung_federation


def _he_missing() -> str | None:
    try:
        importlib.import_module("safeflow.protocols.he")
    except ImportError as e:
        return f"the 'he' protocol is not available yet (safeflow.protocols.he: {e})"
    return None


_HE = _he_missing()
PROTOCOLS = [
    "plain",
    "masking",
    pytest.param("he", marks=pytest.mark.skipif(_HE is not None, reason=str(_HE))),
]
RTOL = 1e-8

# ----------------------------------------------------------------------------- data sets

VETERANS_SCHEMA = sf.Schema(
    [
        sf.Column("days", classes=("public",), role="time", bounds=(0, 1000), resolution=1.0),
        sf.Column("status", classes=("public",), role="event", kind="binary"),  # (False, True)
        sf.Column(
            "treatment", classes=("public",), kind="categorical", categories=("standard", "test")
        ),
        sf.Column(
            "celltype",
            classes=("public",),
            kind="categorical",
            categories=("adeno", "large", "smallcell", "squamous"),
        ),
    ]
)
WHAS_SCHEMA = sf.Schema(
    [
        sf.Column("lenfol", classes=("public",), role="time", bounds=(0, 2400), resolution=1.0),
        sf.Column("fstat", classes=("public",), role="event", kind="binary"),
        sf.Column("gender", classes=("public",), kind="categorical", categories=("0", "1")),
        sf.Column("chf", classes=("public",), kind="categorical", categories=("0", "1")),
    ]
)


def veterans() -> pd.DataFrame:
    x, y = load_veterans_lung_cancer()
    return pd.DataFrame(
        {
            "days": y["Survival_in_days"],
            "status": y["Status"],
            "treatment": x["Treatment"].astype(str).to_numpy(),
            "celltype": x["Celltype"].astype(str).to_numpy(),
        }
    )


def whas500() -> pd.DataFrame:
    x, y = load_whas500()
    return pd.DataFrame(
        {
            "lenfol": y["lenfol"],
            "fstat": y["fstat"],
            "gender": x["gender"].astype(str).to_numpy(),
            "chf": x["chf"].astype(str).to_numpy(),
        }
    )


def random_federation(
    df: pd.DataFrame, schema: sf.Schema, n_sites: int, seed: int = 0
) -> sf.Federation:
    """``df`` split at random into ``n_sites`` sites (each holding at least one row)."""
    owner = np.random.default_rng(seed).integers(0, n_sites, size=len(df))
    owner[:n_sites] = np.arange(n_sites)
    sites = [
        sf.Site(f"s{i}", df[owner == i], JURISDICTIONS[i], schema=schema) for i in range(n_sites)
    ]
    return sf.Federation.local(sites, destination="NL", purpose="scientific-research")


def federation(parts: list[pd.DataFrame], schema: sf.Schema) -> sf.Federation:
    sites = [sf.Site(f"s{i}", p, JURISDICTIONS[i], schema=schema) for i, p in enumerate(parts)]
    return sf.Federation.local(sites, destination="NL", purpose="scientific-research")


# ------------------------------------------------------------------------- lifelines refs


@contextmanager
def _quiet_lifelines() -> Iterator[None]:
    """lifelines' own warnings (and its global np.seterr) are not ours to judge."""
    err = np.geterr()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="lifelines")
        try:
            yield
        finally:
            np.seterr(**err)


def km_ref(t: pd.Series, e: pd.Series) -> KaplanMeierFitter:
    with _quiet_lifelines():
        return KaplanMeierFitter().fit(np.asarray(t, float), np.asarray(e, bool))


def check_curve(curve: pd.DataFrame, t: pd.Series, e: pd.Series) -> float:
    """Compare one group's curve with lifelines; return the largest relative deviation."""
    ref = km_ref(t, e)
    et = ref.event_table
    np.testing.assert_array_equal(curve.index.to_numpy(float), et.index.to_numpy(float))
    np.testing.assert_array_equal(curve["at_risk"].to_numpy(), et["at_risk"].to_numpy())
    np.testing.assert_array_equal(curve["events"].to_numpy(), et["observed"].to_numpy())
    np.testing.assert_array_equal(curve["censored"].to_numpy(), et["censored"].to_numpy())
    dev = 0.0
    for col, want in [
        ("survival", ref.survival_function_.iloc[:, 0]),
        ("ci_lower", ref.confidence_interval_.iloc[:, 0]),
        ("ci_upper", ref.confidence_interval_.iloc[:, 1]),
    ]:
        got, want = curve[col].to_numpy(), want.to_numpy()
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=0, err_msg=col)
        nz = want != 0
        dev = max(dev, float(np.max(np.abs(got[nz] - want[nz]) / np.abs(want[nz]), initial=0)))
    return dev


def check_km(rel: sf.Release, df: pd.DataFrame, t: str, e: str, by: str | None) -> float:
    km = rel.value
    if by is None:
        dev = check_curve(km.survival, df[t], df[e])
        assert km.median == km_ref(df[t], df[e]).median_survival_time_
        return dev
    dev = 0.0
    for label, sub in df.groupby(df[by].astype(str)):
        dev = max(dev, check_curve(km.survival.loc[label], sub[t], sub[e]))
        assert km.median[label] == km_ref(sub[t], sub[e]).median_survival_time_
    return dev


def lr_ref(df: pd.DataFrame, t: str, e: str, g: str) -> tuple[float, float, int]:
    with _quiet_lifelines():
        levels = sorted(df[g].unique())
        if len(levels) == 2:
            a, b = (df[df[g] == lev] for lev in levels)
            r = logrank_test(a[t], b[t], a[e].astype(bool), b[e].astype(bool))
        else:
            r = multivariate_logrank_test(df[t], df[g], df[e].astype(bool))
    return float(r.test_statistic), float(r.p_value), int(r.degrees_of_freedom)


def check_lr(rel: sf.Release, df: pd.DataFrame, t: str, e: str, g: str) -> None:
    stat, p, dof = lr_ref(df, t, e, g)
    lr = rel.value
    assert lr.df == dof
    np.testing.assert_allclose(lr.statistic, stat, rtol=RTOL)
    np.testing.assert_allclose(lr.p_value, p, rtol=RTOL)


# ----------------------------------------------------------------------- conformance


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("n_sites", [2, 3, 4, 5, 18])
def test_lung_by_institution_matches_lifelines(n_sites: int, protocol: str) -> None:
    fed, df = lung_federation(n_sites), lung()
    check_km(
        kaplan_meier(fed, "time", "status", by="sex", protocol=protocol),
        df,
        "time",
        "status",
        "sex",
    )
    check_lr(logrank(fed, "time", "status", "sex", protocol=protocol), df, "time", "status", "sex")
    rel = logrank(fed, "time", "status", "ph.ecog", protocol=protocol)  # 4 groups
    check_lr(rel, df.dropna(subset=["ph.ecog"]), "time", "status", "ph.ecog")
    assert rel.facts["run"]["rows_dropped"] == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("n_sites", [2, 3, 4, 5])
def test_veterans_random_split_matches_lifelines(n_sites: int, protocol: str) -> None:
    df = veterans()
    fed = random_federation(df, VETERANS_SCHEMA, n_sites, seed=n_sites)
    check_km(kaplan_meier(fed, "days", "status", protocol=protocol), df, "days", "status", None)
    check_km(
        kaplan_meier(fed, "days", "status", by="celltype", protocol=protocol),
        df,
        "days",
        "status",
        "celltype",
    )
    check_lr(
        logrank(fed, "days", "status", "treatment", protocol=protocol),
        df,
        "days",
        "status",
        "treatment",
    )
    check_lr(
        logrank(fed, "days", "status", "celltype", protocol=protocol),
        df,
        "days",
        "status",
        "celltype",
    )


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("n_sites", [2, 3, 4, 5])
def test_whas500_random_split_matches_lifelines(n_sites: int, protocol: str) -> None:
    df = whas500()
    fed = random_federation(df, WHAS_SCHEMA, n_sites, seed=100 + n_sites)
    check_km(kaplan_meier(fed, "lenfol", "fstat", protocol=protocol), df, "lenfol", "fstat", None)
    check_km(
        kaplan_meier(fed, "lenfol", "fstat", by="gender", protocol=protocol),
        df,
        "lenfol",
        "fstat",
        "gender",
    )
    check_lr(
        logrank(fed, "lenfol", "fstat", "chf", protocol=protocol), df, "lenfol", "fstat", "chf"
    )


def test_protocols_are_bit_identical() -> None:
    fed = lung_federation(4)
    outs = [
        kaplan_meier(fed, "time", "status", by="sex", protocol=p).value.survival
        for p in ("plain", "masking")
    ]
    pd.testing.assert_frame_equal(outs[0], outs[1], check_exact=True)
    lrs = [logrank(fed, "time", "status", "sex", protocol=p).value for p in ("plain", "masking")]
    assert lrs[0].statistic == lrs[1].statistic and lrs[0].p_value == lrs[1].p_value


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), n_rows=st.integers(1, 40), n_sites=st.integers(2, 4))
def test_random_small_data_matches_lifelines(
    data: st.DataObject, n_rows: int, n_sites: int
) -> None:
    schema = sf.Schema(
        [
            sf.Column("t", classes=("public",), role="time", bounds=(0, 20), resolution=1),
            sf.Column("e", classes=("public",), role="event", categories=(0, 1)),
            sf.Column("g", classes=("public",), kind="categorical", categories=("a", "b")),
        ]
    )
    ints = st.lists(st.integers(0, 20), min_size=n_rows, max_size=n_rows)
    df = pd.DataFrame(
        {
            "t": np.array(data.draw(ints), dtype=float),
            "e": data.draw(st.lists(st.integers(0, 1), min_size=n_rows, max_size=n_rows)),
            "g": data.draw(st.lists(st.sampled_from("ab"), min_size=n_rows, max_size=n_rows)),
        }
    )
    owner = np.array(
        data.draw(st.lists(st.integers(0, n_sites - 1), min_size=n_rows, max_size=n_rows))
    )
    fed = federation([df[owner == i] for i in range(n_sites)], schema)
    check_km(kaplan_meier(fed, "t", "e", protocol="plain"), df, "t", "e", None)
    check_km(kaplan_meier(fed, "t", "e", by="g", protocol="plain"), df, "t", "e", "g")
    if df["g"].nunique() == 2:
        check_lr(logrank(fed, "t", "e", "g", protocol="plain"), df, "t", "e", "g")


# ---------------------------------------------------------------------- grid and binning


def test_caller_grid_bins_to_the_grid_point_at_or_below() -> None:
    grid = list(range(0, 1101, 30))
    fed, df = lung_federation(3), lung()
    rel = kaplan_meier(fed, "time", "status", by="sex", time_grid=grid, protocol="masking")
    binned = df.assign(time=(df["time"] // 30) * 30)
    check_km(rel, binned, "time", "status", "sex")
    assert rel.value.time_grid == {"points": len(grid), "from": "caller"}
    check_lr(
        logrank(fed, "time", "status", "sex", time_grid=grid, protocol="plain"),
        binned,
        "time",
        "status",
        "sex",
    )


def test_durations_after_the_last_grid_point_go_to_the_last_point() -> None:
    fed, df = lung_federation(2), lung()
    rel = kaplan_meier(fed, "time", "status", time_grid=[0, 100, 500], protocol="plain")
    binned = df.assign(time=np.select([df.time >= 500, df.time >= 100], [500, 100], 0))
    check_km(rel, binned, "time", "status", None)


def test_fractional_resolution_bins_exactly() -> None:
    df = lung()[["time", "status"]].assign(time=lambda d: d["time"] / 10)  # 30.6 etc.
    schema = sf.Schema(
        [
            sf.Column("time", classes=("public",), role="time", bounds=(0, 110), resolution=0.1),
            sf.Column("status", classes=("public",), role="event", categories=(0, 1)),
        ]
    )
    fed = random_federation(df, schema, 3)
    rel = kaplan_meier(fed, "time", "status", protocol="plain")
    check_km(rel, df, "time", "status", None)
    assert rel.value.time_grid == {"points": 1101, "from": "schema"}


def test_grid_starting_after_some_durations_is_refused() -> None:
    with pytest.raises(sf.errors.InvalidParameter, match="before the first point of time_grid"):
        kaplan_meier(lung_federation(2), "time", "status", time_grid=[10, 20, 30], protocol="plain")


def test_missing_grid_is_a_typed_error_that_says_what_to_do() -> None:
    schema = sf.Schema(
        [
            sf.Column("t", classes=("public",), role="time"),
            sf.Column("e", classes=("public",), role="event"),
        ]
    )
    df = pd.DataFrame({"t": [1.0, 2.0], "e": [True, False]})
    fed = federation([df, df], schema)
    with pytest.raises(
        sf.errors.InvalidParameter, match=r"declare its bounds and resolution.*time_grid="
    ):
        kaplan_meier(fed, "t", "e", protocol="plain")
    rel = kaplan_meier(fed, "t", "e", time_grid=[0, 1, 2], protocol="plain")
    assert rel.value.survival["survival"].tolist() == [1.0, 0.5, 0.5]


@pytest.mark.parametrize("grid", [[], [0, 0, 1], [2, 1], [0, float("nan")], "0,1", [[0]]])
def test_bad_time_grids_are_refused(grid: object) -> None:
    with pytest.raises(sf.errors.InvalidParameter, match="strictly increasing"):
        kaplan_meier(lung_federation(2), "time", "status", time_grid=grid)  # type: ignore[arg-type]


def test_argument_errors() -> None:
    fed = lung_federation(2)
    with pytest.raises(sf.errors.InvalidParameter, match="alpha must be"):
        kaplan_meier(fed, "time", "status", alpha=1.5)
    with pytest.raises(sf.errors.InvalidParameter, match="event column 'age' is numeric"):
        kaplan_meier(fed, "time", "age", protocol="plain")
    with pytest.raises(sf.errors.InvalidParameter, match="duration column 'sex'"):
        kaplan_meier(fed, "sex", "status", protocol="plain")
    with pytest.raises(sf.errors.InvalidParameter, match="group column 'age'"):
        logrank(fed, "time", "status", "age", protocol="plain")
    with pytest.raises(sf.errors.InvalidParameter, match="exactly two categories"):
        kaplan_meier(fed, "time", "ph.ecog", protocol="plain")
    with pytest.raises(sf.errors.InvalidParameter, match="must differ"):
        logrank(fed, "time", "status", "status", protocol="plain")
    with pytest.raises(sf.errors.SchemaError, match="unknown column 'days'"):
        kaplan_meier(fed, "days", "status", protocol="plain")
    with pytest.raises(sf.errors.InvalidParameter, match=r"sf\.Federation"):
        logrank(lung(), "time", "status", "sex")
    with pytest.raises(sf.errors.InvalidParameter, match="unknown protocol"):
        logrank(fed, "time", "status", "sex", protocol="rot13")


# ---------------------------------------------------------------- what crosses the border


def test_sites_send_only_counts_per_grid_time_and_group() -> None:
    an = KaplanMeier({"duration": "time", "event": "status", "by": "sex", "time_grid": None})
    ctx = {"sites": ["a"], "site": "a", "max_rows_per_site": 1000, "public_schema": LUNG_SCHEMA}
    lay = an.layout(LUNG_SCHEMA, ctx)
    assert {s.kind for s in lay.specs} == {"count"}
    assert {s.name: s.shape for s in lay.specs} == {
        "events": (2, 1101),
        "removed": (2, 1101),
        "before_grid": (2,),
        "dropped": (1,),
    }
    df = lung()
    stats_ = an.local(sf.data.SiteData(df, schema=LUNG_SCHEMA), ctx)
    lay.check(stats_)
    for gi, sex in enumerate((1, 2)):
        sub = df[df.sex == sex]
        want_removed = np.bincount(sub.time.astype(int), minlength=1101)
        want_events = np.bincount(sub.time.astype(int), weights=sub.status, minlength=1101)
        np.testing.assert_array_equal(stats_["removed"][gi], want_removed)
        np.testing.assert_array_equal(stats_["events"][gi], want_events)
    done = an.combine(
        {k: np.asarray(v, dtype=np.int64) for k, v in stats_.items()}, LUNG_SCHEMA, ctx
    )
    assert done.facts["time_grid"] == {"points": 1101, "from": "schema"}
    assert set(done.facts) == {"sdc", "time_grid", "rows_dropped"}
    assert LogRank.name == "logrank" and KaplanMeier.kind == LogRank.kind == "survival"


def test_disclosure_facts_are_derived_from_the_tables() -> None:
    df = lung()
    rel = kaplan_meier(lung_federation(3), "time", "status", by="sex", protocol="masking")
    sdc = rel.facts["output"]["sdc"]
    ev_cells, risk_cells = [], []
    for _, sub in df.groupby("sex"):
        et = km_ref(sub.time, sub.status).event_table
        hit = et[et.observed > 0]
        ev_cells += hit.observed.tolist()
        risk_cells += hit.at_risk.tolist()
    assert {k: v for k, v in sdc.items() if v is not None} == {
        "min_event_cell": min(ev_cells),
        "min_at_risk_cell": min(risk_cells),
        "min_cell": min(ev_cells + risk_cells),
        "n": len(df),
        "has_zero": False,
    }
    assert rel.facts["output"]["kind"] == "survival"
    assert rel.value.time_grid == {"points": 1101, "from": "schema"}


# ------------------------------------------------------------------------ degenerate data


def test_a_site_with_zero_events_and_a_site_with_one_row() -> None:
    df = lung()
    censored = df[df.status == 0]
    rest = df[df.status == 1]
    parts = [censored.iloc[:20], rest.iloc[:1], pd.concat([censored.iloc[20:], rest.iloc[1:]])]
    fed = federation(parts, LUNG_SCHEMA)
    check_km(
        kaplan_meier(fed, "time", "status", by="sex", protocol="masking"),
        df,
        "time",
        "status",
        "sex",
    )
    check_lr(logrank(fed, "time", "status", "sex", protocol="masking"), df, "time", "status", "sex")


def test_a_site_with_no_rows() -> None:
    df = lung()
    fed = federation([df.iloc[:0], df.iloc[:100], df.iloc[100:]], LUNG_SCHEMA)
    check_km(kaplan_meier(fed, "time", "status", protocol="masking"), df, "time", "status", None)


def test_all_censored_keeps_survival_at_one_and_median_infinite() -> None:
    df = lung().assign(status=0)
    fed = random_federation(df, LUNG_SCHEMA, 3)
    rel = kaplan_meier(fed, "time", "status", by="sex", protocol="masking")
    km = rel.value
    check_km(rel, df, "time", "status", "sex")
    assert (km.survival[["survival", "ci_lower", "ci_upper"]] == 1.0).all().all()
    assert km.median.tolist() == [math.inf, math.inf]
    assert rel.facts["output"]["sdc"]["min_event_cell"] == 0
    assert rel.facts["output"]["sdc"]["has_zero"] is True
    lr = logrank(fed, "time", "status", "sex", protocol="plain").value
    stat, p, _ = lr_ref(df, "time", "status", "sex")
    assert (lr.statistic, lr.p_value) == (stat, p) == (0.0, 1.0)


def test_a_group_level_with_no_rows() -> None:
    schema = sf.Schema(
        [
            *(c for c in LUNG_SCHEMA if c.name != "sex"),
            sf.Column("sex", classes=("public",), kind="categorical", categories=(1, 2, 3)),
        ]
    )
    df = lung()
    fed = random_federation(df, schema, 2)
    rel = kaplan_meier(fed, "time", "status", by="sex", protocol="masking")
    km = rel.value
    check_km(rel, df, "time", "status", "sex")
    assert math.isnan(km.median["3"]) and "3" not in km.survival.index.get_level_values(0)
    assert km.summary.loc["3", "n"] == 0 and km.at_risk_table([0]).loc["3"].tolist() == [0]
    assert rel.facts["output"]["sdc"]["has_zero"] is True
    lr = logrank(fed, "time", "status", "sex", protocol="masking").value
    check_lr_value = lr_ref(df, "time", "status", "sex")
    assert lr.df == 1 and lr.table.loc["3", "n"] == 0 and math.isnan(lr.table.loc["3", "expected"])
    np.testing.assert_allclose([lr.statistic, lr.p_value], check_lr_value[:2], rtol=RTOL)
    only_one = random_federation(df[df.sex == 1], schema, 2)
    with pytest.raises(sf.errors.ConvergenceError, match="at least two levels of 'sex'"):
        logrank(only_one, "time", "status", "sex", protocol="plain")


def test_no_rows_at_all_is_a_typed_error() -> None:
    df = lung()
    fed = federation([df.iloc[:0], df.iloc[:0]], LUNG_SCHEMA)
    with pytest.raises(sf.errors.ConvergenceError, match="no rows to analyse"):
        kaplan_meier(fed, "time", "status", protocol="plain")


def test_events_at_time_zero() -> None:
    df = pd.DataFrame({"t": [0.0, 0, 1, 2, 2], "e": [1, 0, 1, 1, 0]})
    schema = sf.Schema(
        [
            sf.Column("t", classes=("public",), role="time", bounds=(0, 5), resolution=1),
            sf.Column("e", classes=("public",), role="event", categories=(0, 1)),
        ]
    )
    check_km(
        kaplan_meier(federation([df[:2], df[2:]], schema), "t", "e", protocol="plain"),
        df,
        "t",
        "e",
        None,
    )


# ---------------------------------------------------------------------------- result API


def test_result_api_summary_at_risk_table_and_repr() -> None:
    df = lung()
    km = kaplan_meier(lung_federation(2), "time", "status", by="sex", protocol="plain").value
    assert list(km.survival.columns) == [
        "survival",
        "ci_lower",
        "ci_upper",
        "at_risk",
        "events",
        "censored",
    ]
    assert km.survival.index.names == ["group", "time"]
    s = km.summary
    assert s.index.name == "sex" and list(s.columns) == ["n", "events", "censored", "median"]
    assert s["n"].tolist() == df.groupby("sex").size().tolist()
    assert s["events"].tolist() == df.groupby("sex").status.sum().tolist()
    times = [0, 100, 100.5, 365, 2000]
    tab = km.at_risk_table(times)
    for lev, sub in df.groupby("sex"):
        assert tab.loc[str(lev)].tolist() == [int((sub.time >= t).sum()) for t in times]
    r = repr(km)
    assert "time~status by sex" in r and "228 rows" in r and "median 1: 270, 2: 426" in r
    assert "1101 points from schema" in r
    overall = kaplan_meier(lung_federation(2), "time", "status", protocol="plain").value
    assert overall.survival.index.name == "time" and overall.summary.index.tolist() == ["all"]
    assert overall.at_risk_table([0]).loc["all", 0.0] == len(df)


def test_logrank_result_api() -> None:
    lr = logrank(lung_federation(2), "time", "status", "sex", protocol="plain").value
    s = lr.summary
    assert list(s.columns) == ["test_statistic", "df", "p", "-log2(p)"]
    assert s["p"].iloc[0] == lr.p_value and s["df"].iloc[0] == 1
    np.testing.assert_allclose(s["-log2(p)"].iloc[0], -np.log2(lr.p_value))
    assert lr.table["observed"].sum() == lung().status.sum()
    np.testing.assert_allclose(lr.table["expected"].sum(), lung().status.sum())
    assert "LogRank time~status by sex" in repr(lr) and "df = 1" in repr(lr)


def test_plot_draws_one_step_curve_and_band_per_group() -> None:
    km = kaplan_meier(lung_federation(2), "time", "status", by="sex", protocol="plain").value
    fig, ax = plt.subplots()
    try:
        assert km.plot(ax=ax) is ax
        assert len(ax.get_lines()) == 2 and len(ax.collections) == 2
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["sex=1", "sex=2"]
        own = km.plot(ci=False)
        assert len(own.get_lines()) == 2 and not own.collections
        plt.close(own.figure)
    finally:
        plt.close(fig)


def test_alpha_changes_the_band_like_lifelines() -> None:
    df = lung()
    km = kaplan_meier(lung_federation(2), "time", "status", alpha=0.1, protocol="plain").value
    with _quiet_lifelines():
        ref = KaplanMeierFitter(alpha=0.1).fit(df.time, df.status)
    np.testing.assert_allclose(
        km.survival["ci_lower"], ref.confidence_interval_.iloc[:, 0], rtol=RTOL
    )
    assert "90%" in repr(km)


@pytest.mark.parametrize("dof", [1, 2, 3, 4, 7, 17, 32])
def test_chi2_tail_matches_scipy(dof: int) -> None:
    for x in [1e-8, 0.01, 0.5, 1, 3.84, 10, 50, 200, 1000]:
        np.testing.assert_allclose(chi2_sf(x, dof), stats.chi2.sf(x, dof), rtol=1e-12)
    assert chi2_sf(0.0, dof) == 1.0 and chi2_sf(math.inf, dof) == 0.0


def test_docstring_examples() -> None:
    import doctest

    for name in ("survival", "survival_grid", "survival_results"):
        module = importlib.import_module(f"safeflow.analyses.{name}")
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0


def test_text_event_levels_the_second_is_the_event() -> None:
    schema = sf.Schema(
        [
            sf.Column("t", classes=("public",), role="time", bounds=(0, 10), resolution=1),
            sf.Column("vital", classes=("public",), role="event", categories=("alive", "dead")),
        ]
    )
    df = pd.DataFrame({"t": [1.0, 2, 3, 4], "vital": ["dead", "alive", "dead", "alive"]})
    km = kaplan_meier(federation([df[:2], df[2:]], schema), "t", "vital", protocol="plain")
    check_km(km, df.assign(vital=df.vital == "dead"), "t", "vital", None)

"""The synthetic Beijing-Amsterdam trial data: reproducible, well-formed, and faithful to
the data-generating model documented in ``examples/beijing_amsterdam/README.md``.

The committed CSVs are regenerated into a temporary directory and compared byte for byte;
the schema, encodings and ranges are checked per site; pooled reference fits (statsmodels
logistic GLM, lifelines Cox) recover the true parameters that ``generate.py`` declares.
"""

from __future__ import annotations

import doctest
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from lifelines import CoxPHFitter

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "beijing_amsterdam"
DATA = EXAMPLE / "data"


def _load_generator() -> ModuleType:
    """Import ``examples/beijing_amsterdam/generate.py`` (the examples are not a package)."""
    name = "_beijing_amsterdam_generate"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EXAMPLE / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


gen = _load_generator()
SITE_NAMES = list(gen.SITES)


@pytest.fixture(scope="module")
def sites() -> dict[str, pd.DataFrame]:
    return {name: pd.read_csv(DATA / f"{name}.csv") for name in SITE_NAMES}


@pytest.fixture(scope="module")
def pooled(sites: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return pd.concat([df.assign(site=name) for name, df in sites.items()], ignore_index=True)


# --- reproducibility ------------------------------------------------------------------


def test_committed_files_are_exactly_the_sites() -> None:
    assert sorted(p.name for p in DATA.glob("*.csv")) == sorted(f"{s}.csv" for s in SITE_NAMES)


def test_regenerating_is_byte_identical(tmp_path: Path) -> None:
    paths = gen.generate_all(tmp_path)
    assert list(paths) == SITE_NAMES
    for name, path in paths.items():
        assert path == tmp_path / f"{name}.csv"
        assert path.read_bytes() == (DATA / f"{name}.csv").read_bytes(), name


def test_site_seeds_derive_from_one_master_seed() -> None:
    seeds = gen.site_seeds()
    assert seeds == gen.site_seeds(gen.MASTER_SEED)
    assert len(set(seeds.values())) == len(SITE_NAMES)
    assert gen.site_seeds(gen.MASTER_SEED + 1) != seeds


def test_generate_site_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown site 'paris'"):
        gen.generate_site("paris", 10, seed=1)
    with pytest.raises(ValueError, match="n must be >= 1; got 0"):
        gen.generate_site("beijing", 0, seed=1)


def test_docstring_examples_run() -> None:
    result = doctest.testmod(gen, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


# --- schema, encodings, ranges ---------------------------------------------------------


@pytest.mark.parametrize("name", SITE_NAMES)
def test_schema_and_encodings(sites: dict[str, pd.DataFrame], name: str) -> None:
    df = sites[name]
    spec = gen.SITES[name]
    assert list(df.columns) == list(gen.COLUMNS)
    assert len(df) == spec.n
    assert not df.isna().any().any()
    assert df["patient_id"].str.fullmatch(rf"{spec.id_prefix}-\d{{4}}").all()
    assert set(df["arm"]) == {"ECA", "ICA"}
    assert set(df["sex"]) == {"F", "M"}
    assert set(df["stage"]) == {"I", "II", "III"}
    assert set(df["asa"]) <= {1, 2, 3, 4} and {1, 2, 3} <= set(df["asa"])
    for col in ("asa", "leak", "dfs_event"):
        assert pd.api.types.is_integer_dtype(df[col]), col
    assert set(df["leak"]) == {0, 1} and set(df["dfs_event"]) == {0, 1}
    for col in ("age", "bmi", "dfs_days"):
        assert pd.api.types.is_float_dtype(df[col]), col
        assert np.allclose(df[col], df[col].round(1)), col
    assert df["age"].between(18, 95).all()
    assert df["bmi"].between(15, 50).all()
    assert ((df["dfs_days"] > 0) & (df["dfs_days"] <= gen.ADMIN_CENSOR_DAYS)).all()
    # administrative censoring at 3 years, plus some loss to follow-up before it
    censored = df["dfs_event"] == 0
    assert (df.loc[censored, "dfs_days"] == gen.ADMIN_CENSOR_DAYS).mean() > 0.8
    assert (df.loc[censored, "dfs_days"] < gen.ADMIN_CENSOR_DAYS).sum() >= 5


def test_asa_4_is_rare(pooled: pd.DataFrame) -> None:
    assert 0 < (pooled["asa"] == 4).mean() < 0.05


def test_patient_ids_unique_across_sites(pooled: pd.DataFrame) -> None:
    assert pooled["patient_id"].is_unique
    assert 1200 <= len(pooled) <= 1500


@pytest.mark.parametrize("name", SITE_NAMES)
def test_randomised_one_to_one_within_site(sites: dict[str, pd.DataFrame], name: str) -> None:
    counts = sites[name]["arm"].value_counts()
    assert abs(int(counts["ICA"]) - int(counts["ECA"])) <= 2  # permuted blocks of 4


# --- outcome rates (documented in the README) ------------------------------------------


def test_leak_and_dfs_event_rates_within_documented_ranges(
    sites: dict[str, pd.DataFrame], pooled: pd.DataFrame
) -> None:
    assert 0.03 <= pooled["leak"].mean() <= 0.08
    assert 0.20 <= pooled["dfs_event"].mean() <= 0.30
    for name, df in sites.items():
        assert 0.01 <= df["leak"].mean() <= 0.10, name
        assert 0.15 <= df["dfs_event"].mean() <= 0.35, name


def test_enough_events_for_km_by_arm_and_cox(pooled: pd.DataFrame) -> None:
    events = pooled.groupby("arm")["dfs_event"].sum()
    assert (events >= 100).all()
    assert pooled["leak"].sum() >= 50  # ~10 events per covariate of the five-term GLM


def test_beijing_younger_and_leaner_than_amsterdam(sites: dict[str, pd.DataFrame]) -> None:
    beijing, amsterdam = sites["beijing"], sites["amsterdam"]
    assert beijing["bmi"].mean() < amsterdam["bmi"].mean() - 2
    assert beijing["age"].mean() < amsterdam["age"].mean() - 5
    assert (beijing["stage"] == "III").mean() > (amsterdam["stage"] == "III").mean()


# --- pooled reference fits recover the truth -------------------------------------------


def test_logistic_fit_recovers_leak_log_odds(pooled: pd.DataFrame) -> None:
    truth = gen.LEAK_LOG_ODDS
    names = ["const", "arm_ICA", "age", "sex_M", "bmi", "asa"]
    X = np.column_stack(
        [
            np.ones(len(pooled)),
            (pooled["arm"] == "ICA").to_numpy(float),
            pooled["age"].to_numpy(float),
            (pooled["sex"] == "M").to_numpy(float),
            pooled["bmi"].to_numpy(float),
            pooled["asa"].to_numpy(float),
        ]
    )
    fit = sm.GLM(pooled["leak"].to_numpy(float), X, family=sm.families.Binomial()).fit()
    coef = dict(zip(names, fit.params, strict=True))
    ci = dict(zip(names, fit.conf_int(alpha=0.05), strict=True))
    low, high = ci["arm_ICA"]
    assert low <= truth["arm_ICA"] <= high
    assert abs(coef["arm_ICA"] - truth["arm_ICA"]) < 0.5
    assert coef["arm_ICA"] < 0  # ICA lowers the odds of a leak, as generated
    for term in ("sex_M", "bmi", "asa"):
        assert coef[term] > 0, term
        assert ci[term][0] <= truth[term] <= ci[term][1], term
    assert ci["const"][0] <= gen.raw_leak_intercept() <= ci["const"][1]


def test_cox_fit_recovers_stage_hazard_ratios(pooled: pd.DataFrame) -> None:
    truth = gen.DFS_LOG_HR
    frame = pd.DataFrame(
        {
            "T": pooled["dfs_days"],
            "E": pooled["dfs_event"],
            "arm_ICA": (pooled["arm"] == "ICA").astype(float),
            "stage_II": (pooled["stage"] == "II").astype(float),
            "stage_III": (pooled["stage"] == "III").astype(float),
            "age": pooled["age"],
            "asa": pooled["asa"].astype(float),
            "leak": pooled["leak"].astype(float),
        }
    )
    summary = CoxPHFitter().fit(frame, duration_col="T", event_col="E").summary
    for term in ("stage_II", "stage_III"):
        assert summary.loc[term, "exp(coef)"] > 1, term
        low, high = summary.loc[term, ["coef lower 95%", "coef upper 95%"]]
        assert low <= truth[term] <= high, term
    assert summary.loc["stage_III", "coef"] > summary.loc["stage_II", "coef"]
    low, high = summary.loc["arm_ICA", ["coef lower 95%", "coef upper 95%"]]
    assert low <= truth["arm_ICA"] <= high  # HR(ICA) = 1: no DFS difference

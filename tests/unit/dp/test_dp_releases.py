"""DP releases through a federation: noise where the plan says, budgets paid before release.

Real NCCTG lung data (lifelines) split by institution, treated as health data so the
policy layer applies in full.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

import safeflow as sf
from safeflow.analyses.describe import Describe
from safeflow.analyses.glm import GLM
from safeflow.analyses.survival import KaplanMeier
from safeflow.errors import BudgetExceeded, DataError, InvalidParameter
from safeflow.policy.export import verify_export
from safeflow.protocols.dp import DPPlan
from tests.conftest import JURISDICTIONS, LUNG_SCHEMA, lung, split_by_inst

HEALTH = sf.Schema([replace(c, classes=("health",)) for c in LUNG_SCHEMA])
GRID = list(range(0, 1101, 60))


def _fed(n_sites: int = 2, budgets: list[object] | None = None,
         schema: sf.Schema = HEALTH, data: pd.DataFrame | None = None) -> sf.Federation:
    parts = split_by_inst(lung() if data is None else data, n_sites)
    budgets = budgets or [100] * n_sites
    sites = [sf.Site(f"site{i}", p, JURISDICTIONS[i], schema=schema, budget=b)
             for i, (p, b) in enumerate(zip(parts, budgets, strict=True))]
    return sf.Federation.local(sites, destination="NL", purpose="scientific-research")


def _spent(fed: sf.Federation) -> dict[str, Fraction]:
    return {s: rows[0]["spent"] for s, rows in fed.budgets().items()}


def test_central_describe_is_certified_with_its_guarantee_and_accuracy(tmp_path):
    fed = _fed()
    rel = sf.describe(fed, ["age", "sex"], dp=sf.DP(1))
    dp = rel.facts["output"]["dp"]
    assert (dp["epsilon"], dp["mode"], dp["unit"]) == ("1", "central", "patient")
    assert rel.facts["unit_of_privacy"] == "patient"
    assert {s["statistic"] for s in dp["statistics"]} == {
        "rows+dropped", "sum:age", "sumsq:age", "count:sex"}
    assert sum(Fraction(s["epsilon"]) for s in dp["statistics"]) == 1
    assert dp["withheld"] == ["top1:age", "top12:age"]
    assert rel.decision.exportable and rel.epsilon == "1"
    assert "95% of each noised value" in rel.summary and "sum:age: laplace" in rel.summary
    assert rel.certificate.body["facts"]["output"]["dp"]["unit"] == "patient"
    verify_export(rel.export(tmp_path / "t1"), trusted=fed.customs.trusted_keys())
    assert _spent(fed) == {"site0": 1, "site1": 1}


def test_dp_skips_the_cell_threshold_that_blocks_exact_release():
    exact = _fed()
    with pytest.raises(sf.errors.ExportDenied):  # 1-day KM steps fail ACRO's threshold
        sf.kaplan_meier(exact, "time", "status", time_grid=list(range(0, 1101)),
                        protocol="masking")
    km = sf.kaplan_meier(_fed(), "time", "status", time_grid=list(range(0, 1101)),
                         dp=sf.DP(2))
    assert km.decision.exportable


@pytest.mark.parametrize("mode, factor", [("central", 1.0), ("local", 3.0)])
def test_noise_of_the_total_is_one_mechanism_centrally_and_k_of_them_locally(mode, factor):
    """Variance of noisy - exact counts over repeated releases vs the plan's variance."""
    fed, k = _fed(3, budgets=[10_000] * 3), 3
    exact = sf.histogram(_fed(3, schema=LUNG_SCHEMA), "age", bins=[40, 50, 60, 70, 80],
                         protocol="masking")
    truth = exact.value["count"].to_numpy()
    errs = []
    for _ in range(40):
        rel = sf.histogram(fed, "age", bins=[40, 50, 60, 70, 80], dp=sf.DP(1, mode=mode))
        errs.append(rel.value["count"].to_numpy() - truth)
    err = np.concatenate(errs)[np.repeat(truth, 40) > 20]  # cells far from the 0 clamp
    scale = rel.facts["output"]["dp"]["statistics"][0]["std"]
    expected = factor * scale**2 if mode == "local" else scale**2
    var = float(np.mean(err.astype(float) ** 2))
    # 160+ draws: the sample variance is within a factor ~1.6 of the truth (p > 0.999)
    assert expected / 1.7 < var < expected * 1.7, (var, expected, k)


def _survival_at(res, times):
    out = []
    for g in res.groups:
        c = res._curve(g)
        idx = np.searchsorted(c.index.to_numpy(dtype=float), times, side="right") - 1
        out.append(c["survival"].to_numpy()[idx])
    return np.array(out)


def test_kaplan_meier_under_dp_tracks_the_exact_curve():
    fed = _fed()
    exact = sf.kaplan_meier(_fed(schema=LUNG_SCHEMA), "time", "status", by="sex",
                            time_grid=GRID, protocol="masking")
    noisy = sf.kaplan_meier(fed, "time", "status", by="sex", time_grid=GRID, dp=sf.DP(5))
    assert noisy.facts["output"]["dp"]["statistics"][0]["statistic"] == (
        "events+removed+before_grid+dropped")
    a = exact.value.at_risk_table(GRID[:10]).to_numpy()
    b = noisy.value.at_risk_table(GRID[:10]).to_numpy()
    assert np.all(np.diff(b, axis=1) <= 0)  # numbers at risk never grow
    assert np.max(np.abs(a - b)) <= 20
    s_exact = _survival_at(exact.value, GRID[:10])
    s_noisy = _survival_at(noisy.value, GRID[:10])
    assert np.max(np.abs(s_exact - s_noisy)) < 0.15


def test_gaussian_glm_under_dp_is_close_to_the_exact_fit_at_large_epsilon():
    fed = _fed(budgets=[100, 100])
    exact = sf.glm(_fed(schema=LUNG_SCHEMA), "age", ["sex", "time"], family="gaussian",
                   protocol="masking")
    noisy = sf.glm(fed, "age", ["sex", "time"], family="gaussian", dp=sf.DP(10))
    diff = (noisy.value.coef - exact.value.coef).abs()
    # scaled statistics: the noise is set by the design's size, not by time's bound (1,100)
    assert diff["sex[T.2]"] < 5 and diff["time"] < 0.01, diff


def test_small_study_dp_regression_shrinks_instead_of_exploding():
    """226 patients, 4 parameters, ε = 1: the noise-aware lift keeps coefficients sane."""
    fed = _fed(3, budgets=[100] * 3)
    exact = sf.glm(_fed(3, schema=LUNG_SCHEMA), "age", ["sex", "time", "wt.loss"],
                   family="gaussian", protocol="masking").value.coef
    errs = [float((sf.glm(fed, "age", ["sex", "time", "wt.loss"], family="gaussian",
                          dp=sf.DP(1)).value.coef - exact).abs().max()) for _ in range(5)]
    # without the lift the median was ~4e5; with it, of the order of the coefficients (64)
    assert float(np.median(errs)) < 60, errs


def test_plan_encoding_is_exact_without_noise():
    """Site encode then customs decode returns the exact sums (no noise added)."""
    fed = _fed()
    ctx = {**fed._context(), "site": "site0"}
    for analysis in (Describe({"columns": ["age", "sex"], "by": None, "by_site": False,
                               "dp": sf.DP(1).to_facts()}),
                     GLM({"y": "age", "X": ["sex", "time"], "family": "gaussian",
                          "offset": None, "penalty": 0.0, "dp": sf.DP(1).to_facts()}),
                     KaplanMeier({"duration": "time", "event": "status", "by": "sex",
                                  "time_grid": GRID, "alpha": 0.05,
                                  "dp": sf.DP(1).to_facts()})):
        plan = DPPlan.for_analysis(analysis, HEALTH, ctx)
        assert plan is not None
        stats = analysis.local(fed._site_data["site0"], ctx)
        back = plan.stats.encode({k: v.copy() for k, v in stats.items()})
        if plan.stats.decode is not None:
            back = plan.stats.decode(back)
        if plan.stats.decode_noisy is not None:  # with no noise the ridge lift is zero
            back = plan.stats.decode_noisy(back, dict.fromkeys(plan.noise_std(), 0.0))
        for name in plan.stats.groups[0].names[:1]:
            np.testing.assert_allclose(back[name], stats[name], rtol=1e-9, atol=1e-6)
        if analysis.name == "glm":
            for name in ("xtx", "xty", "yty"):
                np.testing.assert_allclose(back[name], stats[name], rtol=1e-9, atol=1e-6)


def test_refusal_at_one_site_spends_nothing_anywhere():
    fed = _fed(budgets=[5, "0.5"])
    with pytest.raises(BudgetExceeded, match=r"site 'site1'.*1/2 ε left.*Nothing was spent"):
        sf.describe(fed, ["age"], dp=sf.DP(1))
    assert _spent(fed) == {"site0": 0, "site1": 0}
    sf.describe(fed, ["age"], dp=sf.DP("0.2"))
    sf.describe(fed, ["age"], dp=sf.DP("0.3"))
    assert _spent(fed) == {"site0": Fraction(1, 2), "site1": Fraction(1, 2)}


def test_a_released_query_id_cannot_draw_fresh_noise_for_free():
    fed = _fed()
    sf.histogram(fed, "age", bins=[40, 60, 80], dp=sf.DP(1), query_id="age-hist")
    with pytest.raises(InvalidParameter, match="already released"):
        sf.histogram(fed, "age", bins=[40, 60, 80], dp=sf.DP(1), query_id="age-hist")
    assert _spent(fed) == {"site0": 1, "site1": 1}


def test_a_retried_query_after_a_crash_is_not_charged_twice():
    fed = _fed()
    fed.accounts.debit("q-crashed", sf.DP(1), ["site0", "site1"])  # debit, then a crash
    sf.histogram(fed, "age", bins=[40, 60, 80], dp=sf.DP(1), query_id="q-crashed")
    assert _spent(fed) == {"site0": 1, "site1": 1}


def test_typed_refusals_before_anything_is_spent():
    fed = _fed()
    with pytest.raises(InvalidParameter, match="does not support differential privacy"):
        sf.cox(fed, "time", "status", ["age"], dp=sf.DP(1))
    with pytest.raises(InvalidParameter, match="glm\\(family='gaussian'\\)"):
        sf.glm(fed, "status", ["age"], family="binomial", dp=sf.DP(1))
    with pytest.raises(InvalidParameter, match=r"sf\.DP object"):
        sf.describe(fed, ["age"], dp=0.5)
    with pytest.raises(InvalidParameter, match="start at or below"):
        sf.kaplan_meier(fed, "time", "status", time_grid=[10, 20, 30], dp=sf.DP(1))
    assert _spent(fed) == {"site0": 0, "site1": 0}
    parts = split_by_inst(lung(), 2)
    nobudget = sf.Federation.local(
        [sf.Site("a", parts[0], "CN", schema=HEALTH, budget=1),
         sf.Site("b", parts[1], "NL", schema=HEALTH)],
        destination="NL", purpose="scientific-research")
    with pytest.raises(InvalidParameter, match="site 'b' has no privacy budget"):
        sf.describe(nobudget, ["age"], dp=sf.DP(1))
    assert nobudget.budgets()["a"][0]["spent"] == 0


def test_unbounded_columns_cannot_be_released_under_dp():
    schema = sf.Schema([replace(c, bounds=None) if c.name == "age" else c for c in HEALTH])
    with pytest.raises(InvalidParameter, match="no declared public bounds"):
        sf.describe(_fed(schema=schema), ["age"], dp=sf.DP(1))


def test_rows_per_patient_scales_the_noise_and_is_checked_at_the_sites():
    ident = sf.Column("pid", role="identifier", kind="categorical",
                      categories=tuple(range(300)))
    data = lung().reset_index(drop=True)
    data["pid"] = data.index // 2  # two rows per patient
    one = sf.Schema([*HEALTH.columns, ident])
    two = replace(one, rows_per_patient=2)
    with pytest.raises(DataError, match="more rows than the schema's rows_per_patient"):
        sf.histogram(_fed(schema=one, data=data), "age", bins=[40, 60, 80], dp=sf.DP(1))
    fed = _fed(schema=one, data=data)
    assert _spent(fed) == {"site0": 0, "site1": 0}
    rel = sf.histogram(_fed(schema=two, data=data), "age", bins=[40, 60, 80], dp=sf.DP(1))
    st = rel.facts["output"]["dp"]
    assert st["contributions"] == 2 and st["statistics"][0]["scale"] == 2.0


def test_row_unit_is_refused_by_the_sdc_profile():
    fed = _fed(schema=replace(HEALTH, unit="row"))
    with pytest.raises(sf.errors.ExportDenied, match="SDC-acro-dp-unit"):
        sf.histogram(fed, "age", bins=[40, 60, 80], dp=sf.DP(1, unit="row"))

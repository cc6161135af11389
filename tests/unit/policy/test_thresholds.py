"""Every numeric rule one below, at and one above its threshold, in every profile."""

from __future__ import annotations

import pytest

from safeflow.policy import Outcome, evaluate
from tests.unit.policy.builders import cn_row_level, table

SA, SCC, EX = Outcome.SECURITY_ASSESSMENT, Outcome.SCC_OR_CERT, Outcome.EXEMPT
NA, DENY, ALLOW = Outcome.NEEDS_APPROVAL, Outcome.DENY_SDC, Outcome.ALLOW


# --- CN volume thresholds: "以上" includes the number, "不满" excludes it -------------------


@pytest.mark.parametrize(
    "persons,expected",
    [
        (99_999, EX),
        (100_000, SCC),
        (100_001, SCC),
        (999_999, SCC),
        (1_000_000, SA),
        (1_000_001, SA),
    ],
)
def test_cn_non_sensitive_volume(persons: int, expected: Outcome) -> None:
    assert evaluate(cn_row_level(persons)).outcome is expected


@pytest.mark.parametrize(
    "current,ytd,expected",
    [
        (1, 99_998, EX),
        (1, 99_999, SCC),
        (2, 99_999, SCC),
        (1, 999_998, SCC),
        (1, 999_999, SA),
        (2, 999_999, SA),
    ],
)
def test_cn_volume_accumulates_since_1_january(current: int, ytd: int, expected: Outcome) -> None:
    assert evaluate(cn_row_level(current, ytd=ytd)).outcome is expected


@pytest.mark.parametrize(
    "sensitive,expected", [(0, EX), (1, SCC), (2, SCC), (9_999, SCC), (10_000, SA), (10_001, SA)]
)
def test_cn_sensitive_volume(sensitive: int, expected: Outcome) -> None:
    classes = ("pi", "sensitive_pi") if sensitive else ("pi",)
    d = evaluate(cn_row_level(max(sensitive, 50), sensitive, classes=classes))
    assert d.outcome is expected


@pytest.mark.parametrize("current,ytd,expected", [(1, 9_998, SCC), (1, 9_999, SA), (2, 9_999, SA)])
def test_cn_sensitive_volume_accumulates(current: int, ytd: int, expected: Outcome) -> None:
    facts = cn_row_level(current, current, ytd=ytd, sensitive_ytd=ytd, classes=("health",))
    assert evaluate(facts).outcome is expected


def test_cn_volume_procedures_are_completed_by_their_instruments() -> None:
    scc = cn_row_level(150_000)
    scc["instruments"] = {"scc": True}
    assert evaluate(scc).outcome is Outcome.ALLOW_WITH_OBLIGATIONS
    sa = cn_row_level(1_000_000)
    sa["instruments"] = {"scc": True}
    assert evaluate(sa).outcome is SA  # a contract does not replace an assessment
    sa["instruments"] = {"security_assessment": "CAC-2024-0042"}
    assert evaluate(sa).outcome is Outcome.ALLOW_WITH_OBLIGATIONS


@pytest.mark.parametrize(
    "genome,expected",
    [(499, Outcome.ALLOW_WITH_OBLIGATIONS), (500, Outcome.ALLOW_WITH_OBLIGATIONS), (501, NA)],
)
def test_cn_hgr_genome_500_even_with_filing(genome: int, expected: Outcome) -> None:
    facts = cn_row_level(600, 600, classes=("genetic",), genome_persons=genome)
    facts["instruments"] = {"hgr_filing": True, "scc": True}
    d = evaluate(facts)
    assert d.outcome is expected
    if expected is NA:
        assert d.rules == ("CN-hgr-review",)
        review = next(f for f in d.fired if f.rule == "CN-hgr-review")
        assert review.verify  # POLICY.md: "(verify article)"
    facts["instruments"]["hgr_approval"] = "HGR-2024-7"
    assert evaluate(facts).outcome is Outcome.ALLOW_WITH_OBLIGATIONS


def test_cn_hgr_needs_filing() -> None:
    facts = cn_row_level(50, 50, classes=("genetic",))
    facts["instruments"] = {"scc": True}
    d = evaluate(facts)
    assert d.outcome is NA and d.rules == ("CN-hgr",)
    facts["instruments"]["hgr_filing"] = True
    assert evaluate(facts).outcome is Outcome.ALLOW_WITH_OBLIGATIONS


def _bj(persons: int) -> dict:
    return cn_row_level(persons, persons, classes=("health",), ftz="CN-FTZ-BJ")


@pytest.mark.parametrize("persons,listed", [(99_999, False), (100_000, True), (100_001, True)])
def test_cn_ftz_beijing_health_negative_list(persons: int, listed: bool) -> None:
    d = evaluate(_bj(persons))
    fired = {f.rule for f in d.fired}
    if listed:
        assert d.outcome is SA and "CN-ftz-bj-health" in d.rules
        assert "CN-ftz" not in fired and "CN-volume-sa" in fired  # no exemption once listed
    else:
        # not on the list: the FTZ exemption replaces the volume procedures (99,999 sensitive
        # persons would otherwise need a security assessment); consent duties remain
        assert d.outcome is Outcome.ALLOW_WITH_OBLIGATIONS
        assert "CN-ftz" in fired and not fired & {"CN-volume-sa", "CN-volume-scc"}


def test_cn_ftz_exemption_needs_a_loaded_list_and_no_ciio() -> None:
    unknown = cn_row_level(150_000, 0, classes=("pi",), ftz="CN-FTZ-XX")
    assert evaluate(unknown).outcome is SCC  # no list for that FTZ: the general rules apply
    ciio = _bj(50)
    ciio["origin"][0]["ciio"] = True
    assert evaluate(ciio).outcome is SA  # CIIOs are outside the FTZ lists


# --- SDC: minimum cell count with the boundary words of each profile ---------------------


@pytest.mark.parametrize(
    "profile,cell,expected",
    [
        ("acro", 9, DENY),
        ("acro", 10, ALLOW),
        ("acro", 11, ALLOW),
        ("ohdsi", 4, DENY),
        ("ohdsi", 5, ALLOW),
        ("ohdsi", 6, ALLOW),
        ("datashield", 2, DENY),
        ("datashield", 3, ALLOW),
        ("datashield", 4, ALLOW),
    ],
)
def test_min_cell(profile: str, cell: int, expected: Outcome) -> None:
    d = evaluate(table(min_cell=cell, has_zero=False), sdc_profile=profile)
    assert d.outcome is expected
    if expected is DENY:
        assert f"SDC-{profile}-min-cell" in d.rules


@pytest.mark.parametrize(
    "profile,expected", [("acro", DENY), ("ohdsi", ALLOW), ("datashield", ALLOW)]
)
def test_zero_cells(profile: str, expected: Outcome) -> None:
    d = evaluate(table(min_cell=20, has_zero=True), sdc_profile=profile)
    assert d.outcome is expected
    # a smallest non-zero cell of 0 (an all-zero table): "0 < n < t" lets it pass OHDSI/DS
    assert evaluate(table(min_cell=0, has_zero=True), sdc_profile=profile).outcome is expected


@pytest.mark.parametrize("share,expected", [(0.89, ALLOW), (0.90, DENY), (0.91, DENY)])
def test_nk_dominance_acro(share: float, expected: Outcome) -> None:
    facts = table(kind="magnitude_table", min_cell=30, has_zero=False, nk_top2_share=share)
    assert evaluate(facts).outcome is expected
    for other in ("ohdsi", "datashield"):
        assert evaluate(facts, sdc_profile=other).outcome is ALLOW


@pytest.mark.parametrize("ratio,expected", [(0.09, DENY), (0.10, ALLOW), (0.11, ALLOW)])
def test_p_ratio_acro(ratio: float, expected: Outcome) -> None:
    facts = table(kind="magnitude_table", min_cell=30, has_zero=False, p_ratio=ratio)
    d = evaluate(facts)
    assert d.outcome is expected
    if expected is DENY:
        assert "SDC-acro-p-ratio" in d.rules
    assert evaluate(facts, sdc_profile="ohdsi").outcome is ALLOW


@pytest.mark.parametrize("dof,expected", [(9, DENY), (10, ALLOW), (11, ALLOW)])
def test_regression_residual_dof_acro(dof: int, expected: Outcome) -> None:
    facts = table(kind="regression", residual_dof=dof, n_params=4, n=dof + 4)
    d = evaluate(facts)
    assert d.outcome is expected
    if expected is DENY:
        assert d.rules == ("EU-anon-pending", "SDC-acro-residual-dof")


@pytest.mark.parametrize("params,expected", [(32, ALLOW), (33, ALLOW), (34, DENY)])
def test_datashield_params_ratio_is_exact(params: int, expected: Outcome) -> None:
    # n_params > 0.33 * n fails; with n = 100 the boundary is exactly 33 (no float rounding)
    facts = table(kind="regression", residual_dof=100 - params, n_params=params, n=100)
    d = evaluate(facts, sdc_profile="datashield")
    assert d.outcome is expected
    if expected is DENY:
        assert "SDC-datashield-params-ratio" in d.rules


@pytest.mark.parametrize("profile,t", [("acro", 10), ("ohdsi", 5), ("datashield", 3)])
@pytest.mark.parametrize("field", ["min_event_cell", "min_at_risk_cell"])
def test_survival_cells(profile: str, t: int, field: str) -> None:
    for value, expected in ((t - 1, DENY), (t, ALLOW), (t + 1, ALLOW)):
        cells = {"min_event_cell": 50, "min_at_risk_cell": 50, field: value}
        facts = table(kind="survival", has_zero=False, **cells)
        d = evaluate(facts, sdc_profile=profile)
        assert d.outcome is expected, (profile, field, value)
        if expected is DENY:
            assert f"SDC-{profile}-survival" in d.rules


@pytest.mark.parametrize(
    "spent,requested,expected",
    [("0.79", "0.2", ALLOW), ("0.8", "0.2", ALLOW), ("0.81", "0.2", DENY)],
)
def test_budget_boundary(spent: str, requested: str, expected: Outcome) -> None:
    facts = {
        "output": {"kind": "dp_release", "protocol": "dp", "dp": {"epsilon": requested}},
        "origin": [{"jurisdiction": "NL"}],
        "destination": {"jurisdiction": "CN"},
        "budget": {"epsilon_total": "1.0", "epsilon_spent": spent},
    }
    for profile in ("acro", "ohdsi", "datashield"):
        assert evaluate(facts, sdc_profile=profile).outcome is expected


def test_budget_sums_are_exact_not_float() -> None:
    facts = {
        "output": {"kind": "histogram", "protocol": "dp", "dp": {"epsilon": 0.2}},
        "origin": [{"jurisdiction": "NL"}],
        "destination": {"jurisdiction": "CN"},
        "budget": {"epsilon_total": 0.3, "epsilon_spent": 0.1},
    }
    assert 0.1 + 0.2 > 0.3  # what a float sum would wrongly conclude
    assert evaluate(facts).outcome is ALLOW

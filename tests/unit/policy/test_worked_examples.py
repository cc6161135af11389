"""POLICY.md's eight worked examples, each with its facts written out."""

from __future__ import annotations

from safeflow.policy import Outcome, evaluate


def test_example_1_cn_non_sensitive_volume_boundary() -> None:
    facts = {
        "output": {"kind": "row_level", "protocol": "plain"},
        "origin": [
            {
                "site": "beijing",
                "jurisdiction": "CN",
                "classes": ["pi"],
                "persons": 40_000,
                "sensitive_persons": 0,
                "persons_ytd": 59_999,
                "sensitive_persons_ytd": 0,
            }
        ],
        "destination": {"jurisdiction": "NL", "recipient_type": "research"},
        "purpose": "scientific-research",
    }
    d = evaluate(facts)
    assert d.outcome is Outcome.EXEMPT and d.rules == ("CN-volume-exempt",) and d.exportable
    facts["origin"][0]["persons_ytd"] = 60_000  # 40,000 + 60,000 = 100,000 ("以上")
    d = evaluate(facts)
    assert d.outcome is Outcome.SCC_OR_CERT and d.rules == ("CN-volume-scc",)
    assert not d.exportable
    assert any("standard contract" in f for f in d.fixes)


def test_example_2_cn_sensitive_volume_boundary() -> None:
    facts = {
        "output": {"kind": "row_level", "protocol": "plain"},
        "origin": [
            {
                "site": "beijing",
                "jurisdiction": "CN",
                "classes": ["health"],
                "persons": 9_999,
                "sensitive_persons": 9_999,
            }
        ],
        "destination": {"jurisdiction": "NL", "recipient_type": "research"},
    }
    d = evaluate(facts)
    assert d.outcome is Outcome.SCC_OR_CERT and d.rules == ("CN-volume-scc",)
    facts["origin"][0].update(persons=10_000, sensitive_persons=10_000)
    d = evaluate(facts)
    assert d.outcome is Outcome.SECURITY_ASSESSMENT and d.rules == ("CN-volume-sa",)
    assert any("security assessment" in f for f in d.fixes)


def test_example_3_cn_aggregate_passing_sdc_is_exempt() -> None:
    facts = {
        "output": {
            "kind": "freq_table",
            "protocol": "masking",
            "sdc": {
                "min_cell": 12,
                "has_zero": False,
                "nk_top2_share": 0.41,
                "p_ratio": 0.35,
                "n": 226,
            },
            "derived_from_genetic": False,
        },
        "origin": [
            {
                "site": "beijing",
                "jurisdiction": "CN",
                "classes": ["health"],
                "persons": 120,
                "sensitive_persons": 120,
            }
        ],
        "destination": {"jurisdiction": "NL", "recipient_type": "research"},
        "purpose": "scientific-research",
    }
    d = evaluate(facts)
    assert d.outcome is Outcome.EXEMPT
    assert set(d.rules) == {"CN-academic", "CN-anon"}
    assert d.derived["anonymous"] is True and d.exportable


def test_example_4_cn_data_requested_by_foreign_court_is_prohibited() -> None:
    facts = {
        "output": {"kind": "row_level", "protocol": "plain"},
        "origin": [
            {
                "site": "beijing",
                "jurisdiction": "CN",
                "classes": ["health"],
                "persons": 3,
                "sensitive_persons": 3,
            }
        ],
        "destination": {"jurisdiction": "US", "recipient_type": "court"},
        "purpose": "litigation",
    }
    d = evaluate(facts)
    assert d.outcome is Outcome.PROHIBITED and d.rules == ("CN-court",)
    assert any("competent PRC authority" in f for f in d.fixes)


def test_example_5_nl_to_cn_frequency_table_min_cell() -> None:
    facts = {
        "output": {
            "kind": "freq_table",
            "protocol": "masking",
            "sdc": {"min_cell": 10, "has_zero": False, "nk_top2_share": 0.3, "n": 300},
        },
        "origin": [{"site": "amsterdam", "jurisdiction": "NL", "classes": ["health"]}],
        "destination": {"jurisdiction": "CN", "recipient_type": "research"},
    }
    d = evaluate(facts)
    assert d.outcome is Outcome.ALLOW and d.rules == ("EU-anon",)
    facts["output"]["sdc"]["min_cell"] = 9
    d = evaluate(facts)
    assert d.outcome is Outcome.DENY_SDC
    assert "SDC-acro-min-cell" in d.rules
    assert any("min-cell-count (10)" in f for f in d.fixes)
    assert not any("9" in f for f in d.fixes)  # the refusal is not an oracle


def test_example_6_magnitude_cell_top_two_exactly_90_percent() -> None:
    facts = {
        "output": {
            "kind": "magnitude_table",
            "protocol": "he",
            "sdc": {
                "min_cell": 25,
                "has_zero": False,
                "nk_top2_share": 0.90,
                "p_ratio": 0.5,
                "n": 400,
            },
        },
        "origin": [{"site": "amsterdam", "jurisdiction": "NL", "classes": ["health"]}],
        "destination": {"jurisdiction": "CN"},
    }
    d = evaluate(facts)
    assert d.outcome is Outcome.DENY_SDC
    assert "SDC-acro-dominance" in d.rules


def test_example_7_privacy_budget_is_inclusive_and_exact() -> None:
    facts = {
        "output": {"kind": "dp_release", "protocol": "dp", "dp": {"epsilon": 0.3, "delta": 0}},
        "origin": [{"site": "amsterdam", "jurisdiction": "NL", "classes": ["health"]}],
        "destination": {"jurisdiction": "CN"},
        "budget": {"epsilon_total": 1.0, "epsilon_spent": 0.8, "epsilon_requested": 0.3},
    }
    d = evaluate(facts)
    assert d.outcome is Outcome.DENY_SDC and "SDC-acro-budget" in d.rules
    assert any("smaller epsilon" in f for f in d.fixes)
    facts["output"]["dp"]["epsilon"] = 0.2
    facts["budget"]["epsilon_requested"] = 0.2  # 0.8 + 0.2 == 1.0 exactly (floats would not)
    d = evaluate(facts)
    assert d.outcome is Outcome.ALLOW and d.derived["budget_ok"] is True


def test_example_8_nl_model_without_dp_or_secure_aggregation_to_cn() -> None:
    facts = {
        "output": {"kind": "model", "protocol": "plain"},
        "origin": [
            {"site": "amsterdam", "jurisdiction": "NL", "classes": ["health"], "persons": 800}
        ],
        "destination": {"jurisdiction": "CN", "recipient_type": "research"},
        "instruments": {"scc": False, "tia": False},
    }
    d = evaluate(facts)
    assert d.outcome is Outcome.PROHIBITED and d.rules == ("EU-no-basis",)
    facts["instruments"] = {"scc": True, "tia": True}
    d = evaluate(facts)
    assert d.outcome is Outcome.ALLOW_WITH_OBLIGATIONS and d.exportable
    assert {"EU-adequacy", "EU-model"} <= set(d.rules)
    assert any("transfer impact assessment" in o for o in d.obligations)
    model = next(f for f in d.fired if f.rule == "EU-model")
    assert model.declared is Outcome.SCC_OR_CERT and model.satisfied

"""Engine: combination, determinism (hypothesis), fallbacks and the legal rules."""

from __future__ import annotations

import json
import random

import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safeflow.errors import FactsError, InvalidParameter
from safeflow.policy import Decision, Outcome, default_packs, evaluate
from tests.unit.policy.builders import cn_row_level, table


def test_outcome_order_is_policy_md_order() -> None:
    order = [
        "PROHIBITED",
        "NEEDS_APPROVAL",
        "SECURITY_ASSESSMENT",
        "SCC_OR_CERT",
        "REVIEW",
        "DENY_SDC",
        "ALLOW_WITH_OBLIGATIONS",
        "ALLOW",
        "EXEMPT",
    ]
    assert [o.value for o in sorted(Outcome, key=lambda o: -o.rank)] == order
    assert {o for o in Outcome if o.exportable} == {
        Outcome.EXEMPT,
        Outcome.ALLOW,
        Outcome.ALLOW_WITH_OBLIGATIONS,
    }
    assert isinstance(Outcome.ALLOW, str) and Outcome.ALLOW == "ALLOW"


def test_most_restrictive_across_origins_wins() -> None:
    facts = {
        "output": {"kind": "row_level"},
        "origin": [
            {"site": "bj", "jurisdiction": "CN", "classes": ["pi"], "persons": 10},
            {"site": "ams", "jurisdiction": "NL", "classes": ["pi"], "persons": 10},
        ],
        "destination": {"jurisdiction": "US"},
    }
    d = evaluate(facts)
    assert d.outcome is Outcome.PROHIBITED and d.rules == ("EU-no-basis",)
    by_origin = {(f.origin, f.rule) for f in d.fired}
    assert (0, "CN-volume-exempt") in by_origin and (1, "EU-no-basis") in by_origin
    assert d.fired[0].site == "bj" and d.fired[-1].site == "ams"


def test_no_rule_for_an_origin_is_review_not_allow() -> None:
    d = evaluate(table("SG", "NL", min_cell=50, has_zero=False))
    assert d.outcome is Outcome.REVIEW and d.rules == ("POLICY-no-rule",)
    assert "SG" in d.fixes[0] and not d.exportable
    mixed = table("SG", "NL", min_cell=50, has_zero=False)
    mixed["origin"].append({"site": "bj", "jurisdiction": "CN"})
    d = evaluate(mixed)
    assert d.outcome is Outcome.REVIEW
    assert [f.rule for f in d.fired if f.origin == 1] == ["CN-academic", "CN-anon"]


def test_output_scope_packs_only_restrict() -> None:
    d = evaluate(
        table("NL", "CN", min_cell=50, has_zero=False),
        packs=[p for p in default_packs() if p.name == "sdc-acro"],
    )
    # no jurisdiction pack covers NL here: the fallback decides
    assert d.outcome is Outcome.REVIEW


def test_anonymous_is_derived_not_claimed() -> None:
    ok = evaluate(table(min_cell=10, has_zero=False))
    assert ok.derived["anonymous"] and not ok.derived["personal"]
    bad = evaluate(table(min_cell=9, has_zero=False))
    assert not bad.derived["anonymous"] and bad.derived["pending"]
    assert bad.derived["sdc_failures"] == ["min_cell"]
    unmeasured = evaluate(table())
    assert unmeasured.outcome is Outcome.DENY_SDC and "SDC-acro-unmeasured" in unmeasured.rules
    with pytest.raises(FactsError, match="derived by the policy engine"):
        evaluate({**table(min_cell=10), "output": {"kind": "freq_table", "anonymous": True}})


def test_dp_model_within_budget_is_anonymous_row_level_never() -> None:
    model = {
        "output": {"kind": "model", "protocol": "dp", "dp": {"epsilon": 1}},
        "origin": [{"jurisdiction": "NL", "classes": ["health"], "persons": 500}],
        "destination": {"jurisdiction": "CN"},
        "budget": {"epsilon_total": 2, "epsilon_spent": 0},
    }
    assert evaluate(model).outcome is Outcome.ALLOW
    model["unit_of_privacy"] = "row"  # ε per row does not bound a patient with many rows
    d = evaluate(model)
    assert d.outcome is Outcome.DENY_SDC and "SDC-acro-dp-unit" in d.rules
    rows = {
        "output": {"kind": "row_level", "protocol": "dp", "dp": {"epsilon": 0.1}},
        "origin": [{"jurisdiction": "NL", "persons": 5}],
        "destination": {"jurisdiction": "CN"},
        "budget": {"epsilon_total": 1},
    }
    assert evaluate(rows).derived["personal"]
    no_budget = {**model, "unit_of_privacy": "patient"}
    del no_budget["budget"]
    assert evaluate(no_budget).outcome is Outcome.DENY_SDC  # DP without a declared budget


@pytest.mark.parametrize(
    "edit,outcome,rule",
    [
        ({"classes": ["important_data"]}, Outcome.SECURITY_ASSESSMENT, "CN-important"),
        ({"classes": ["core_data"]}, Outcome.SECURITY_ASSESSMENT, "CN-core"),
        ({"ciio": True}, Outcome.SECURITY_ASSESSMENT, "CN-ciio"),
        ({"persons": 0}, Outcome.REVIEW, "CN-persons-unknown"),
    ],
)
def test_cn_rules(edit: dict, outcome: Outcome, rule: str) -> None:
    facts = cn_row_level(50)
    facts["origin"][0].update(edit)
    d = evaluate(facts)
    assert d.outcome is outcome and rule in d.rules


def test_cn_export_rules_do_not_apply_when_the_destination_is_cn() -> None:
    facts = cn_row_level(2_000_000, 20_000, classes=("health", "genetic"), genome_persons=900)
    assert evaluate(facts).outcome is Outcome.NEEDS_APPROVAL
    facts["destination"]["jurisdiction"] = "CN"
    d = evaluate(facts)
    assert d.outcome is Outcome.EXEMPT and d.rules == ("CN-domestic",)
    table_cn = table("CN", "CN", min_cell=3, has_zero=False)
    assert evaluate(table_cn).outcome is Outcome.DENY_SDC  # disclosure control still applies


def test_cn_important_data_even_when_anonymous() -> None:
    facts = table("CN", "NL", min_cell=50, has_zero=False)
    facts["origin"][0]["classes"] = ["important_data"]
    d = evaluate(facts)
    assert d.outcome is Outcome.SECURITY_ASSESSMENT and d.rules == ("CN-important",)
    facts["instruments"] = {"security_assessment": "CAC-2024-1"}
    assert evaluate(facts).outcome is Outcome.ALLOW_WITH_OBLIGATIONS


def test_cn_court_with_authority_approval_follows_the_other_rules() -> None:
    facts = table("CN", "US", min_cell=50, has_zero=False)
    facts["destination"]["recipient_type"] = "law_enforcement"
    assert evaluate(facts).outcome is Outcome.PROHIBITED
    facts["instruments"] = {"authority_approval": "MOJ-2024-3"}
    assert evaluate(facts).outcome is Outcome.EXEMPT


def test_cn_health_pi_carries_consent_and_pipia_obligations() -> None:
    facts = cn_row_level(500, 500, classes=("health",))
    facts["instruments"] = {"scc": True}
    d = evaluate(facts)
    assert d.outcome is Outcome.ALLOW_WITH_OBLIGATIONS
    assert any("separate consent" in o for o in d.obligations)
    assert any("impact assessment" in o for o in d.obligations)


@pytest.mark.parametrize(
    "destination,instruments,outcome,rule",
    [
        ("CN", {}, Outcome.PROHIBITED, "EU-no-basis"),
        ("CN", {"scc": True}, Outcome.REVIEW, "EU-tia-missing"),
        ("CN", {"scc": True, "tia": True}, Outcome.ALLOW_WITH_OBLIGATIONS, "EU-adequacy"),
        ("CN", {"explicit_consent": True}, Outcome.ALLOW_WITH_OBLIGATIONS, "EU-consent"),
        ("JP", {}, Outcome.ALLOW_WITH_OBLIGATIONS, "EU-adequate"),
        ("DE", {}, Outcome.ALLOW_WITH_OBLIGATIONS, "EU-adequate"),
        ("US", {}, Outcome.PROHIBITED, "EU-no-basis"),  # partial adequacy (DPF) is not assumed
    ],
)
def test_eu_transfer_rules(
    destination: str, instruments: dict, outcome: Outcome, rule: str
) -> None:
    facts = {
        "output": {"kind": "row_level"},
        "instruments": instruments,
        "origin": [{"jurisdiction": "FR", "classes": ["pi"], "persons": 40}],
        "destination": {"jurisdiction": destination},
    }
    d = evaluate(facts)
    assert d.outcome is outcome and rule in d.rules


def test_eu_health_and_cipher_obligations() -> None:
    facts = {
        "output": {"kind": "model", "protocol": "masking"},
        "origin": [{"jurisdiction": "NL", "classes": ["health"], "persons": 40}],
        "destination": {"jurisdiction": "CH"},
    }
    d = evaluate(facts)
    assert d.outcome is Outcome.ALLOW_WITH_OBLIGATIONS
    fired = {f.rule for f in d.fired}
    assert {"EU-health", "EU-cipher", "NL-uavg-research"} <= fired and "EU-model" not in fired
    assert any("Art 9(2)(j)" in o for o in d.obligations)
    assert any("UAVG Art 24" in o for o in d.obligations)


def test_decision_is_json_and_canonical() -> None:
    d = evaluate(cn_row_level(150_000))
    data = d.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert rfc8785.dumps(data) == rfc8785.dumps(evaluate(cn_row_level(150_000)).to_dict())
    assert {p["name"] for p in data["packs"]} == {"base", "cn", "eu", "nl", "sdc-acro"}
    assert "SCC_OR_CERT" in repr(d)


def test_unknown_profile() -> None:
    with pytest.raises(InvalidParameter, match="unknown SDC profile 'strict'"):
        evaluate(table(min_cell=10), sdc_profile="strict")


# --- determinism and the combination algebra (hypothesis) -------------------------------

JURISDICTIONS = ["CN", "NL", "DE", "FR", "SG", "US"]
CLASSES = ["health", "genetic", "pi", "sensitive_pi", "important_data", "core_data"]


@st.composite
def facts_strategy(draw: st.DrawFn) -> dict:
    kind = draw(
        st.sampled_from(
            [
                "freq_table",
                "magnitude_table",
                "regression",
                "survival",
                "histogram",
                "model",
                "dp_release",
                "row_level",
            ]
        )
    )
    dp = kind == "dp_release" or draw(st.booleans())
    output: dict = {
        "kind": kind,
        "protocol": draw(st.sampled_from(["plain", "masking", "he"])),
        "derived_from_genetic": draw(st.booleans()),
        "sdc": {
            "min_cell": draw(st.integers(0, 30)),
            "has_zero": draw(st.booleans()),
            "nk_top2_share": draw(st.sampled_from([0.2, 0.9, 0.95])),
            "residual_dof": draw(st.integers(-2, 30)),
            "n_params": draw(st.integers(1, 5)),
            "n": draw(st.integers(5, 40)),
            "min_event_cell": draw(st.integers(0, 12)),
        },
    }
    facts: dict = {"output": output}
    if dp:
        eps = draw(st.sampled_from(["0.1", "0.2", "0.3", "0.5"]))
        output["dp"] = {"epsilon": eps}
        if draw(st.booleans()):
            facts["budget"] = {
                "epsilon_total": "1",
                "epsilon_spent": draw(st.sampled_from(["0", "0.5", "0.8", "0.9"])),
            }
    n_origins = draw(st.integers(1, 3))
    facts["origin"] = []
    for i in range(n_origins):
        persons = draw(st.sampled_from([0, 50, 99_999, 100_000, 1_000_000]))
        facts["origin"].append(
            {
                "site": f"s{i}",
                "jurisdiction": draw(st.sampled_from(JURISDICTIONS)),
                "ciio": draw(st.booleans()),
                "ftz": draw(st.sampled_from([None, "CN-FTZ-BJ"])),
                "classes": draw(st.lists(st.sampled_from(CLASSES), max_size=3)),
                "persons": persons,
                "sensitive_persons": draw(st.integers(0, persons)),
                "persons_ytd": draw(st.sampled_from([0, 1, 500_000])),
                "genome_persons": min(persons, draw(st.sampled_from([0, 500, 501]))),
            }
        )
    facts["destination"] = {
        "jurisdiction": draw(st.sampled_from([*JURISDICTIONS, "JP"])),
        "recipient_type": draw(st.sampled_from(["research", "research", "court"])),
    }
    facts["instruments"] = {
        k: draw(st.booleans()) for k in ("scc", "tia", "explicit_consent", "hgr_filing")
    }
    return facts


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    facts=facts_strategy(),
    seed=st.integers(0, 2**16),
    profile=st.sampled_from(["acro", "ohdsi", "datashield"]),
)
def test_deterministic_and_pack_order_irrelevant(facts: dict, seed: int, profile: str) -> None:
    packs = list(default_packs(profile))
    first = evaluate(facts, packs=packs, sdc_profile=profile)
    random.Random(seed).shuffle(packs)
    again = evaluate(facts, packs=packs, sdc_profile=profile)
    assert first == again and first.to_dict() == again.to_dict()
    assert evaluate(facts, sdc_profile=profile).to_dict() == first.to_dict()
    _check_algebra(first)


def _check_algebra(d: Decision) -> None:
    assert d.fired, "every evaluation fires at least one rule (or the fallback)"
    assert d.outcome is Outcome.most_restrictive(f.outcome for f in d.fired)
    assert set(d.rules) == {f.rule for f in d.fired if f.outcome is d.outcome}
    assert d.exportable == d.outcome.exportable
    for f in d.fired:
        assert f.outcome is (Outcome.ALLOW_WITH_OBLIGATIONS if f.satisfied else f.declared)
    derived = d.derived
    assert [derived["anonymous"], derived["pending"], derived["personal"]].count(True) == 1


@settings(max_examples=40, deadline=None)
@given(facts=facts_strategy())
def test_adding_an_origin_never_relaxes_the_decision(facts: dict) -> None:
    base = evaluate(facts)
    extra = {
        **facts,
        "origin": [
            *facts["origin"],
            {"site": "extra", "jurisdiction": "CN", "classes": ["pi"], "persons": 10},
        ],
    }
    assert evaluate(extra).outcome.rank >= base.outcome.rank

"""Export-gate defaults: what may leave a jurisdiction during a run."""

from __future__ import annotations

from pathlib import Path

import pytest

from safeflow.errors import FactsError, InvalidParameter
from safeflow.policy import default_packs, gate_check, load_pack

ALLOWED = [
    ({"protection": "masked", "kind": "statistics"}, "GATE-protected-statistics"),
    ({"protection": "bfv-ciphertext", "kind": "statistics"}, "GATE-protected-statistics"),
    ({"protection": "ckks-ciphertext", "kind": "statistics"}, "GATE-protected-statistics"),
    ({"protection": "aead-encrypted", "kind": "statistics"}, "GATE-protected-statistics"),
    ({"protection": "dp-noised", "kind": "statistics", "budget_ok": True}, "GATE-dp-within-budget"),
    ({"protection": "none", "kind": "keys"}, "GATE-keys"),
    ({"protection": "aead-encrypted", "kind": "shares"}, "GATE-sealed-shares"),
    ({"protection": "none", "kind": "shares"}, "GATE-unmask-shares"),
    ({"protection": "none", "kind": "control"}, "GATE-control"),
    ({"protection": "none", "kind": "statistics", "crosses_border": False}, "GATE-domestic"),
    ({"protection": "none", "kind": "row_level", "crosses_border": False}, "GATE-domestic"),
]
REFUSED = [
    {"protection": "none", "kind": "statistics"},  # the plain protocol
    {"protection": "dp-noised", "kind": "statistics", "budget_ok": False},
    {"protection": "none", "kind": "row_level"},
    {"protection": "masked", "kind": "row_level"},
    {"protection": "none", "kind": "row_level", "instruments": {"scc": True}},
]


@pytest.mark.parametrize("jurisdiction", ["CN", "NL", "DE", "SG"])
@pytest.mark.parametrize("message,rule", ALLOWED)
def test_protected_messages_may_leave(jurisdiction: str, message: dict, rule: str) -> None:
    d = gate_check(jurisdiction, {**message, "destination": "NL"})
    assert d.allowed and d.rule == rule and d.reason


@pytest.mark.parametrize("jurisdiction", ["CN", "NL", "SG"])
@pytest.mark.parametrize("message", REFUSED)
def test_unprotected_statistics_and_rows_stay_home(jurisdiction: str, message: dict) -> None:
    d = gate_check(jurisdiction, {**message, "destination": "CN" if jurisdiction != "CN" else "NL"})
    assert not d.allowed and d.rule == "GATE-default-deny"
    assert d.fix and "protected protocol" in d.fix


def test_row_level_needs_instruments_cn() -> None:
    msg = {"protection": "aead-encrypted", "kind": "row_level", "destination": "NL"}
    assert not gate_check("CN", msg).allowed
    sa = gate_check("CN", {**msg, "instruments": {"security_assessment": "CAC-1"}})
    assert sa.allowed and sa.rule == "GATE-CN-row-level"
    assert gate_check("CN", {**msg, "instruments": {"scc": True, "explicit_consent": True}}).allowed
    assert not gate_check("CN", {**msg, "instruments": {"scc": True}}).allowed


@pytest.mark.parametrize(
    "destination,instruments,allowed",
    [
        ("CN", {}, False),
        ("CN", {"scc": True}, False),
        ("CN", {"scc": True, "tia": True}, True),
        ("CN", {"explicit_consent": True}, True),
        ("JP", {}, True),
        ("DE", {}, True),
        ("US", {}, False),
    ],
)
def test_row_level_needs_instruments_eu(destination: str, instruments: dict, allowed: bool) -> None:
    msg = {
        "protection": "none",
        "kind": "row_level",
        "destination": destination,
        "instruments": instruments,
    }
    d = gate_check("NL", msg)
    assert d.allowed is allowed
    if allowed:
        assert d.rule == "GATE-EU-row-level"


def test_deny_rules_beat_allow_rules(tmp_path: Path) -> None:
    path = tmp_path / "strict.yaml"
    path.write_text("""
pack: strict-site
version: "1"
jurisdictions: [CN]
export_gate:
  - id: SITE-no-unmask-shares
    when: kind == 'shares' && protection == 'none'
    decision: deny
    reason: this site does not reveal shares in the clear
    fix: run without dropout recovery (all sites must stay online)
    sources: [{law: Site policy, article: "3.1"}]
""")
    packs = [*default_packs(), load_pack(path)]
    msg = {"protection": "none", "kind": "shares", "destination": "NL"}
    d = gate_check("CN", msg, packs=packs)
    assert not d.allowed and d.rule == "SITE-no-unmask-shares" and "dropout" in (d.fix or "")
    assert gate_check("NL", msg, packs=packs).allowed  # the site pack covers CN only


def test_message_validation() -> None:
    with pytest.raises(FactsError, match=r"message\.protection must be one of none"):
        gate_check("CN", {"protection": "rot13"})
    with pytest.raises(FactsError, match=r"unknown field message\.payload"):
        gate_check("CN", {"payload": b"x"})
    with pytest.raises(FactsError, match=r"message\.destination must be an ISO 3166"):
        gate_check("CN", {"destination": "Netherlands"})
    with pytest.raises(FactsError, match=r"message\.crosses_border must be true or false"):
        gate_check("CN", {"crosses_border": "yes"})
    with pytest.raises(InvalidParameter, match="jurisdiction must be an ISO 3166"):
        gate_check("China", {})

"""The runtime refuses, before any data is touched: variables, expiry, approvals, protocols."""

from __future__ import annotations

import sqlite3
from datetime import date

import pytest

import safeflow as sf
from safeflow.errors import ExportRefused, InvalidParameter, VerificationError
from safeflow.policy import evaluate
from safeflow.study import (
    StudyFederation,
    StudyRefused,
    approve_study,
    check_approvals,
    enforce,
    load_study,
    run_study,
)
from safeflow.study.approve import APPROVAL_KIND, find_approval
from safeflow.study.errors import RULE_APPROVAL, RULE_EXPIRED, RULE_VARIABLES
from tests.unit.study._helpers import BASE, mutate, write_study


def _approve_all(path, state):  # type: ignore[no-untyped-def]
    for site in ("a", "b"):
        approve_study(path, site, state_dir=state)


def test_disallowed_variable_is_refused_before_data(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # bmi is in the schema but not in allowed_variables; no data file even exists
    path = write_study(tmp_path, mutate("    columns: [age, y]", "    columns: [age, bmi]"),
                       data=False)
    with pytest.raises(StudyRefused) as info:
        run_study(path, tmp_path / "out", state_dir=tmp_path / "state")
    e = info.value
    assert e.rule == RULE_VARIABLES and e.analysis == "t1" and e.line == 26
    assert "analysis 't1' (study.yaml line 26) reads bmi, which the study does not allow" \
        in str(e)
    assert "allowed_variables" in (e.fix or "")
    assert isinstance(e, ExportRefused) and isinstance(e, PermissionError)
    assert not (tmp_path / "out").exists() and not (tmp_path / "state").exists()
    with pytest.raises(StudyRefused, match="reads bmi"):  # a site does not approve it either
        approve_study(path, "a", state_dir=tmp_path / "state")


def test_expired_study_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write_study(tmp_path, mutate("expires: 2099-12-31", "expires: 2020-01-31"),
                       data=False)
    with pytest.raises(StudyRefused, match=r"expired on 2020-01-31 \(study.yaml line 4\)") as i:
        run_study(path, tmp_path / "out", state_dir=tmp_path / "state")
    assert i.value.rule == RULE_EXPIRED and "approves it again" in (i.value.fix or "")
    with pytest.raises(StudyRefused, match="expired"):
        approve_study(path, "a", state_dir=tmp_path / "state")
    s = load_study(path)
    enforce.check_expiry(s, on=date(2020, 1, 31))  # the date itself is the last valid day


def test_expiry_is_checked_again_before_every_analysis(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path = write_study(tmp_path)
    _approve_all(path, tmp_path / "state")
    fed = StudyFederation(load_study(path), state_dir=tmp_path / "state")
    try:
        assert sf.describe(fed, ["age"]).certified
        monkeypatch.setattr(enforce, "today", lambda: date(2100, 1, 1))
        with pytest.raises(StudyRefused, match="expired"):
            sf.describe(fed, ["age"])
    finally:
        fed.close()


def test_missing_approval_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write_study(tmp_path, data=False)
    approve_study(path, "a", state_dir=tmp_path / "state")
    with pytest.raises(StudyRefused) as info:
        run_study(path, tmp_path / "out", state_dir=tmp_path / "state")
    e = info.value
    assert e.rule == RULE_APPROVAL
    assert "is not approved by site 'b': site 'b' has not approved it" in str(e)
    assert f"safeflow study approve {path} --site b --state-dir" in (e.fix or "")
    assert not (tmp_path / "out").exists()


def test_changed_file_needs_reapproval(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write_study(tmp_path)
    state = tmp_path / "state"
    _approve_all(path, state)
    # comments and formatting do not change the study hash: still approved
    path.write_text("# reviewed by both ethics committees\n" + BASE.replace("[age, y]",
                                                                            "[ age , y ]"))
    assert sorted(check_approvals(path, state_dir=state)) == ["a", "b"]
    # a change of meaning does
    path.write_text(mutate("    family: binomial", "    family: poisson"))
    with pytest.raises(StudyRefused) as info:
        run_study(path, tmp_path / "out", state_dir=state)
    assert info.value.rule == RULE_APPROVAL
    assert "site 'a' approved another version of the file" in str(info.value)
    assert "sites 'a', 'b'" in str(info.value)
    _approve_all(path, state)
    result = run_study(path, tmp_path / "out", state_dir=state, progress=False)
    assert result.ok


def test_protocol_refused_by_the_export_gate(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = mutate("    by: arm", "    by: arm\n    protocol: plain")
    path = write_study(tmp_path, text, data=False)
    with pytest.raises(StudyRefused) as info:
        run_study(path, tmp_path / "out", state_dir=tmp_path / "state")
    e = info.value
    assert e.rule == "GATE-default-deny" and e.analysis == "t1"
    assert "the export gate of site 'a' (CN) refuses the 'plain_input' messages" in str(e)
    assert "use a protected protocol" in (e.fix or "")
    # both sites in the destination: nothing crosses a border, so plain is fine
    local = mutate("    jurisdiction: CN", "    jurisdiction: NL", text)
    enforce.check_study(load_study(write_study(tmp_path / "nl", local, data=False)))


def test_the_federation_checks_analyses_started_by_hand(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write_study(tmp_path)
    _approve_all(path, tmp_path / "state")
    fed = StudyFederation(load_study(path), state_dir=tmp_path / "state")
    try:
        assert sf.glm(fed, "y", ["arm", "age"], family="binomial").certified
        with pytest.raises(StudyRefused, match=r"reads bmi") as info:
            sf.glm(fed, "y", ["arm", "bmi"], family="binomial")
        assert info.value.analysis == "glm (not in the study file)"
        with pytest.raises(StudyRefused, match="GATE-default-deny"):
            sf.describe(fed, ["age"], protocol="plain")
    finally:
        fed.close()
    log = fed.customs.party.log.path
    with sqlite3.connect(log) as con:
        kinds = [r[0] for r in con.execute("SELECT entry FROM entries")]
    assert any(b'"kind":"study_run"' in k for k in kinds)


def test_study_federation_needs_a_state_dir(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = load_study(write_study(tmp_path, data=False))
    with pytest.raises(InvalidParameter, match="state_dir"):
        StudyFederation(s, state_dir=None)  # type: ignore[arg-type]


def test_approval_is_a_signed_audit_entry(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write_study(tmp_path, data=False)
    state = tmp_path / "state"
    a = approve_study(path, "a", state_dir=state)
    assert (a.site, a.index, a.checkpoint_size) == ("a", 0, 1)
    found, latest = find_approval(path, "a", state_dir=state)
    assert found == a and latest == a.study_sha256
    with pytest.raises(InvalidParameter, match="site 'c' is not a site of study"):
        approve_study(path, "c", state_dir=state)
    # an approval row added to the log without a signed checkpoint does not count
    from safeflow.policy.customs import Party

    s = load_study(path)
    party = Party(state / "sites" / "b", "b")
    party.log.append({"kind": APPROVAL_KIND, "study": s.id, "study_sha256": s.sha256,
                      "site": "b"})
    party.close()
    with pytest.raises(VerificationError, match="not covered by a checkpoint the site signed"):
        check_approvals(path, state_dir=state)


def test_study_instruments_make_a_cn_transfer_allowed_with_obligations(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """With the filed standard contract and PIPIA of the example study, personal data of
    420 patients leaving China is ALLOW_WITH_OBLIGATIONS (CN-volume-scc satisfied), not
    SCC_OR_CERT; anonymous aggregates are EXEMPT either way."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    s = load_study(root / "examples" / "beijing_amsterdam" / "study.yaml")
    origin = [{"site": "beijing", "jurisdiction": "CN", "classes": ["health"], "persons": 420}]
    dest = {"jurisdiction": s.destination, "recipient_type": s.recipient}
    for kind, with_instruments, outcome in [("model", True, "ALLOW_WITH_OBLIGATIONS"),
                                            ("model", False, "SCC_OR_CERT"),
                                            ("freq_table", True, "EXEMPT")]:
        facts = {"output": {"kind": kind, "protocol": "masking",
                            "sdc": {"min_cell": 20, "has_zero": False}},
                 "origin": origin, "destination": dest, "purpose": s.purpose,
                 "instruments": s.instruments.policy() if with_instruments else {}}
        assert evaluate(facts).outcome.value == outcome

"""Customs end to end: health data from CN and NL, decided, certified, exported, verified."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import safeflow as sf
from safeflow.errors import ExportDenied, ExportRefused, VerificationError
from safeflow.policy.audit import verify_log
from safeflow.policy.export import verify_export

HEALTH = sf.Schema(
    [
        sf.Column("arm", kind="categorical", categories=("extracorporeal", "intracorporeal")),
        sf.Column("age", bounds=(18, 100)),
        sf.Column("leak", role="outcome", kind="binary", categories=(0, 1)),
        sf.Column("asa", kind="categorical", categories=(1, 2, 3, 4)),
    ]
)


def trial(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "arm": rng.choice(["extracorporeal", "intracorporeal"], n),
            "age": rng.integers(40, 90, n).astype(float),
            "leak": (rng.random(n) < 0.3).astype(int),
            "asa": rng.choice([1, 2, 3], n),  # nobody has ASA 4: a zero cell
        }
    )


def federation(tmp_path, **options) -> sf.Federation:  # type: ignore[no-untyped-def]
    sites = [
        sf.Site("beijing", trial(300, 1), "CN", schema=HEALTH),
        sf.Site("amsterdam", trial(250, 2), "NL", schema=HEALTH),
    ]
    return sf.Federation.local(
        sites,
        destination="NL",
        purpose="scientific-research",
        study="color-iv",
        state_dir=tmp_path / "state",
        **options,
    )


def test_anonymous_table_is_certified_exported_and_verifies_offline(tmp_path) -> None:  # type: ignore[no-untyped-def]
    fed = federation(tmp_path)
    rel = sf.crosstab(fed, "arm", "leak", protocol="masking")
    assert rel.decision.outcome.value == "ALLOW"
    assert set(rel.certificate.signers) == {"customs", "beijing", "amsterdam"}
    assert rel.certificate.verify(trusted=fed.customs.trusted_keys())
    out = rel.export(tmp_path / "out")
    report = verify_export(out, trusted=fed.customs.trusted_keys())
    assert report is not None
    # a swapped value file is detected offline
    (out / "value.csv").write_text("arm,0,1\nx,1,1\n")
    with pytest.raises(VerificationError, match=r"value\.csv"):
        verify_export(out, trusted=fed.customs.trusted_keys())


def test_small_cells_are_denied_naming_the_rule_not_the_number(tmp_path) -> None:  # type: ignore[no-untyped-def]
    fed = federation(tmp_path, policy=sf.PolicySettings(suppress=False))
    with pytest.raises(ExportDenied) as e:
        sf.describe(fed, ["asa"], protocol="masking")  # ASA 4 is an empty cell
    msg = str(e.value)
    assert "SDC-acro-zeros" in msg and "suppress" in msg
    assert e.value.rule and e.value.fix
    assert fed.customs.party.log.entry(1)["kind"] == "decision"  # the denial is on record


def test_small_cells_are_suppressed_by_default_and_margins_protect_them(tmp_path) -> None:  # type: ignore[no-untyped-def]
    fed = federation(tmp_path)
    rel = sf.describe(fed, ["asa"], protocol="masking")
    t = rel.value.set_index("level")
    assert pd.isna(t.loc["4", "count"])  # the empty cell (primary)
    assert t["count"].isna().sum() >= 2  # and another so n minus the rest does not reveal it
    assert rel.facts["output"]["sdc"]["has_zero"] is False
    assert rel.decision.exportable


def test_plain_statistics_never_leave_a_site_by_default(tmp_path) -> None:  # type: ignore[no-untyped-def]
    sent: list[str] = []
    fed = federation(tmp_path)
    fed.simulate_faults(tamper=lambda site, rnd, stage, raw: sent.append(stage) or raw)
    with pytest.raises(ExportRefused, match="GATE-default-deny") as e:
        sf.crosstab(fed, "arm", "leak", protocol="plain")
    assert e.value.rule == "GATE-default-deny"
    assert "plain_input" not in sent


def test_a_study_pack_can_allow_plain_and_is_named_in_the_certificate(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pack = tmp_path / "bench.yaml"
    pack.write_text(
        "pack: synthetic-benchmark\nversion: '1'\ntitle: plain allowed for a synthetic "
        "benchmark\njurisdictions: ['*']\nrules: []\nexport_gate:\n"
        "  - id: STUDY-plain-synthetic\n    when: kind == 'statistics' && protection == 'none'\n"
        "    decision: allow\n    reason: the study data are synthetic\n"
        "    sources:\n      - {law: study protocol, article: 'section 4 (synthetic data)'}\n"
    )
    fed = federation(tmp_path, policy=sf.PolicySettings(packs=[pack]))
    rel = sf.crosstab(fed, "arm", "leak", protocol="plain")
    assert "synthetic-benchmark" in [p[0] for p in rel.certificate.body["packs"]]


def test_a_site_refuses_to_cosign_a_run_that_is_not_what_it_sent(tmp_path) -> None:  # type: ignore[no-untyped-def]
    def flip_header_nonce(site: str, rnd: int, stage: str, raw: bytes) -> bytes:
        if site == "beijing" and stage == "unmask":
            i = raw.index(b'"nonce":"') + 9
            return raw[:i] + (b"0" if raw[i : i + 1] != b"0" else b"1") + raw[i + 1 :]
        return raw

    fed = federation(tmp_path)
    fed.simulate_faults(tamper=flip_header_nonce)
    with pytest.raises(VerificationError, match=r"beijing.*refuses to co-sign"):
        sf.crosstab(fed, "arm", "leak", protocol="masking")


def test_audit_logs_record_the_run_and_verify(tmp_path) -> None:  # type: ignore[no-untyped-def]
    fed = federation(tmp_path)
    rel = sf.crosstab(fed, "arm", "leak", protocol="masking")
    beijing = fed.customs.sites["beijing"].log
    kinds = [beijing.entry(i)["kind"] for i in range(beijing.size)]
    assert kinds and set(kinds) == {"message"}  # every message that left China
    assert {beijing.entry(i)["stage"] for i in range(beijing.size)} >= {"masked_input", "unmask"}
    # amsterdam (NL) talks to an NL aggregator: nothing crossed a border, nothing logged
    assert fed.customs.sites["amsterdam"].log.size == 0
    customs = fed.customs.party.log
    assert [customs.entry(i)["kind"] for i in range(customs.size)] == [
        "study_registration",
        "release",
    ]
    assert customs.entry(1)["output_sha256"] == rel.certificate.output_sha256
    for party in (fed.customs.party, fed.customs.sites["beijing"]):
        party.log.checkpoint()
        verify_log(party.log.path, party.key.verify_key)


def test_differencing_against_an_earlier_release_is_denied(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """POLICY.md: "120 diabetics" then "117 diabetics aged under 90" is denied; here the
    second population is the first minus the 3 patients whose BMI is missing."""
    schema = sf.Schema([sf.Column("age", bounds=(18, 100)),
                        sf.Column("bmi", bounds=(10, 60), on_missing="drop")])
    rng = np.random.default_rng(3)

    def frame(n: int, missing: int) -> pd.DataFrame:
        df = pd.DataFrame({"age": rng.integers(40, 90, n).astype(float),
                           "bmi": rng.uniform(18, 35, n)})
        df.loc[df.index[:missing], "bmi"] = np.nan
        return df

    sites = [sf.Site("beijing", frame(60, 2), "CN", schema=schema),
             sf.Site("amsterdam", frame(60, 1), "NL", schema=schema)]
    fed = sf.Federation.local(sites, destination="NL", purpose="scientific-research",
                              state_dir=tmp_path / "s")
    sf.describe(fed, ["age"], protocol="masking")  # 120 patients
    with pytest.raises(ExportDenied, match="SDC-differencing") as e:
        sf.describe(fed, ["bmi"], protocol="masking")  # 117: the difference is 3 people
    assert "117" not in str(e.value) and "120" not in str(e.value)

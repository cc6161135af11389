"""Pack loading: the shipped packs, validation errors (file and rule named), user packs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from safeflow.errors import PackError, PolicyError
from safeflow.policy import Outcome, default_packs, evaluate, gate_check, load_pack
from safeflow.policy.sdc import PROFILES
from tests.unit.policy.builders import cn_row_level, table

EU_MEMBERS = {
    "AT",
    "BE",
    "BG",
    "HR",
    "CY",
    "CZ",
    "DK",
    "EE",
    "FI",
    "FR",
    "DE",
    "GR",
    "HU",
    "IE",
    "IT",
    "LV",
    "LT",
    "LU",
    "MT",
    "NL",
    "PL",
    "PT",
    "RO",
    "SK",
    "SI",
    "ES",
    "SE",
}


def _pack(name: str) -> object:
    return next(
        p
        for profile in ("acro", "ohdsi", "datashield")
        for p in default_packs(profile)
        if p.name == name
    )


def write(tmp_path: Path, body: str, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


RULE_OK = """
pack: study
version: "1"
scope: output
rules:
  - id: R-1
    when: destination.jurisdiction != 'NL'
    outcome: PROHIBITED
    fix: release to NL only
    sources: [{law: Study protocol, article: "7.2"}]
"""


def test_shipped_packs_have_the_expected_rules() -> None:
    ids = {p.name: {r.id for r in p.rules} for p in default_packs()}
    assert ids["cn"] == {
        "CN-anon",
        "CN-anon-pending",
        "CN-domestic",
        "CN-academic",
        "CN-important",
        "CN-core",
        "CN-ciio",
        "CN-volume-sa",
        "CN-volume-scc",
        "CN-volume-exempt",
        "CN-persons-unknown",
        "CN-ftz",
        "CN-ftz-bj-health",
        "CN-court",
        "CN-hgr",
        "CN-hgr-review",
        "CN-health-consent",
    }
    assert ids["eu"] == {
        "EU-anon",
        "EU-anon-pending",
        "EU-adequate",
        "EU-adequacy",
        "EU-tia-missing",
        "EU-no-basis",
        "EU-consent",
        "EU-health",
        "EU-model",
        "EU-cipher",
    }
    assert ids["nl"] == {"NL-uavg-research", "NL-uavg-genetic", "NL-wgbo-records"}
    assert ids["sdc-acro"] == {
        f"SDC-acro-{r}"
        for r in (
            "unmeasured",
            "min-cell",
            "zeros",
            "dominance",
            "p-ratio",
            "residual-dof",
            "survival",
            "budget",
            "dp-unit",
        )
    }
    assert {r.id for r in _pack("sdc-datashield").rules} >= {"SDC-datashield-params-ratio"}


def test_shipped_packs_are_versioned_sourced_and_scoped() -> None:
    for p in (*default_packs(), _pack("sdc-ohdsi"), _pack("sdc-datashield")):
        assert p.version == "2024.1" and len(p.sha256) == 64
        for r in (*p.rules, *p.export_gate):
            assert r.sources and all(s.law and s.article for s in r.sources)
    assert _pack("eu").jurisdictions == EU_MEMBERS
    assert _pack("nl").jurisdictions == {"NL"} and _pack("cn").jurisdictions == {"CN"}
    verify = {r.id for p in default_packs() for r in p.rules if r.verify}
    assert "CN-hgr-review" in verify
    procedures = [r for p in default_packs() for r in p.rules if r.outcome.procedure]
    assert procedures and all(r.satisfied_by for r in procedures)


def test_adequacy_list_is_data_in_the_eu_pack() -> None:
    data = _pack("eu").data
    assert {"JP", "KR", "CH", "GB", "NZ"} <= set(data["adequacy"])
    assert "CN" not in data["adequacy"] and "US" not in data["adequacy"]
    assert "NO" in data["eea"] and len(data["eea"]) == 30


@pytest.mark.parametrize("name", ["acro", "ohdsi", "datashield"])
def test_sdc_pack_profiles_equal_the_python_profiles(name: str) -> None:
    assert _pack(f"sdc-{name}").profile == PROFILES[name]


def test_pack_applies_to_eu_members_and_nl_adds_to_eu() -> None:
    facts = table("DE", "CN", kind="freq_table", min_cell=20, has_zero=False)
    d = evaluate(facts)
    assert d.rules == ("EU-anon",)
    nl_model = {
        "output": {"kind": "model"},
        "destination": {"jurisdiction": "CN"},
        "origin": [{"jurisdiction": "NL", "classes": ["health"], "persons": 5}],
        "instruments": {"scc": True, "tia": True},
    }
    packs_fired = {f.pack for f in evaluate(nl_model).fired}
    assert {"eu", "nl"} <= packs_fired
    nl_model["origin"][0]["jurisdiction"] = "DE"
    assert "nl" not in {f.pack for f in evaluate(nl_model).fired}


# --- validation errors: each names the file and the rule -----------------------------------


@pytest.mark.parametrize(
    "edit,message",
    [
        (
            ("when: destination.jurisdiction != 'NL'", "when: destination.jurisdiction !="),
            "when is not valid CEL",
        ),
        (("outcome: PROHIBITED", "outcome: FORBIDDEN"), "unknown outcome 'FORBIDDEN'"),
        (('    sources: [{law: Study protocol, article: "7.2"}]\n', ""), "sources are required"),
        (
            ('sources: [{law: Study protocol, article: "7.2"}]', "sources: []"),
            "sources are required",
        ),
        (
            ('sources: [{law: Study protocol, article: "7.2"}]', "sources: [{law: x}]"),
            "needs a non-empty law and article",
        ),
        (
            ("fix: release to NL only", "fix: release to NL only\n    severity: high"),
            "unknown key 'severity'",
        ),
        (
            ("destination.jurisdiction != 'NL'", "destinaton.jurisdiction != 'NL'"),
            "unknown variable 'destinaton'",
        ),
        (
            ("destination.jurisdiction != 'NL'", "destination.jurisdicton != 'NL'"),
            "fails on default facts",
        ),
        (("destination.jurisdiction != 'NL'", "origin.persons"), "fails on default facts"),
        (("destination.jurisdiction != 'NL'", "size(purpose)"), "must give true or false"),
        (("    fix: release to NL only\n", ""), "give a fix"),
        (("outcome: PROHIBITED", "outcome: SCC_OR_CERT"), "satisfied_by must name"),
        (
            ("fix: release to NL only", "fix: x\n    satisfied_by: instruments.scc"),
            "satisfied_by applies only to procedure outcomes",
        ),
    ],
)
def test_rule_validation_errors_name_file_and_rule(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    body = RULE_OK.replace(*edit)
    assert body != RULE_OK
    path = write(tmp_path, body)
    with pytest.raises(PackError, match=message) as e:
        load_pack(path)
    assert str(path) in str(e.value) and "rule 'R-1'" in str(e.value)


def test_duplicate_rule_id_names_file_and_rule(tmp_path: Path) -> None:
    body = RULE_OK + textwrap.indent(
        textwrap.dedent("""\
        - id: R-1
          when: "true"
          outcome: ALLOW
          sources: [{law: x, article: "1"}]
        """),
        "  ",
    )
    path = write(tmp_path, body)
    with pytest.raises(PackError, match=r"rule 'R-1': duplicate rule id") as e:
        load_pack(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize(
    "edit,message",
    [
        (('version: "1"', "version: 2024.1"), "version must be a quoted string"),
        (("pack: study", "pack: Study Pack"), "pack must be a lowercase name"),
        (("scope: output", "scope: output\njurisdictions: [CN]"), "not both"),
        (("scope: output", "jurisdictions: [China]"), "ISO 3166"),
        (("scope: output", "scope: output\nauthor: me"), "unknown key 'author'"),
        (("scope: output", "scope: output\nscope: output"), "duplicate key 'scope'"),
    ],
)
def test_pack_level_validation_errors_name_the_file(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    path = write(tmp_path, RULE_OK.replace(*edit))
    with pytest.raises(PackError, match=message) as e:
        load_pack(path)
    assert str(path) in str(e.value)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(PackError, match="cannot read"):
        load_pack(tmp_path / "absent.yaml")
    with pytest.raises(PackError, match="not valid YAML"):
        load_pack(write(tmp_path, "pack: [unclosed\n"))
    with pytest.raises(PackError, match="rules must be a list"):
        load_pack(write(tmp_path, RULE_OK.split("rules:")[0] + "rules: 5\n"))
    with pytest.raises(PackError, match=r"rules\[0\] needs an id"):
        load_pack(write(tmp_path, RULE_OK.replace("id: R-1", "id: 1 bad")))


def test_gate_rule_validation(tmp_path: Path) -> None:
    body = """
    pack: gate
    version: "1"
    jurisdictions: ["*"]
    export_gate:
      - id: G-1
        when: kind == 'statistics'
        decision: maybe
        reason: x
        sources: [{law: x, article: "1"}]
    """
    with pytest.raises(PackError, match="rule 'G-1': decision must be allow or deny"):
        load_pack(write(tmp_path, body))
    with pytest.raises(PackError, match="rule 'G-1': when uses unknown variable 'output'"):
        load_pack(
            write(tmp_path, body.replace("kind ==", "output.kind ==").replace("maybe", "allow"))
        )
    with pytest.raises(PackError, match="rule 'G-1': a deny rule needs a fix"):
        load_pack(write(tmp_path, body.replace("maybe", "deny")))


def test_rules_with_macros_and_helpers_load(tmp_path: Path) -> None:
    body = RULE_OK.replace(
        "destination.jurisdiction != 'NL'",
        "origins.exists(o, o.jurisdiction == 'CN' && o.persons > 0) && total_persons >= 0",
    )
    assert load_pack(write(tmp_path, body)).rules[0].id == "R-1"


# --- user packs -------------------------------------------------------------------------


def test_study_pack_destination_must_be_nl(tmp_path: Path) -> None:
    study = load_pack(write(tmp_path, RULE_OK))
    facts = table("NL", "CN", min_cell=20, has_zero=False)
    assert evaluate(facts).outcome is Outcome.ALLOW
    d = evaluate(facts, packs=[*default_packs(), study])
    assert d.outcome is Outcome.PROHIBITED and d.rules == ("R-1",)
    assert ("study", "1", study.sha256) in d.packs
    facts["destination"]["jurisdiction"] = "NL"
    assert evaluate(facts, packs=[study, *default_packs()]).outcome is Outcome.ALLOW


def test_user_ftz_negative_list(tmp_path: Path) -> None:
    body = """
    pack: ftz-sh
    version: "2024.1"
    jurisdictions: [CN]
    rules:
      - id: SH-health-10k
        negative_list: CN-FTZ-SH
        when: personal && 'health' in origin.classes && total_persons >= 10000
        outcome: SECURITY_ASSESSMENT
        satisfied_by: instruments.security_assessment != null
        fix: apply for a security assessment
        sources: [{law: Shanghai FTZ negative list, article: "health item"}]
    """
    sh = load_pack(write(tmp_path, body, "ftz-sh.yaml"))
    packs = [*default_packs(), sh]
    small = cn_row_level(9_999, 0, classes=("pi",), ftz="CN-FTZ-SH")
    d = evaluate(small, packs=packs)
    assert d.outcome is Outcome.EXEMPT and "CN-ftz" in d.rules
    big = cn_row_level(10_000, 10_000, classes=("health",), ftz="CN-FTZ-SH")
    assert "SH-health-10k" in evaluate(big, packs=packs).rules
    # without the list loaded the FTZ gives no exemption
    assert evaluate(small).outcome is Outcome.EXEMPT  # < 100,000 non-sensitive anyway
    assert evaluate(cn_row_level(200_000, 0, ftz="CN-FTZ-SH")).outcome is Outcome.SCC_OR_CERT
    assert evaluate(cn_row_level(200_000, 0, ftz="CN-FTZ-SH"), packs=packs).outcome is (
        Outcome.EXEMPT
    )


def test_user_gate_pack_allows_plain_for_a_synthetic_benchmark(tmp_path: Path) -> None:
    body = """
    pack: bench
    version: "1"
    jurisdictions: ["*"]
    export_gate:
      - id: BENCH-plain
        when: kind == 'statistics' && protection == 'none'
        decision: allow
        reason: synthetic benchmark data, no person behind it
        sources: [{law: Benchmark protocol, article: "synthetic data only"}]
    """
    bench = load_pack(write(tmp_path, body, "bench.yaml"))
    msg = {"protection": "none", "kind": "statistics", "destination": "NL"}
    assert not gate_check("CN", msg).allowed
    d = gate_check("CN", msg, packs=[*default_packs(), bench])
    assert d.allowed and d.rule == "BENCH-plain"


def test_clashing_packs_are_refused(tmp_path: Path) -> None:
    a = load_pack(write(tmp_path, RULE_OK, "a.yaml"))
    b = load_pack(write(tmp_path, RULE_OK.replace("release to NL only", "other"), "b.yaml"))
    facts = table(min_cell=20, has_zero=False)
    with pytest.raises(PolicyError, match="two different packs named 'study'"):
        evaluate(facts, packs=[a, b])
    c = load_pack(write(tmp_path, RULE_OK.replace("pack: study", "pack: other"), "c.yaml"))
    with pytest.raises(PolicyError, match="rule id 'R-1' is defined in packs"):
        evaluate(facts, packs=[a, c])
    assert evaluate(facts, packs=[a, a]).packs == (a.key,)  # the same pack twice is one pack
    with pytest.raises(PolicyError, match="list of packs"):
        evaluate(facts, packs=a)  # type: ignore[arg-type]


def test_packs_may_be_given_as_paths(tmp_path: Path) -> None:
    path = write(tmp_path, RULE_OK)
    d = evaluate(table("NL", "CN", min_cell=20, has_zero=False), packs=[path])
    assert d.outcome is Outcome.PROHIBITED

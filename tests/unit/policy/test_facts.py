"""Facts validation: documented defaults, dotted-path errors, the fields runs add."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

import safeflow.policy.facts as facts_module
from safeflow.errors import FactsError
from safeflow.policy import evaluate, normalize_facts
from tests.conftest import lung_federation

MINIMAL = {"origin": [{"jurisdiction": "CN"}], "destination": {"jurisdiction": "NL"}}


def with_(path: str, value: object) -> dict:
    """MINIMAL with ``value`` set at a dotted path (``origin.0.persons``)."""
    f = copy.deepcopy(MINIMAL)
    node: object = f
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node.setdefault(k, {})  # type: ignore[index,union-attr]
    node[keys[-1]] = value  # type: ignore[index]
    return f


def test_every_field_has_a_default() -> None:
    f = normalize_facts(MINIMAL)
    assert f == {
        "output": {
            "kind": "row_level",
            "protocol": "plain",
            "dp": None,
            "sdc": {k: None for k in facts_module.SDC_FIELDS},
            "derived_from_genetic": False,
            "time_grid": None,
        },
        "origin": [
            {
                "site": None,
                "jurisdiction": "CN",
                "ciio": False,
                "ftz": None,
                "classes": [],
                "persons": 0,
                "sensitive_persons": 0,
                "persons_ytd": 0,
                "sensitive_persons_ytd": 0,
                "genome_persons": 0,
            }
        ],
        "destination": {"jurisdiction": "NL", "recipient_type": "research"},
        "purpose": "scientific-research",
        "instruments": {
            "scc": False,
            "hgr_filing": False,
            "explicit_consent": False,
            "tia": False,
            "dpia": False,
            "pipia": False,
            "certification": False,
            "security_assessment": None,
            "hgr_approval": None,
            "authority_approval": None,
        },
        "budget": None,
        "unit_of_privacy": "patient",
        "run": {},
    }
    json.dumps(f)  # JSON-able
    for field in (
        "output.kind",
        "origin[i].persons",
        "instruments.scc",
        "budget.epsilon_spent",
        "unit_of_privacy",
        "output.sdc.min_event_cell",
        "run",
    ):
        assert field in facts_module.__doc__  # the defaults table documents every field


def test_sensitive_persons_default_follows_the_classes() -> None:
    f = normalize_facts(
        with_("origin", [{"jurisdiction": "CN", "classes": ["health", "pi"], "persons": 120}])
    )
    assert f["origin"][0]["sensitive_persons"] == 120
    assert f["origin"][0]["classes"] == ["health", "pi"]


def test_normalizing_twice_is_the_same() -> None:
    raw = {
        "output": {
            "kind": "dp_release",
            "protocol": "dp",
            "dp": {"epsilon": 0.50},
            "sdc": {
                "min_cell": np.int64(12),
                "nk_top2_share": np.float64(0.4),
                "has_zero": np.bool_(False),
            },
        },
        "origin": [{"jurisdiction": "NL", "classes": ["pi", "health", "pi"]}],
        "destination": {"jurisdiction": "CN"},
        "budget": {"epsilon_total": "1.00", "epsilon_spent": 0.1},
    }
    once = normalize_facts(raw)
    assert once["output"]["dp"] == {"epsilon": "0.5", "delta": "0"}
    assert once["budget"] == {
        "epsilon_total": "1",
        "epsilon_spent": "0.1",
        "epsilon_requested": "0.5",
    }
    assert once["origin"][0]["classes"] == ["health", "pi"]
    assert type(once["output"]["sdc"]["min_cell"]) is int
    assert normalize_facts(once) == once


@pytest.mark.parametrize(
    "path,value,message",
    [
        ("origin.0.persons", -3, r"origin\[0\]\.persons must be an int >= 0; got -3"),
        ("origin.0.persons", 1.5, r"origin\[0\]\.persons must be an int >= 0; got 1\.5"),
        ("origin.0.persons", True, r"origin\[0\]\.persons must be an int >= 0; got True"),
        ("origin.0.jurisdiction", "China", r"origin\[0\]\.jurisdiction must be an ISO 3166"),
        ("origin.0.classes", ["health", "medical"], r"origin\[0\]\.classes must be a list drawn"),
        ("origin.0.classes", "health", r"origin\[0\]\.classes must be a list drawn"),
        ("origin.0.ciio", "yes", r"origin\[0\]\.ciio must be true or false"),
        ("origin.0.colour", "red", r"unknown field origin\[0\]\.colour"),
        (
            "origin.0.sensitive_persons",
            5,
            r"origin\[0\]\.sensitive_persons must be an int in "
            r"\[0, origin\[0\]\.persons\]",
        ),
        ("output.kind", "table", "output.kind must be one of freq_table"),
        ("output.protocol", "rot13", "output.protocol must be one of plain"),
        ("output.sdc.min_cell", "12", "output.sdc.min_cell must be an int >= 0"),
        (
            "output.sdc.nk_top2_share",
            1.2,
            r"output\.sdc\.nk_top2_share must be a finite number in \[0, 1\]",
        ),
        ("output.sdc.p_ratio", float("nan"), "output.sdc.p_ratio must be a finite number >= 0"),
        ("output.sdc.cells", 3, "unknown field output.sdc.cells"),
        ("output.anonymous", True, "output.anonymous is derived by the policy engine"),
        ("output.dp", {"delta": 0}, "output.dp.epsilon is required"),
        ("output.dp", {"epsilon": 0}, "output.dp.epsilon must be a decimal number > 0"),
        ("output.dp", {"epsilon": "lots"}, "output.dp.epsilon must be a decimal number"),
        ("output.dp", {"epsilon": 1, "delta": 1}, r"output\.dp\.delta must be a decimal number in"),
        ("output.kind", "dp_release", "output.dp is required when output.kind is 'dp_release'"),
        ("output.time_grid", {"points": -1}, "output.time_grid.points must be an int >= 0"),
        ("destination.recipient_type", "police", "destination.recipient_type must be one of"),
        ("destination.jurisdiction", "nl", "destination.jurisdiction must be an ISO 3166"),
        ("instruments.security_assessment", 42, "instruments.security_assessment must be an id"),
        ("instruments.sccs", True, "unknown field instruments.sccs"),
        ("budget", {"epsilon_spent": 0}, "budget.epsilon_total is required"),
        ("budget", {"epsilon_total": -1}, "budget.epsilon_total must be a decimal number >= 0"),
        ("unit_of_privacy", "visit", "unit_of_privacy must be one of patient, row"),
        ("purpose", "", "purpose must be a non-empty string"),
        ("run.rounds", -1, "run.rounds must be an int >= 0"),
        ("run.protocol_spec_sha256", "abc", "run.protocol_spec_sha256 must be 64 lowercase hex"),
        ("run.border_bytes", {"CN->NL": -5}, "run.border_bytes must be a mapping of strings"),
        ("run.colour", 1, "unknown field run.colour"),
        ("colour", 1, "unknown field colour"),
    ],
)
def test_ill_typed_or_unknown_fields_name_the_path(
    path: str,
    value: object,
    message: str,
) -> None:
    with pytest.raises(FactsError, match=message):
        normalize_facts(with_(path, value))


@pytest.mark.parametrize(
    "raw,message",
    [
        ({"destination": {"jurisdiction": "NL"}}, "origin must be a non-empty list"),
        ({"origin": [], "destination": {"jurisdiction": "NL"}}, "origin must be a non-empty list"),
        (
            {"origin": [{"persons": 1}], "destination": {"jurisdiction": "NL"}},
            r"origin\[0\]\.jurisdiction is required",
        ),
        ({"origin": [{"jurisdiction": "CN"}]}, "destination is required"),
        (
            {"origin": [{"jurisdiction": "CN"}], "destination": {}},
            "destination.jurisdiction is required",
        ),
        (
            {
                "origin": [
                    {"jurisdiction": "CN", "site": "a"},
                    {"jurisdiction": "NL", "site": "a"},
                ],
                "destination": {"jurisdiction": "NL"},
            },
            "site names unique",
        ),
        ([1, 2], "facts must be a mapping"),
    ],
)
def test_required_fields(raw: object, message: str) -> None:
    with pytest.raises(FactsError, match=message):
        normalize_facts(raw)  # type: ignore[arg-type]


def test_budget_request_must_match_the_release() -> None:
    raw = {
        "output": {"kind": "histogram", "dp": {"epsilon": 0.3}},
        **MINIMAL,
        "budget": {"epsilon_total": 1, "epsilon_requested": 0.2},
    }
    with pytest.raises(FactsError, match=r"budget\.epsilon_requested must equal output\.dp"):
        normalize_facts(raw)


def test_facts_of_a_real_run_are_accepted_with_the_fields_runs_add() -> None:
    fed = lung_federation(2)
    import safeflow as sf

    rel = sf.describe(fed, ["age", "sex"], protocol="masking")
    f = normalize_facts(rel.facts)
    assert f["run"]["protocol_spec_sha256"] == rel.facts["run"]["protocol_spec_sha256"]
    assert f["output"]["sdc"]["dominance_bound"].startswith("conservative")
    d = evaluate(rel.facts)
    assert d.exportable and d.derived["anonymous"]
    cox = sf.cox(fed, duration="time", event="status", covariates=["age"], protocol="masking")
    f = normalize_facts(cox.facts)
    assert f["output"]["time_grid"]["points"] > 0 and f["output"]["sdc"]["params_per_n"] > 0

"""What a rule's CEL predicate sees: the facts plus helper variables computed in Python.

**Output and origin rules** (``rules:``) see every top-level facts field (``output``,
``destination``, ``purpose``, ``instruments``, ``budget``, ``unit_of_privacy``, ``run``),
``origins`` (the list of all origin entries) and these helpers:

=====================  ===================================================================
variable               meaning
=====================  ===================================================================
origin                 the origin entry being evaluated (null for output-scope packs)
jurisdiction           ``origin.jurisdiction`` (null for output-scope packs)
domestic               the destination is in the origin's jurisdiction (no export); false
                       for output-scope packs
aggregate              output.kind is freq_table, magnitude_table, regression, survival or
                       histogram
dp                     the output carries DP parameters (``output.dp != null``)
epsilon                ``output.dp.epsilon`` as a double (null without DP; for coarse study
                       rules only; budgets use ``budget_ok``)
budget_ok              spent + requested <= total, exactly (Fractions); true without DP and
                       without a budget; false for DP without a declared budget
sdc_fail               map of each SDC check name (:data:`safeflow.policy.sdc.CHECKS`) to
                       whether it failed; all false for DP outputs (the budget protects them)
sdc_pass               no SDC check failed
public_data            every origin contributes only columns of class ``public``
                       (published, de-identified open data): not personal data, so no
                       disclosure control applies and the output is anonymous
anonymous              POLICY.md: an aggregate that passes the SDC profile, or a DP release
                       (or DP-trained model) within budget with one patient as the unit of
                       privacy; never for row_level
controlled             an aggregate or DP output: disclosure control decides whether it is
                       anonymous (row_level never is)
pending                controlled but not (yet) anonymous: blocked by DENY_SDC until it
                       passes (suppress, coarsen, smaller ε)
personal               neither anonymous nor controlled: row-level data, a model trained
                       without DP. The PI transfer rules apply to these
pi_persons             ``origin.persons`` if personal, else 0 (anonymous: no PI transferred)
sensitive_pi_persons   ``origin.sensitive_persons`` if personal, else 0
genome_persons         ``origin.genome_persons`` if personal, else 0
total_persons          pi_persons + origin.persons_ytd (cumulative since 1 January)
total_sensitive        sensitive_pi_persons + origin.sensitive_persons_ytd
adequacy               the destination has an EU adequacy decision (``data.adequacy`` of
                       the packs in use)
eea_destination        the destination is in the EEA (``data.eea`` of the packs in use)
ftz_list_loaded        origin.ftz is set and some pack holds that FTZ's negative list
ftz_listed             a rule of that negative list fired for this origin
ftz_exempt             ftz_list_loaded, not ftz_listed and not a CIIO (Provisions Art 6)
data                   the evaluated pack's own ``data:`` section
=====================  ===================================================================

**Export-gate rules** (``export_gate:``) see the message facts ``protection``, ``kind``,
``crosses_border``, ``destination`` (a jurisdiction code or null), ``instruments``,
``budget_ok``, ``public_data`` and ``stage``, plus ``jurisdiction`` (the sending site's),
``adequacy``, ``eea_destination`` and ``data``.

Examples
--------
>>> from safeflow.policy.facts import normalize_facts
>>> f = normalize_facts({"output": {"kind": "freq_table", "sdc": {"min_cell": 12,
...     "has_zero": False}}, "origin": [{"jurisdiction": "CN", "persons": 120}],
...     "destination": {"jurisdiction": "NL"}})
>>> d = derive(f, [])
>>> d["anonymous"], d["personal"]
(True, False)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from safeflow.policy._exact import exact
from safeflow.policy.facts import AGGREGATE_KINDS
from safeflow.policy.sdc import CHECKS, PROFILES, Profile, check

RULE_VARIABLES = frozenset(
    {
        "output",
        "origins",
        "destination",
        "purpose",
        "instruments",
        "budget",
        "unit_of_privacy",
        "run",
        "origin",
        "jurisdiction",
        "domestic",
        "aggregate",
        "dp",
        "epsilon",
        "budget_ok",
        "public_data",
        "sdc_fail",
        "sdc_pass",
        "anonymous",
        "controlled",
        "pending",
        "personal",
        "pi_persons",
        "sensitive_pi_persons",
        "genome_persons",
        "total_persons",
        "total_sensitive",
        "adequacy",
        "eea_destination",
        "ftz_list_loaded",
        "ftz_listed",
        "ftz_exempt",
        "data",
    }
)
GATE_VARIABLES = frozenset(
    {
        "protection",
        "kind",
        "crosses_border",
        "destination",
        "instruments",
        "budget_ok",
        "public_data",
        "stage",
        "jurisdiction",
        "adequacy",
        "eea_destination",
        "data",
    }
)


def budget_ok(facts: Mapping[str, Any]) -> bool:
    """Exact budget rule: ``spent + requested <= total`` (inclusive).

    Examples
    --------
    >>> budget_ok({"output": {"dp": {"epsilon": "0.2"}}, "budget": {"epsilon_total": "1.0",
    ...            "epsilon_spent": "0.8", "epsilon_requested": "0.2"}})
    True
    """
    b, dp = facts.get("budget"), facts["output"].get("dp")
    if b is None:
        return dp is None
    spent, requested = exact(b["epsilon_spent"]), exact(b["epsilon_requested"])
    return spent + requested <= exact(b["epsilon_total"])


def public_data(facts: Mapping[str, Any]) -> bool:
    """True when every origin contributes only ``public`` (published open) data."""
    origins = facts["origin"]
    return bool(origins) and all(list(o["classes"]) == ["public"] for o in origins)


def sdc_failures(facts: Mapping[str, Any], profile: Profile) -> tuple[str, ...]:
    """The SDC checks this output fails under ``profile`` (none for DP or public data)."""
    out = facts["output"]
    if out["dp"] is not None or public_data(facts):
        return ()
    return check(out["sdc"], profile, kind=out["kind"]).failures


def derive(
    facts: Mapping[str, Any], profiles: Sequence[Profile], default_profile: str = "acro"
) -> dict[str, Any]:
    """Output-level helpers (see the module docstring) from normalised facts."""
    out = facts["output"]
    active = list(profiles) or [PROFILES[default_profile]]
    failed = {c for p in active for c in sdc_failures(facts, p)}
    aggregate = out["kind"] in AGGREGATE_KINDS
    has_dp = out["dp"] is not None
    ok = budget_ok(facts)
    dp_ok = has_dp and ok and facts["unit_of_privacy"] == "patient"
    row_level = out["kind"] == "row_level"
    public = public_data(facts)
    anonymous = public or (
        not row_level and ((aggregate and not has_dp and not failed) or dp_ok))
    controlled = not row_level and (aggregate or has_dp)
    return {
        "aggregate": aggregate,
        "dp": has_dp,
        "epsilon": float(exact(out["dp"]["epsilon"])) if has_dp else None,
        "budget_ok": ok,
        "sdc_fail": {c: c in failed for c in CHECKS},
        "sdc_pass": not failed,
        "public_data": public,
        "sdc_profiles": [p.name for p in active],
        "anonymous": anonymous,
        "controlled": controlled,
        "pending": controlled and not anonymous,
        "personal": not anonymous and not controlled,
    }


def _codes(datas: Iterable[Mapping[str, Any]], key: str) -> frozenset[str]:
    return frozenset(c for d in datas for c in d.get(key, ()) or ())


def destination_flags(
    destination: str | None, datas: Iterable[Mapping[str, Any]]
) -> dict[str, bool]:
    """``adequacy`` and ``eea_destination`` from the ``data`` sections of the packs in use."""
    datas = list(datas)
    return {
        "adequacy": destination in _codes(datas, "adequacy"),
        "eea_destination": destination in _codes(datas, "eea"),
    }


def rule_context(
    facts: Mapping[str, Any],
    derived: Mapping[str, Any],
    origin: Mapping[str, Any] | None,
    *,
    flags: Mapping[str, bool],
    ftz: Mapping[str, bool],
    data: Mapping[str, Any],
    sdc_fail: Mapping[str, bool] | None = None,
) -> dict[str, Any]:
    """The CEL activation of one rule evaluation (one origin, or the output as a whole)."""
    personal = derived["personal"]
    o = origin or {}
    pi = o.get("persons", 0) if personal else 0
    spi = o.get("sensitive_persons", 0) if personal else 0
    fail = dict(derived["sdc_fail"] if sdc_fail is None else sdc_fail)
    return {
        "output": facts["output"],
        "origins": facts["origin"],
        "destination": facts["destination"],
        "purpose": facts["purpose"],
        "instruments": facts["instruments"],
        "budget": facts["budget"],
        "unit_of_privacy": facts["unit_of_privacy"],
        "run": facts["run"],
        "origin": origin,
        "jurisdiction": o.get("jurisdiction"),
        "domestic": origin is not None
        and facts["destination"]["jurisdiction"] == o.get("jurisdiction"),
        **{
            k: derived[k]
            for k in (
                "aggregate",
                "dp",
                "epsilon",
                "budget_ok",
                "public_data",
                "anonymous",
                "controlled",
                "pending",
                "personal",
            )
        },
        "sdc_fail": fail,
        "sdc_pass": not any(fail.values()),
        "pi_persons": pi,
        "sensitive_pi_persons": spi,
        "genome_persons": o.get("genome_persons", 0) if personal else 0,
        "total_persons": pi + o.get("persons_ytd", 0),
        "total_sensitive": spi + o.get("sensitive_persons_ytd", 0),
        "adequacy": flags["adequacy"],
        "eea_destination": flags["eea_destination"],
        "ftz_list_loaded": ftz.get("ftz_list_loaded", False),
        "ftz_listed": ftz.get("ftz_listed", False),
        "ftz_exempt": ftz.get("ftz_exempt", False),
        "data": dict(data),
    }


def gate_context(
    jurisdiction: str,
    message: Mapping[str, Any],
    *,
    flags: Mapping[str, bool],
    data: Mapping[str, Any],
) -> dict[str, Any]:
    """The CEL activation of one export-gate rule."""
    return {
        **{
            k: message[k]
            for k in (
                "protection",
                "kind",
                "crosses_border",
                "destination",
                "instruments",
                "budget_ok",
                "public_data",
                "stage",
            )
        },
        "jurisdiction": jurisdiction,
        "adequacy": flags["adequacy"],
        "eea_destination": flags["eea_destination"],
        "data": dict(data),
    }


__all__ = [
    "GATE_VARIABLES",
    "RULE_VARIABLES",
    "budget_ok",
    "derive",
    "destination_flags",
    "gate_context",
    "rule_context",
]

"""Facts: the policy engine's input, validated and completed with documented defaults.

:func:`normalize_facts` checks a facts mapping (POLICY.md) and returns a new, JSON-able dict
in which every known field is present. An unknown field or an ill-typed value is a
:class:`~safeflow.errors.FactsError` naming the dotted path and what is expected, e.g.
``origin[0].persons must be an int >= 0; got -3``. Normalising twice gives the same dict.

Three fields have no default, because there is no safe guess for where data came from or
where it goes: ``origin`` (at least one entry), ``origin[i].jurisdiction`` and
``destination.jurisdiction``. Every other field defaults as below.

========================================  ==========================  ========================
field                                     type                        default
========================================  ==========================  ========================
output.kind                               freq_table, magnitude_table ``row_level`` (assume
                                          regression, survival,       the most disclosive
                                          histogram, model,           kind)
                                          dp_release, row_level
output.protocol                           plain, masking, he, dp      ``plain``
output.dp                                 {epsilon, delta} or null    null (no DP); required
                                                                      when kind is dp_release
                                                                      or protocol is dp
output.dp.epsilon                         decimal > 0                 (required inside dp)
output.dp.delta                           decimal in [0, 1)           ``"0"``
output.dp.unit, .mode, .alpha,            patient|row, central|local, absent (optional
.contributions, .withheld                 number, int, list of names  details of a run)
output.dp.statistics                      list of {statistic, kind,   absent (per noise
                                          mechanism, epsilon, delta,  group of a federated
                                          scale, std, sensitivity_l1, DP release)
                                          accuracy}
output.sdc.min_cell                       int >= 0 (smallest          null (not measured)
                                          non-zero cell)
output.sdc.has_zero                       bool                        null (not measured)
output.sdc.n                              int >= 0                    null
output.sdc.nk_top2_share                  number in [0, 1]            null
output.sdc.p_ratio                        number >= 0                 null
output.sdc.residual_dof                   int                         null
output.sdc.n_params                       int >= 0                    null
output.sdc.params_per_n                   number >= 0                 null
output.sdc.min_event_cell                 int >= 0                    null
output.sdc.min_at_risk_cell               int >= 0                    null
output.sdc.dominance_bound                str (how shares were        null
                                          bounded)
output.derived_from_genetic               bool                        false
output.time_grid                          {points: int, from: str,    null (keys absent:
                                          source: str, start, end,    not stated)
                                          step: numbers}
origin                                    list of origin entries      (required, >= 1)
origin[i].site                            str                         null
origin[i].jurisdiction                    ISO 3166 alpha-2 (CN, NL)   (required)
origin[i].ciio                            bool                        false
origin[i].ftz                             str such as CN-FTZ-BJ       null
origin[i].classes                         subset of health, genetic,  ``[]`` (sorted, no
                                          pi, sensitive_pi,           repeats)
                                          important_data, core_data
origin[i].persons                         int >= 0                    0
origin[i].sensitive_persons               int in [0, persons]         ``persons`` when classes
                                                                      include health, genetic
                                                                      or sensitive_pi, else 0
origin[i].persons_ytd                     int >= 0                    0
origin[i].sensitive_persons_ytd           int in [0, persons_ytd]     0
origin[i].genome_persons                  int in [0, persons]         0
destination.jurisdiction                  ISO 3166 alpha-2            (required)
destination.recipient_type                research, company, court,   ``research``
                                          law_enforcement
purpose                                   non-empty str               ``scientific-research``
instruments.scc                           bool (standard contract     false
                                          filed / signed)
instruments.security_assessment           assessment id (str) or null null
instruments.hgr_filing                    bool (HGR filing + backup)  false
instruments.hgr_approval                  approval id (str) or null   null
instruments.explicit_consent              bool                        false
instruments.tia                           bool (transfer impact       false
                                          assessment)
instruments.dpia                          bool                        false
instruments.pipia                         bool                        false
instruments.certification                 bool (PI protection         false
                                          certification, CN)
instruments.authority_approval            approval id (str) or null   null
                                          (competent authority, for
                                          courts / law enforcement)
budget                                    {epsilon_total,             null (no budget
                                          epsilon_spent,              declared)
                                          epsilon_requested} or null
budget.epsilon_total                      decimal >= 0                (required inside budget)
budget.epsilon_spent                      decimal >= 0                ``"0"``
budget.epsilon_requested                  decimal >= 0, equal to      ``output.dp.epsilon``,
                                          output.dp.epsilon           or ``"0"`` without DP
unit_of_privacy                           patient, row                ``patient``
run                                       mapping of the run's        ``{}`` (each key
                                          metadata: study,            optional)
                                          protocol_spec_sha256,
                                          rounds, rows_dropped,
                                          border_bytes,
                                          bytes_per_round,
                                          contributors, threshold
========================================  ==========================  ========================

ε values (``output.dp``, ``budget``) are exact: a float is read through its shortest repr,
a string as a decimal literal, and both are stored as canonical decimal strings (``0.5`` and
``"0.50"`` become ``"0.5"``), so budget arithmetic never rounds. ``output.anonymous`` is
*not* a fact: the engine derives it (a caller passing it gets a FactsError).

Examples
--------
>>> f = normalize_facts({"origin": [{"jurisdiction": "CN", "persons": 120}],
...                      "destination": {"jurisdiction": "NL"}})
>>> f["output"]["kind"], f["origin"][0]["sensitive_persons"], f["instruments"]["scc"]
('row_level', 0, False)
>>> normalize_facts({"origin": [{"jurisdiction": "CN", "persons": -3}],
...                  "destination": {"jurisdiction": "NL"}})
Traceback (most recent call last):
...
safeflow.errors.FactsError: origin[0].persons must be an int >= 0; got -3
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from safeflow.errors import FactsError
from safeflow.policy._exact import exact, is_int
from safeflow.policy._fields import (
    _bool,
    _choice,
    _decimal,
    _fail,
    _int,
    _mapping,
    _real,
    _text,
)

KINDS = (
    "freq_table",
    "magnitude_table",
    "regression",
    "survival",
    "histogram",
    "model",
    "dp_release",
    "row_level",
)
AGGREGATE_KINDS = frozenset(
    {"freq_table", "magnitude_table", "regression", "survival", "histogram"}
)
PROTOCOLS = ("plain", "masking", "he", "dp")
CLASSES = (
    "health", "genetic", "pi", "sensitive_pi", "important_data", "core_data", "public",
)
SENSITIVE_CLASSES = frozenset({"health", "genetic", "sensitive_pi"})
RECIPIENTS = ("research", "company", "court", "law_enforcement")
UNITS = ("patient", "row")
INSTRUMENT_FLAGS = (
    "scc",
    "hgr_filing",
    "explicit_consent",
    "tia",
    "dpia",
    "pipia",
    "certification",
)
INSTRUMENT_IDS = ("security_assessment", "hgr_approval", "authority_approval")
SDC_INTS = {
    "min_cell": 0,
    "n": 0,
    "residual_dof": None,
    "n_params": 0,
    "min_event_cell": 0,
    "min_at_risk_cell": 0,
}
SDC_FIELDS = (
    "min_cell",
    "has_zero",
    "n",
    "nk_top2_share",
    "p_ratio",
    "residual_dof",
    "n_params",
    "params_per_n",
    "min_event_cell",
    "min_at_risk_cell",
    "dominance_bound",
)
_TOP = (
    "output",
    "origin",
    "destination",
    "purpose",
    "instruments",
    "budget",
    "unit_of_privacy",
    "run",
)
_OUTPUT = ("kind", "protocol", "dp", "sdc", "derived_from_genetic", "time_grid")
_ORIGIN = (
    "site",
    "jurisdiction",
    "ciio",
    "ftz",
    "classes",
    "persons",
    "sensitive_persons",
    "persons_ytd",
    "sensitive_persons_ytd",
    "genome_persons",
)
_GRID = ("points", "from", "source", "start", "end", "step", "revealed")
_RUN_INTS = ("rounds", "rows_dropped", "threshold")
_RUN = (
    "study",
    "run_id",
    "messages_sha256",
    "protocol_spec_sha256",
    "rounds",
    "rows_dropped",
    "border_bytes",
    "bytes_per_round",
    "contributors",
    "threshold",
)
_JURISDICTION = re.compile(r"^[A-Z]{2}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _sdc(value: Any) -> dict[str, Any]:
    m = _mapping(value if value is not None else {}, "output.sdc", SDC_FIELDS)
    p = "output.sdc"
    out: dict[str, Any] = {k: _int(m, k, p, None, minimum=lo) for k, lo in SDC_INTS.items()}
    out["has_zero"] = _bool(m, "has_zero", p, None)
    out["nk_top2_share"] = _real(m, "nk_top2_share", p, hi=1.0)
    out["p_ratio"] = _real(m, "p_ratio", p)
    out["params_per_n"] = _real(m, "params_per_n", p)
    out["dominance_bound"] = _text(m, "dominance_bound", p, None)
    return {k: out[k] for k in SDC_FIELDS}


def _output(value: Any) -> dict[str, Any]:
    m = _mapping(value if value is not None else {}, "output", (*_OUTPUT, "anonymous"))
    if "anonymous" in m:
        raise FactsError(
            "output.anonymous is derived by the policy engine from the SDC profile and the "
            "privacy budget; remove it from the facts"
        )
    kind = _choice(m, "kind", "output", KINDS, "row_level")
    protocol = _choice(m, "protocol", "output", PROTOCOLS, "plain")
    dp = None
    if m.get("dp") is not None:
        d = _mapping(m["dp"], "output.dp", ("epsilon", "delta", *_DP_DETAILS))
        if "epsilon" not in d:
            raise FactsError(
                "output.dp.epsilon is required when output.dp is given; "
                "e.g. {epsilon: 0.5, delta: 0}"
            )
        dp = {
            "epsilon": _decimal(d, "epsilon", "output.dp", None, positive=True),
            "delta": _decimal(d, "delta", "output.dp", "0", below_one=True),
            **_dp_details(d),
        }
    elif kind == "dp_release" or protocol == "dp":
        raise FactsError(
            "output.dp is required when output.kind is 'dp_release' or output.protocol is "
            f"'dp'; got kind {kind!r}, protocol {protocol!r} and no dp. Give {{epsilon, delta}}"
        )
    grid = None
    if m.get("time_grid") is not None:
        p = "output.time_grid"
        g = _mapping(m["time_grid"], p, _GRID)
        grid = {
            "points": _int(g, "points", p, None),
            "from": _text(g, "from", p, None),
            "source": _text(g, "source", p, None),
            "revealed": _text(g, "revealed", p, None),
            **{k: _real(g, k, p, lo=-math.inf) for k in ("start", "end", "step")},
        }
        grid = {k: v for k, v in grid.items() if v is not None}
    return {
        "kind": kind,
        "protocol": protocol,
        "dp": dp,
        "sdc": _sdc(m.get("sdc")),
        "derived_from_genetic": _bool(m, "derived_from_genetic", "output", False),
        "time_grid": grid,
    }


#: optional details of a DP release (written by the federation, shown in certificates)
_DP_DETAILS = ("unit", "mode", "alpha", "contributions", "statistics", "withheld")
_DP_STAT = ("statistic", "kind", "mechanism", "epsilon", "delta", "scale", "std",
            "sensitivity_l1", "sensitivity_l2", "accuracy")


def _dp_details(d: Mapping[str, Any]) -> dict[str, Any]:
    p = "output.dp"
    out: dict[str, Any] = {}
    if "unit" in d:
        out["unit"] = _choice(d, "unit", p, ("patient", "row"), None)
    if "mode" in d:
        out["mode"] = _choice(d, "mode", p, ("central", "local"), None)
    if "alpha" in d:
        out["alpha"] = _real(d, "alpha", p, lo=0.0)
    if "contributions" in d:
        out["contributions"] = _int(d, "contributions", p, None)
    if "withheld" in d:
        w = d["withheld"]
        if isinstance(w, str) or not isinstance(w, Sequence) or not all(
                isinstance(x, str) for x in w):
            raise _fail(f"{p}.withheld", "a list of statistic names", w)
        out["withheld"] = list(w)
    if "statistics" in d:
        rows = d["statistics"]
        if isinstance(rows, str) or not isinstance(rows, Sequence):
            raise _fail(f"{p}.statistics", "a list of mechanism descriptions", rows)
        out["statistics"] = []
        for i, r in enumerate(rows):
            q = f"{p}.statistics[{i}]"
            r = _mapping(r, q, _DP_STAT)
            out["statistics"].append({
                "statistic": _text(r, "statistic", q, None),
                "kind": _choice(r, "kind", q, ("count", "real"), None),
                "mechanism": _text(r, "mechanism", q, None),
                "epsilon": _decimal(r, "epsilon", q, None, positive=True),
                "delta": _decimal(r, "delta", q, "0", below_one=True),
                **{k: _real(r, k, q, lo=0.0) for k in ("scale", "std", "accuracy")},
                "sensitivity_l1": _decimal(r, "sensitivity_l1", q, None, positive=True),
                **({"sensitivity_l2": _decimal(r, "sensitivity_l2", q, None, positive=True)}
                   if "sensitivity_l2" in r else {}),
            })
    return out


def _classes(value: Any, path: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise _fail(path, f"a list drawn from {', '.join(CLASSES)}", value)
    for c in value:
        if c not in CLASSES:
            raise _fail(path, f"a list drawn from {', '.join(CLASSES)}", list(value))
    return sorted(set(value))


def _origin(entry: Any, i: int) -> dict[str, Any]:
    p = f"origin[{i}]"
    m = _mapping(entry, p, _ORIGIN)
    if "jurisdiction" not in m:
        raise FactsError(
            f"{p}.jurisdiction is required: the ISO 3166 alpha-2 code of the "
            "country the data is in, e.g. 'CN' or 'NL'"
        )
    classes = _classes(m.get("classes", []), f"{p}.classes")
    persons = _int(m, "persons", p, 0)
    sensitive_default = persons if SENSITIVE_CLASSES & set(classes) else 0
    out = {
        "site": _text(m, "site", p, None),
        "jurisdiction": _text(
            m,
            "jurisdiction",
            p,
            None,
            pattern=_JURISDICTION,
            expected="an ISO 3166 alpha-2 code such as 'CN' or 'NL'",
        ),
        "ciio": _bool(m, "ciio", p, False),
        "ftz": _text(m, "ftz", p, None),
        "classes": classes,
        "persons": persons,
        "sensitive_persons": _int(m, "sensitive_persons", p, sensitive_default),
        "persons_ytd": _int(m, "persons_ytd", p, 0),
        "sensitive_persons_ytd": _int(m, "sensitive_persons_ytd", p, 0),
        "genome_persons": _int(m, "genome_persons", p, 0),
    }
    for part, whole in (
        ("sensitive_persons", "persons"),
        ("genome_persons", "persons"),
        ("sensitive_persons_ytd", "persons_ytd"),
    ):
        if out[part] > out[whole]:
            raise FactsError(
                f"{p}.{part} must be an int in [0, {p}.{whole}]; got "
                f"{out[part]!r} (they count the same persons)"
            )
    return out


def _instruments(value: Any, path: str = "instruments") -> dict[str, Any]:
    m = _mapping(value if value is not None else {}, path, (*INSTRUMENT_FLAGS, *INSTRUMENT_IDS))
    out: dict[str, Any] = {k: _bool(m, k, path, False) for k in INSTRUMENT_FLAGS}
    for k in INSTRUMENT_IDS:
        out[k] = _text(m, k, path, None, expected="an id string or null")
    return {k: out[k] for k in (*INSTRUMENT_FLAGS, *INSTRUMENT_IDS)}


def _budget(value: Any, dp: Mapping[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    m = _mapping(value, "budget", ("epsilon_total", "epsilon_spent", "epsilon_requested"))
    if "epsilon_total" not in m:
        raise FactsError(
            "budget.epsilon_total is required when budget is given; "
            "e.g. {epsilon_total: 1.0, epsilon_spent: 0.8}"
        )
    requested_default = dp["epsilon"] if dp else "0"
    out = {
        "epsilon_total": _decimal(m, "epsilon_total", "budget", None),
        "epsilon_spent": _decimal(m, "epsilon_spent", "budget", "0"),
        "epsilon_requested": _decimal(m, "epsilon_requested", "budget", requested_default),
    }
    if dp and exact(out["epsilon_requested"]) != exact(dp["epsilon"]):
        raise FactsError(
            "budget.epsilon_requested must equal output.dp.epsilon (the ε this release "
            f"spends); got {out['epsilon_requested']} and {dp['epsilon']}"
        )
    return out  # type: ignore[return-value]


def _str_int_map(value: Any, path: str) -> dict[str, int]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and is_int(v) and v >= 0 for k, v in value.items()
    ):
        raise _fail(path, "a mapping of strings to ints >= 0", value)
    return {k: int(v) for k, v in sorted(value.items())}


def _sha_map(value: Any, path: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and _SHA256.match(v) for k, v in value.items()
    ):
        raise _fail(path, "a mapping of site names to SHA-256 hex digests", value)
    return dict(sorted(value.items()))


def _run(value: Any) -> dict[str, Any]:
    m = _mapping(value if value is not None else {}, "run", _RUN)
    out: dict[str, Any] = {}
    checks: dict[str, Callable[[], Any]] = {
        "study": lambda: _text(m, "study", "run", None),
        "run_id": lambda: _text(m, "run_id", "run", None),
        "messages_sha256": lambda: _sha_map(m["messages_sha256"], "run.messages_sha256"),
        "protocol_spec_sha256": lambda: _text(
            m,
            "protocol_spec_sha256",
            "run",
            None,
            pattern=_SHA256,
            expected="64 lowercase hex digits",
        ),
        "border_bytes": lambda: _str_int_map(m["border_bytes"], "run.border_bytes"),
        "bytes_per_round": lambda: _str_int_map(m["bytes_per_round"], "run.bytes_per_round"),
        "contributors": lambda: _names(m["contributors"], "run.contributors"),
        **{k: (lambda k=k: _int(m, k, "run", None)) for k in _RUN_INTS},
    }
    for key in _RUN:
        if key in m:
            out[key] = checks[key]()
    return out


def _names(value: Any, path: str) -> list[str]:
    if (
        isinstance(value, str)
        or not isinstance(value, Sequence)
        or not all(isinstance(v, str) and v for v in value)
    ):
        raise _fail(path, "a list of non-empty strings", value)
    return list(value)


def normalize_facts(facts: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``facts`` and return them completed with the documented defaults.

    Parameters
    ----------
    facts : Mapping
        The POLICY.md facts of one candidate output (see the module docstring for every
        field, its type and its default).

    Returns
    -------
    dict
        A new JSON-able dict with every known field present (ε values as canonical decimal
        strings, classes sorted). ``normalize_facts(normalize_facts(f)) == normalize_facts(f)``.

    Raises
    ------
    FactsError
        An unknown field, an ill-typed value, or a missing required field; the message names
        the dotted path and what is expected.

    Examples
    --------
    >>> f = normalize_facts({"output": {"kind": "dp_release", "dp": {"epsilon": 0.50}},
    ...                      "origin": [{"jurisdiction": "NL"}],
    ...                      "destination": {"jurisdiction": "CN"},
    ...                      "budget": {"epsilon_total": "1.0", "epsilon_spent": 0.8}})
    >>> f["output"]["dp"], f["budget"]["epsilon_requested"]
    ({'epsilon': '0.5', 'delta': '0'}, '0.5')
    >>> normalize_facts({"origin": [], "destination": {"jurisdiction": "NL"}})
    Traceback (most recent call last):
    ...
    safeflow.errors.FactsError: origin must be a non-empty list of origin entries; got []
    """
    m = _mapping(facts, "", _TOP)
    output = _output(m.get("output"))
    origins = m.get("origin")
    if isinstance(origins, str | bytes) or not isinstance(origins, Sequence) or not origins:
        raise _fail("origin", "a non-empty list of origin entries", origins)
    origin = [_origin(o, i) for i, o in enumerate(origins)]
    sites = [o["site"] for o in origin if o["site"] is not None]
    if len(set(sites)) != len(sites):
        raise _fail("origin", "a list with one entry per site (site names unique)", sites)
    if "destination" not in m:
        raise FactsError(
            "destination is required: {jurisdiction: 'NL', recipient_type: 'research'}"
        )
    d = _mapping(m["destination"], "destination", ("jurisdiction", "recipient_type"))
    if "jurisdiction" not in d:
        raise FactsError(
            "destination.jurisdiction is required: an ISO 3166 alpha-2 code such as 'NL'"
        )
    destination = {
        "jurisdiction": _text(
            d,
            "jurisdiction",
            "destination",
            None,
            pattern=_JURISDICTION,
            expected="an ISO 3166 alpha-2 code such as 'CN' or 'NL'",
        ),
        "recipient_type": _choice(d, "recipient_type", "destination", RECIPIENTS, "research"),
    }
    return {
        "output": output,
        "origin": origin,
        "destination": destination,
        "purpose": _text(m, "purpose", "", "scientific-research"),
        "instruments": _instruments(m.get("instruments")),
        "budget": _budget(m.get("budget"), output["dp"]),
        "unit_of_privacy": _choice(m, "unit_of_privacy", "", UNITS, "patient"),
        "run": _run(m.get("run")),
    }


__all__ = ["AGGREGATE_KINDS", "CLASSES", "KINDS", "PROTOCOLS", "normalize_facts"]

"""The policy engine: every origin's packs and the SDC profile decide one candidate output.

:func:`evaluate` normalises the facts (:func:`~safeflow.policy.facts.normalize_facts`),
derives the helpers (``anonymous``, ``budget_ok``, ``sdc_fail`` ...; see
:mod:`safeflow.policy._context`) and evaluates

* for each origin, the rules of every origin-scope pack that applies to its jurisdiction
  (``cn`` for CN; ``eu`` for the 27 EU members; ``nl`` for NL in addition to ``eu``;
  ``jurisdictions: ["*"]`` packs for all). First the FTZ negative-list rules of the origin's
  FTZ (``negative_list:``), which set ``ftz_listed``; then the others;
* once, the rules of every output-scope pack (the SDC profile, study rules).

A procedure outcome (``SCC_OR_CERT``, ``SECURITY_ASSESSMENT``, ``NEEDS_APPROVAL``) whose
``satisfied_by`` holds becomes ``ALLOW_WITH_OBLIGATIONS``. The most restrictive outcome of
all fired rules decides (POLICY.md order).

**When no rule fires for an origin** (no pack covers its jurisdiction, or the packs that do
are silent) the origin contributes ``REVIEW`` under the pseudo-rule ``POLICY-no-rule``: the
engine never allows by default. The shipped CN and EU packs are exhaustive (an anonymous
output fires ``CN-anon`` / ``EU-anon``, a pending one ``CN-anon-pending`` /
``EU-anon-pending``, a personal one the transfer rules or ``CN-domestic`` when the
destination is China), so the fallback is met only for
other jurisdictions (e.g. SG: add a pack) or with partial user packs. Output-scope packs
have no fallback: they are checks that only ever restrict.

The result is deterministic: the same facts and the same set of packs (in any order) give
the same :class:`Decision`.

Examples
--------
>>> facts = {"output": {"kind": "freq_table", "protocol": "masking",
...                     "sdc": {"min_cell": 12, "has_zero": False, "n": 226}},
...          "origin": [{"site": "beijing", "jurisdiction": "CN", "classes": ["health"],
...                      "persons": 120}],
...          "destination": {"jurisdiction": "NL"}}
>>> d = evaluate(facts)
>>> d.outcome, d.rules, d.exportable
(<Outcome.EXEMPT: 'EXEMPT'>, ('CN-academic', 'CN-anon'), True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from safeflow.errors import PolicyError
from safeflow.policy._context import derive, destination_flags, rule_context
from safeflow.policy.facts import normalize_facts
from safeflow.policy.outcome import Outcome
from safeflow.policy.packs import Pack, Rule, default_packs, load_pack
from safeflow.policy.sdc import PROFILES, check

NO_RULE = "POLICY-no-rule"


@dataclass(frozen=True)
class Fired:
    """One rule that fired: for which origin (``None``: the output as a whole) and how.

    ``declared`` is the rule's outcome; ``outcome`` what it counts as (a procedure whose
    instrument is present counts as ``ALLOW_WITH_OBLIGATIONS``, ``satisfied`` true).
    """

    pack: str
    rule: str
    origin: int | None
    site: str | None
    jurisdiction: str | None
    declared: Outcome
    outcome: Outcome
    satisfied: bool = False
    obligations: tuple[str, ...] = ()
    fix: str | None = None
    verify: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "pack": self.pack,
            "rule": self.rule,
            "origin": self.origin,
            "site": self.site,
            "jurisdiction": self.jurisdiction,
            "declared": self.declared.value,
            "outcome": self.outcome.value,
            "satisfied": self.satisfied,
            "obligations": list(self.obligations),
            "fix": self.fix,
            "verify": self.verify,
        }


@dataclass(frozen=True)
class Decision:
    """The policy decision on one candidate output.

    Attributes
    ----------
    outcome : Outcome
        The most restrictive outcome of all fired rules.
    rules : tuple of str
        Ids of the rules that decided (those counting as ``outcome``), sorted.
    fired : tuple of Fired
        Every fired rule, per origin (in facts order), then the output-scope rules.
    obligations : tuple of str
        Duties of every fired rule, without repeats, in ``fired`` order.
    exportable : bool
        ``outcome`` is EXEMPT, ALLOW or ALLOW_WITH_OBLIGATIONS.
    fixes : tuple of str
        Next steps named by the deciding rules (never the sensitive numbers).
    packs : tuple of (name, version, sha256)
        The packs evaluated, sorted by name.
    derived : Mapping
        What the engine derived: ``anonymous``, ``personal``, ``pending``, ``budget_ok``,
        ``sdc_pass``, ``sdc_failures``, ``sdc_profiles``.
    """

    outcome: Outcome
    rules: tuple[str, ...]
    fired: tuple[Fired, ...]
    obligations: tuple[str, ...]
    exportable: bool
    fixes: tuple[str, ...]
    packs: tuple[tuple[str, str, str], ...]
    derived: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for certificates: canonical under RFC 8785).

        Examples
        --------
        >>> d = evaluate({"origin": [{"jurisdiction": "CN"}], "output": {"kind": "row_level"},
        ...               "destination": {"jurisdiction": "NL", "recipient_type": "court"}})
        >>> d.to_dict()["outcome"], d.to_dict()["rules"]
        ('PROHIBITED', ['CN-court'])
        """
        return {
            "outcome": self.outcome.value,
            "rules": list(self.rules),
            "fired": [f.to_dict() for f in self.fired],
            "obligations": list(self.obligations),
            "exportable": self.exportable,
            "fixes": list(self.fixes),
            "packs": [{"name": n, "version": v, "sha256": h} for n, v, h in self.packs],
            "derived": _plain(self.derived),
        }

    def __repr__(self) -> str:
        return (
            f"<Decision {self.outcome.value} by {', '.join(self.rules) or '-'}: "
            f"{'exportable' if self.exportable else 'not exportable'}>"
        )


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _resolve_packs(
    packs: Sequence[Pack | str | Path] | None,
    sdc_profile: str,
) -> list[Pack]:
    if packs is None:
        chosen = list(default_packs(sdc_profile))
    else:
        if isinstance(packs, str | Path | Pack):
            raise PolicyError(
                "packs must be a list of packs (or pack file paths), e.g. "
                "[*sf.policy.default_packs(), sf.policy.load_pack('study.yaml')]"
            )
        chosen = [p if isinstance(p, Pack) else load_pack(p) for p in packs]
    by_key = {p.key: p for p in chosen}
    result = sorted(by_key.values(), key=lambda p: p.key)
    names = [p.name for p in result]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise PolicyError(
            f"two different packs named {dupes[0]!r} were given; pass one version of each pack"
        )
    owner: dict[str, str] = {}
    for p in result:
        for r in (*p.rules, *p.export_gate):
            if r.id in owner:
                raise PolicyError(
                    f"rule id {r.id!r} is defined in packs {owner[r.id]!r} and "
                    f"{p.name!r}; rule ids must be unique across the packs used"
                )
            owner[r.id] = p.name
    return result


def _run(pack: Pack, rule: Rule, program: Any, ctx: Mapping[str, Any], what: str) -> bool:
    try:
        result = program.execute(dict(ctx))
    except Exception as e:  # CEL runtime errors: KeyError, RuntimeError, TypeError ...
        raise PolicyError(
            f"{pack.path}: rule {rule.id!r}: {what} cannot be evaluated on these "
            f"facts ({type(e).__name__}: {e}); fix the rule"
        ) from None
    if not isinstance(result, bool):
        raise PolicyError(
            f"{pack.path}: rule {rule.id!r}: {what} gave {result!r}, not a bool; fix the rule"
        )
    return result


def _fire(
    pack: Pack,
    rule: Rule,
    ctx: Mapping[str, Any],
    origin: int | None,
    entry: Mapping[str, Any] | None,
) -> Fired | None:
    if not _run(pack, rule, rule.program, ctx, "when"):
        return None
    satisfied = rule.satisfied_program is not None and _run(
        pack, rule, rule.satisfied_program, ctx, "satisfied_by"
    )
    return Fired(
        pack=pack.name,
        rule=rule.id,
        origin=origin,
        site=entry.get("site") if entry else None,
        jurisdiction=entry.get("jurisdiction") if entry else None,
        declared=rule.outcome,
        outcome=Outcome.ALLOW_WITH_OBLIGATIONS if satisfied else rule.outcome,
        satisfied=satisfied,
        obligations=rule.obligations,
        fix=rule.fix,
        verify=rule.verify,
    )


def _sorted_rules(packs: Sequence[Pack]) -> list[tuple[Pack, Rule]]:
    return sorted(((p, r) for p in packs for r in p.rules), key=lambda pr: (pr[0].name, pr[1].id))


def _origin_fired(
    facts: Mapping[str, Any],
    derived: Mapping[str, Any],
    i: int,
    packs: Sequence[Pack],
    flags: Mapping[str, bool],
) -> list[Fired]:
    entry = facts["origin"][i]
    applicable = [p for p in packs if p.applies_to(entry["jurisdiction"])]
    rules = _sorted_rules(applicable)
    ftz = entry["ftz"]
    listing = [(p, r) for p, r in rules if ftz is not None and r.negative_list == ftz]
    fired: list[Fired] = []
    state = {"ftz_list_loaded": bool(listing), "ftz_listed": False, "ftz_exempt": False}
    for p, r in listing:
        ctx = rule_context(facts, derived, entry, flags=flags, ftz=state, data=p.data)
        f = _fire(p, r, ctx, i, entry)
        if f is not None:
            fired.append(f)
    state["ftz_listed"] = bool(fired)
    state["ftz_exempt"] = bool(listing) and not fired and not entry["ciio"]
    for p, r in rules:
        if r.negative_list is not None:
            continue
        ctx = rule_context(facts, derived, entry, flags=flags, ftz=state, data=p.data)
        f = _fire(p, r, ctx, i, entry)
        if f is not None:
            fired.append(f)
    if not fired:
        j = entry["jurisdiction"]
        fired.append(
            Fired(
                pack="policy",
                rule=NO_RULE,
                origin=i,
                site=entry["site"],
                jurisdiction=j,
                declared=Outcome.REVIEW,
                outcome=Outcome.REVIEW,
                fix=f"no rule of the packs in use covers this output for origin jurisdiction {j}: "
                "add a pack for it (sf.policy.load_pack) or have the transfer reviewed",
            )
        )
    return fired


def evaluate(
    facts: Mapping[str, Any],
    *,
    packs: Sequence[Pack | str | Path] | None = None,
    sdc_profile: str = "acro",
) -> Decision:
    """Decide whether one candidate output may leave, under every origin's law and SDC.

    Parameters
    ----------
    facts : Mapping
        POLICY.md facts (validated by :func:`~safeflow.policy.facts.normalize_facts`).
    packs : sequence of Pack or path, optional
        The packs to evaluate. ``None``: :func:`~safeflow.policy.packs.default_packs` with
        ``sdc_profile`` (base gate, CN, EU, NL and the SDC profile pack). Order does not
        matter; jurisdiction packs apply only to origins they cover.
    sdc_profile : {"acro", "ohdsi", "datashield"}
        The SDC profile pack to use with the default packs, and the profile that decides
        ``anonymous`` when the given packs contain no SDC profile.

    Returns
    -------
    Decision

    Raises
    ------
    FactsError
        The facts are malformed.
    PolicyError
        A rule cannot be evaluated, or two packs clash (same name, same rule id).

    Examples
    --------
    >>> d = evaluate({"output": {"kind": "freq_table", "sdc": {"min_cell": 9,
    ...               "has_zero": False}}, "origin": [{"jurisdiction": "NL"}],
    ...               "destination": {"jurisdiction": "CN"}})
    >>> d.outcome, d.fixes[0][:20]
    (<Outcome.DENY_SDC: 'DENY_SDC'>, 'suppress or coarsen ')
    """
    if sdc_profile not in PROFILES:
        from safeflow.errors import InvalidParameter

        raise InvalidParameter(
            f"unknown SDC profile {sdc_profile!r}; choose one of {', '.join(PROFILES)}"
        )
    f = normalize_facts(facts)
    chosen = _resolve_packs(packs, sdc_profile)
    profiles = [p.profile for p in chosen if p.profile is not None]
    derived = derive(f, profiles, sdc_profile)
    flags = destination_flags(f["destination"]["jurisdiction"], [p.data for p in chosen])
    fired: list[Fired] = []
    for i in range(len(f["origin"])):
        fired += _origin_fired(f, derived, i, chosen, flags)
    for p, r in _sorted_rules([p for p in chosen if p.scope == "output"]):
        own = None
        if p.profile is not None:
            own = {c: False for c in derived["sdc_fail"]}
            if f["output"]["dp"] is None and not derived["public_data"]:
                own.update(
                    {
                        c: True
                        for c in check(
                            f["output"]["sdc"], p.profile, kind=f["output"]["kind"]
                        ).failures
                    }
                )
        ctx = rule_context(f, derived, None, flags=flags, ftz={}, data=p.data, sdc_fail=own)
        hit = _fire(p, r, ctx, None, None)
        if hit is not None:
            fired.append(hit)
    outcome = Outcome.most_restrictive([x.outcome for x in fired]) if fired else Outcome.REVIEW
    deciding = [x for x in fired if x.outcome == outcome]
    obligations = tuple(dict.fromkeys(o for x in fired for o in x.obligations))
    fixes = tuple(dict.fromkeys(x.fix for x in deciding if x.fix))
    info = {
        "anonymous": derived["anonymous"],
        "personal": derived["personal"],
        "pending": derived["pending"],
        "budget_ok": derived["budget_ok"],
        "sdc_pass": derived["sdc_pass"],
        "sdc_failures": [c for c, v in derived["sdc_fail"].items() if v],
        "sdc_profiles": list(derived["sdc_profiles"]),
        "adequacy": flags["adequacy"],
        "eea_destination": flags["eea_destination"],
    }
    return Decision(
        outcome=outcome,
        rules=tuple(sorted({x.rule for x in deciding})),
        fired=tuple(fired),
        obligations=obligations,
        exportable=outcome.exportable,
        fixes=fixes,
        packs=tuple(p.key for p in chosen),
        derived=MappingProxyType(info),
    )


__all__ = ["NO_RULE", "Decision", "Fired", "evaluate"]

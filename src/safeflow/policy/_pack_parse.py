"""Parsing and validation of policy packs (see :mod:`safeflow.policy.packs` for the format).

Every check raises :class:`~safeflow.errors.PackError` naming the file and, where there is
one, the rule: YAML syntax and duplicate keys, unknown keys, missing or malformed fields,
unknown outcomes, missing sources, duplicate rule ids, CEL that does not compile, names a
variable the engine does not provide, or does not give a bool on default facts.

Examples
--------
>>> text = (b"pack: demo\\nversion: '1'\\nscope: output\\nrules:\\n"
...         b"  - {id: D-1, when: 'dp && !budget_ok', outcome: DENY_SDC,\\n"
...         b"     fix: use a smaller epsilon, sources: [{law: POLICY.md, article: budget}]}\\n")
>>> pack = parse(text, "demo.yaml")
>>> pack.rules[0].id, pack.scope
('D-1', 'output')
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import cel
import yaml

from safeflow.errors import PackError
from safeflow.policy._context import (
    GATE_VARIABLES,
    RULE_VARIABLES,
    derive,
    destination_flags,
    gate_context,
    rule_context,
)
from safeflow.policy.facts import normalize_facts
from safeflow.policy.outcome import Outcome
from safeflow.policy.packs import GateRule, Pack, Rule, Source
from safeflow.policy.sdc import Profile

_TOP = (
    "pack",
    "version",
    "title",
    "description",
    "jurisdictions",
    "scope",
    "data",
    "profile",
    "rules",
    "export_gate",
)
_RULE = (
    "id",
    "title",
    "when",
    "outcome",
    "satisfied_by",
    "obligations",
    "sources",
    "verify",
    "fix",
    "negative_list",
    "note",
)
_GATE = ("id", "title", "when", "decision", "reason", "sources", "verify", "fix", "note")
_SOURCE = ("law", "article", "url")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]*$")
_CODE = re.compile(r"^[A-Z]{2}$")
_MACRO = re.compile(r"\.\s*(?:exists_one|exists|all|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")


class _Loader(yaml.SafeLoader):
    """Safe YAML loader that refuses duplicate keys (a silently shadowed ``when``)."""


def _no_duplicates(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> Any:
    keys: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in keys:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        keys.add(key)
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


class _Checker:
    def __init__(self, path: str) -> None:
        self.path = path

    def err(self, msg: str, rule: str | None = None) -> PackError:
        where = f"{self.path}: rule {rule!r}: " if rule else f"{self.path}: "
        return PackError(where + msg)

    def mapping(
        self,
        value: Any,
        known: Sequence[str],
        what: str,
        rule: str | None = None,
    ) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.err(f"{what} must be a mapping; got {type(value).__name__}", rule)
        unknown = sorted(str(k) for k in value if k not in known)
        if unknown:
            raise self.err(
                f"unknown key {unknown[0]!r} in {what}; known keys are {', '.join(known)}", rule
            )
        return value

    def text(
        self,
        m: Mapping[str, Any],
        key: str,
        rule: str | None,
        *,
        required: bool = True,
    ) -> str | None:
        v = m.get(key)
        if v is None and not required:
            return None
        if not isinstance(v, str) or not v.strip():
            raise self.err(f"{key} must be a non-empty string; got {v!r}", rule)
        return v.strip()

    def strings(self, m: Mapping[str, Any], key: str, rule: str | None) -> tuple[str, ...]:
        v = m.get(key, [])
        if (
            isinstance(v, str)
            or not isinstance(v, list)
            or not all(isinstance(s, str) and s.strip() for s in v)
        ):
            raise self.err(f"{key} must be a list of non-empty strings; got {v!r}", rule)
        return tuple(s.strip() for s in v)

    def sources(self, m: Mapping[str, Any], rule: str) -> tuple[Source, ...]:
        v = m.get("sources")
        if not isinstance(v, list) or not v:
            raise self.err("sources are required: a non-empty list of {law, article, url?}", rule)
        out = []
        for s in v:
            s = self.mapping(s, _SOURCE, "a source", rule)
            article = s.get("article")
            if isinstance(article, int) and not isinstance(article, bool):
                article = str(article)
            law = s.get("law")
            if not (
                isinstance(law, str)
                and law.strip()
                and isinstance(article, str)
                and article.strip()
            ):
                raise self.err("each source needs a non-empty law and article", rule)
            url = self.text(s, "url", rule, required=False)
            out.append(Source(law.strip(), article.strip(), url))
        return tuple(out)

    def flag(self, m: Mapping[str, Any], key: str, rule: str | None) -> bool:
        v = m.get(key, False)
        if not isinstance(v, bool):
            raise self.err(f"{key} must be true or false; got {v!r}", rule)
        return v

    def cel(self, expr: Any, what: str, rule: str, variables: frozenset[str]) -> Any:
        if not isinstance(expr, str) or not expr.strip():
            raise self.err(f"{what} must be a non-empty CEL expression; got {expr!r}", rule)
        try:
            program = cel.compile(expr)
        except (ValueError, RuntimeError) as e:
            first = str(e).splitlines()[0]
            raise self.err(f"{what} is not valid CEL: {first}", rule) from None
        bound = set(_MACRO.findall(expr))
        unknown = sorted(set(program.variables()) - variables - bound)
        if unknown:
            raise self.err(
                f"{what} uses unknown variable {unknown[0]!r}; rules see "
                f"{', '.join(sorted(variables))}",
                rule,
            )
        return program

    def dry_run(self, program: Any, what: str, rule: str, ctx: Mapping[str, Any]) -> None:
        try:
            result = program.execute(dict(ctx))
        except Exception as e:  # CEL runtime errors come as KeyError, RuntimeError, ...
            raise self.err(
                f"{what} fails on default facts ({type(e).__name__}: {e}); guard "
                "optional fields, e.g. output.dp != null && ...",
                rule,
            ) from None
        if not isinstance(result, bool):
            raise self.err(f"{what} must give true or false; got {result!r}", rule)


def _sample_rule_context(
    pack_jurisdictions: frozenset[str], scope: str, data: Mapping[str, Any], profile: Profile | None
) -> dict[str, Any]:
    code = next((j for j in sorted(pack_jurisdictions) if j != "*"), "CN")
    facts = normalize_facts(
        {
            "origin": [{"jurisdiction": code, "site": "sample"}],
            "destination": {"jurisdiction": "NL"},
        }
    )
    derived = derive(facts, [profile] if profile else [])
    origin = facts["origin"][0] if scope == "origin" else None
    flags = destination_flags("NL", [data])
    return rule_context(facts, derived, origin, flags=flags, ftz={}, data=data)


def _sample_gate_context(data: Mapping[str, Any]) -> dict[str, Any]:
    from safeflow.policy.gate import normalize_message

    msg = normalize_message({"protection": "masked", "kind": "statistics", "destination": "NL"})
    return gate_context("CN", msg, flags=destination_flags("NL", [data]), data=data)


def _rules(c: _Checker, raw: Any, ctx: Mapping[str, Any], scope: str) -> tuple[Rule, ...]:
    if not isinstance(raw, list):
        raise c.err(f"rules must be a list; got {type(raw).__name__}")
    seen: set[str] = set()
    out = []
    for i, r in enumerate(raw):
        rid = r.get("id") if isinstance(r, Mapping) else None
        if not isinstance(rid, str) or not _ID.match(rid):
            raise c.err(f"rules[{i}] needs an id (letters, digits, _ . : -); got {rid!r}")
        r = c.mapping(r, _RULE, "a rule", rid)
        if rid in seen:
            raise c.err("duplicate rule id; rule ids must be unique in a pack", rid)
        seen.add(rid)
        try:
            outcome = Outcome(r.get("outcome"))
        except ValueError:
            raise c.err(
                f"unknown outcome {r.get('outcome')!r}; outcomes are "
                f"{', '.join(o.value for o in Outcome)}",
                rid,
            ) from None
        program = c.cel(r.get("when"), "when", rid, RULE_VARIABLES)
        c.dry_run(program, "when", rid, ctx)
        satisfied = None
        if outcome.procedure:
            if r.get("satisfied_by") is None:
                raise c.err(
                    f"outcome {outcome.value} is a procedure: satisfied_by must name "
                    "the instrument that completes it (e.g. instruments.scc)",
                    rid,
                )
            satisfied = c.cel(r["satisfied_by"], "satisfied_by", rid, RULE_VARIABLES)
            c.dry_run(satisfied, "satisfied_by", rid, ctx)
        elif r.get("satisfied_by") is not None:
            raise c.err(
                f"satisfied_by applies only to procedure outcomes, not {outcome.value}", rid
            )
        fix = c.text(r, "fix", rid, required=False)
        if fix is None and not outcome.exportable:
            raise c.err(
                f"outcome {outcome.value} blocks export: give a fix (the next step "
                "shown in the denial)",
                rid,
            )
        neg = c.text(r, "negative_list", rid, required=False)
        if neg is not None and scope != "origin":
            raise c.err("negative_list rules need an origin-scope pack", rid)
        out.append(
            Rule(
                id=rid,
                when=r["when"].strip(),
                outcome=outcome,
                sources=c.sources(r, rid),
                obligations=c.strings(r, "obligations", rid),
                fix=fix,
                satisfied_by=r["satisfied_by"].strip() if satisfied else None,
                negative_list=neg,
                verify=c.flag(r, "verify", rid),
                title=c.text(r, "title", rid, required=False),
                note=c.text(r, "note", rid, required=False),
                program=program,
                satisfied_program=satisfied,
            )
        )
    return tuple(out)


def _gate(c: _Checker, raw: Any, ctx: Mapping[str, Any]) -> tuple[GateRule, ...]:
    if not isinstance(raw, list):
        raise c.err(f"export_gate must be a list; got {type(raw).__name__}")
    seen: set[str] = set()
    out = []
    for i, r in enumerate(raw):
        rid = r.get("id") if isinstance(r, Mapping) else None
        if not isinstance(rid, str) or not _ID.match(rid):
            raise c.err(f"export_gate[{i}] needs an id (letters, digits, _ . : -); got {rid!r}")
        r = c.mapping(r, _GATE, "an export-gate rule", rid)
        if rid in seen:
            raise c.err("duplicate rule id; rule ids must be unique in a pack", rid)
        seen.add(rid)
        if r.get("decision") not in ("allow", "deny"):
            raise c.err(f"decision must be allow or deny; got {r.get('decision')!r}", rid)
        program = c.cel(r.get("when"), "when", rid, GATE_VARIABLES)
        c.dry_run(program, "when", rid, ctx)
        fix = c.text(r, "fix", rid, required=False)
        if r["decision"] == "deny" and fix is None:
            raise c.err("a deny rule needs a fix (the next step shown in the refusal)", rid)
        out.append(
            GateRule(
                id=rid,
                when=r["when"].strip(),
                decision=r["decision"],
                reason=str(c.text(r, "reason", rid)),
                sources=c.sources(r, rid),
                fix=fix,
                verify=c.flag(r, "verify", rid),
                title=c.text(r, "title", rid, required=False),
                note=c.text(r, "note", rid, required=False),
                program=program,
            )
        )
    return tuple(out)


def parse(text: bytes, path: str) -> Pack:
    """Parse and validate a pack's bytes; ``path`` names it in errors."""
    c = _Checker(path)
    try:
        doc = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise c.err(f"not valid YAML: {problem}{where}") from None
    m = c.mapping(doc, _TOP, "the pack")
    name = m.get("pack")
    if not isinstance(name, str) or not _NAME.match(name):
        raise c.err(f"pack must be a lowercase name such as 'cn'; got {name!r}")
    version = m.get("version")
    if not isinstance(version, str) or not version.strip():
        raise c.err(f'version must be a quoted string such as "2024.1"; got {version!r}')
    has_j, scope = "jurisdictions" in m, m.get("scope", "origin")
    if scope not in ("origin", "output") or (scope == "output") == has_j:
        raise c.err(
            "give either jurisdictions: [CN, ...] (rules per origin) or "
            "scope: output (rules once per output), not both"
        )
    jurisdictions: frozenset[str] = frozenset()
    if has_j:
        js = m["jurisdictions"]
        if (
            not isinstance(js, list)
            or not js
            or not all(isinstance(j, str) and (j == "*" or _CODE.match(j)) for j in js)
        ):
            raise c.err(
                f"jurisdictions must be a non-empty list of ISO 3166 alpha-2 codes "
                f"or '*' (quote \"NO\": YAML reads it as false); got {js!r}"
            )
        jurisdictions = frozenset(js)
    raw_data = m.get("data") or {}
    data = c.mapping(
        raw_data, [str(k) for k in raw_data] if isinstance(raw_data, Mapping) else [], "data"
    )
    for key in ("adequacy", "eea"):
        codes = data.get(key)
        if codes is not None and (
            not isinstance(codes, list)
            or not all(isinstance(x, str) and _CODE.match(x) for x in codes)
        ):
            raise c.err(
                f'data.{key} must be a list of ISO 3166 alpha-2 codes (quote "NO": '
                f"YAML reads it as false); got {codes!r}"
            )
    profile = None
    if m.get("profile") is not None:
        if scope != "output":
            raise c.err("a profile (SDC thresholds) belongs in a scope: output pack")
        try:
            if not isinstance(m["profile"], Mapping):
                raise ValueError("profile must be a mapping of SDC thresholds")
            profile = Profile.from_mapping(m["profile"])
        except ValueError as e:
            raise c.err(str(e)) from None
    ctx = _sample_rule_context(jurisdictions, scope, data, profile)
    rules = _rules(c, m.get("rules", []), ctx, scope)
    gate: tuple[GateRule, ...] = ()
    if m.get("export_gate") is not None:
        if scope != "origin":
            raise c.err("export_gate rules belong in a pack with jurisdictions")
        gate = _gate(c, m["export_gate"], _sample_gate_context(data))
    return Pack(
        name=name,
        version=version.strip(),
        path=path,
        sha256=hashlib.sha256(text).hexdigest(),
        scope=scope,
        jurisdictions=jurisdictions,
        rules=rules,
        export_gate=gate,
        data=MappingProxyType(dict(data)),
        profile=profile,
        title=c.text(m, "title", None, required=False),
        description=c.text(m, "description", None, required=False),
    )


__all__ = ["parse"]

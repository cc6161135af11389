"""What the study runtime refuses, before any data is touched.

Three checks, each raising :class:`~safeflow.study.errors.StudyRefused` with its rule and
the next step:

* ``STUDY-expired``: today (UTC) is after the study's ``expires`` date (the date itself
  is the last day on which it may run);
* ``STUDY-variables``: an analysis reads a column outside ``allowed_variables``;
* the export gate: a protocol whose messages some site's jurisdiction refuses to let
  cross the border. This asks the policy layer (:func:`safeflow.policy.gate.gate_check`
  with the study's packs, or a live federation's ``customs.gate``) about every message the
  protocol spec (``protocols/<name>.yaml``) declares for a site, with exactly the facts the
  site runtime will present when it sends it. The rules are not re-implemented here.

:func:`check_study` runs all three for every analysis of a study (``safeflow study
validate``, ``approve`` and ``run`` call it); :func:`check_analysis` checks one analysis
and is what :class:`~safeflow.study.run.StudyFederation` calls before every run, so an
analysis started by hand on a study's federation is held to the same rules.

Examples
--------
>>> from safeflow.study.load import parse_study
>>> study = parse_study('''
... title: Demo
... purpose: scientific-research
... destination: NL
... expires: 2099-12-31
... sites: [{name: a, jurisdiction: CN, data: a.csv}, {name: b, jurisdiction: NL, data: b.csv}]
... schema: {columns: {age: {bounds: [18, 100]}, bmi: {bounds: [10, 60]}}}
... allowed_variables: [age]
... analyses:
...   - {id: t1, type: describe, columns: [age]}
...   - {id: t2, type: describe, columns: [age, bmi], protocol: plain}
... ''', path="study.yaml")
>>> check_analysis(study, study.analyses[0])
>>> check_study(study)
Traceback (most recent call last):
...
safeflow.study.errors.StudyRefused: analysis 't2' (study.yaml line 11) reads bmi, which ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from safeflow.policy.gate import GateDecision, gate_check
from safeflow.protocols import load_spec
from safeflow.study.errors import RULE_EXPIRED, RULE_VARIABLES, StudyRefused
from safeflow.study.model import AnalysisSpec, Study

Gate = Callable[[str, Mapping[str, Any]], GateDecision]


def today() -> date:
    """Today's date in UTC (the clock every expiry check uses).

    Examples
    --------
    >>> today() >= date(2025, 1, 1)
    True
    """
    return datetime.now(UTC).date()


def _where(study: Study, line: int | None) -> str:
    name = study.path.name if study.path is not None else "the study file"
    return f"{name} line {line}" if line is not None else name


def check_expiry(study: Study, *, on: date | None = None) -> None:
    """Refuse a study whose ``expires`` date has passed (``STUDY-expired``).

    Examples
    --------
    >>> from safeflow.study.load import parse_study
    >>> s = parse_study(_EXAMPLE.replace("2099-12-31", "2020-01-31"), path="study.yaml")
    >>> check_expiry(s, on=date(2020, 1, 31))
    >>> check_expiry(s, on=date(2020, 2, 1))
    Traceback (most recent call last):
    ...
    safeflow.study.errors.StudyRefused: study 'demo' expired on 2020-01-31 (study.yaml line 4); ...
    """
    now = today() if on is None else on
    if now > study.expires:
        raise StudyRefused(
            f"study {study.id!r} expired on {study.expires.isoformat()} "
            f"({_where(study, study.line('expires'))}); nothing was run",
            rule=RULE_EXPIRED, line=study.line("expires"),
            fix="extend the study (a new expires date changes the study hash, so every site "
                "approves it again) or start a new study")


def check_variables(study: Study, variables: Iterable[str], *, analysis: str | None = None,
                    line: int | None = None) -> None:
    """Refuse an analysis that reads a column outside ``allowed_variables``.

    Examples
    --------
    >>> from safeflow.study.load import parse_study
    >>> s = parse_study(_EXAMPLE, path="study.yaml")
    >>> check_variables(s, ["age"])
    >>> check_variables(s, ["age", "bmi"], analysis="adhoc")
    Traceback (most recent call last):
    ...
    safeflow.study.errors.StudyRefused: analysis 'adhoc' (study.yaml) reads bmi, which the ...
    """
    extra = [v for v in dict.fromkeys(variables) if v not in study.allowed_variables]
    if extra:
        what = f"analysis {analysis!r}" if analysis else "this analysis"
        raise StudyRefused(
            f"{what} ({_where(study, line)}) reads {', '.join(extra)}, which the study does "
            f"not allow (allowed_variables: {', '.join(study.allowed_variables)}); nothing "
            "was run", rule=RULE_VARIABLES, analysis=analysis, line=line,
            fix="use only the allowed variables, or add the variable to allowed_variables "
                "(a changed study needs every site's approval again)")


def message_facts(study: Study, site: str, protocol: str, stage: str,
                  variables: Iterable[str]) -> list[dict[str, Any]]:
    """The export-gate facts of the messages ``site`` sends at ``stage`` under ``protocol``.

    Exactly what the site runtime presents to its gate (:mod:`safeflow.runtime`): the
    declared protection and content, whether the message crosses the border (the site's
    jurisdiction is not the destination), the destination, and whether every column read
    is ``public``. A message declared with several protections (HE: BFV or CKKS) is
    checked with the first, the protocol's default.

    Examples
    --------
    >>> from safeflow.study.load import parse_study
    >>> s = parse_study(_EXAMPLE, path="study.yaml")
    >>> message_facts(s, "a", "masking", "masked_input", ["age"])
    [{'protection': 'masked', 'kind': 'statistics', 'crosses_border': True, 'destination': 'NL', 'public_data': False, 'stage': 'masked_input'}]
    """  # noqa: E501
    spec = load_spec(protocol)
    jur = study.site(site).jurisdiction
    public = all(study.schema.column(c).classes == ("public",) for c in variables)
    return [{"protection": m.protections[0], "kind": m.content,
             "crosses_border": jur != study.destination, "destination": study.destination,
             "public_data": public, "stage": m.stage}
            for m in spec.messages if m.sender == "site" and m.stage == stage]


def check_protocol(study: Study, protocol: str, variables: Iterable[str], *,
                   analysis: str | None = None, line: int | None = None,
                   gate: Gate | None = None) -> None:
    """Refuse a protocol that some site's export gate would refuse during the run.

    Parameters
    ----------
    study : Study
    protocol : str
        ``masking``, ``he`` or ``plain``.
    variables : iterable of str
        The columns the analysis reads (public-data rules depend on them).
    analysis : str, optional
        The analysis id, for the message.
    line : int, optional
        Its line in the study file.
    gate : callable, optional
        ``gate(site, message) -> GateDecision``; default: :func:`gate_check` with the
        study's packs (a live federation passes ``customs.gate``).

    Examples
    --------
    >>> from safeflow.study.load import parse_study
    >>> s = parse_study(_EXAMPLE, path="study.yaml")
    >>> check_protocol(s, "masking", ["age"])
    >>> check_protocol(s, "plain", ["age"], analysis="raw")
    Traceback (most recent call last):
    ...
    safeflow.study.errors.StudyRefused: analysis 'raw' (study.yaml): the export gate of site 'a' (CN) refuses the 'plain_input' messages of protocol 'plain' (GATE-default-deny: ...
    """  # noqa: E501
    if gate is None:
        packs = study.policy_settings().resolved_packs()
        jurisdictions = {s.name: s.jurisdiction for s in study.sites}

        def gate(site: str, message: Mapping[str, Any]) -> GateDecision:
            return gate_check(jurisdictions[site], message, packs=packs)

    variables = list(variables)
    spec = load_spec(protocol)
    stages = list(dict.fromkeys(m.stage for m in spec.messages if m.sender == "site"))
    for site in study.sites:
        for stage in stages:
            for msg in message_facts(study, site.name, protocol, stage, variables):
                d = gate(site.name, msg)
                if not d.allowed:
                    what = f"analysis {analysis!r}" if analysis else f"protocol {protocol!r}"
                    raise StudyRefused(
                        f"{what} ({_where(study, line)}): the export gate of site "
                        f"{site.name!r} ({site.jurisdiction}) refuses the {stage!r} messages "
                        f"of protocol {protocol!r} ({d.rule}: {d.reason}); nothing was run",
                        rule=d.rule, analysis=analysis, line=line,
                        fix=d.fix or "choose a protocol every site's jurisdiction allows "
                                     "(masking or he)")


def check_analysis(study: Study, analysis: AnalysisSpec, *, gate: Gate | None = None,
                   on: date | None = None) -> None:
    """All runtime checks for one analysis of the study: expiry, variables, protocol.

    Examples
    --------
    >>> from safeflow.study.load import parse_study
    >>> s = parse_study(_EXAMPLE, path="study.yaml")
    >>> check_analysis(s, s.analyses[0])
    """
    check_expiry(study, on=on)
    check_variables(study, analysis.variables(), analysis=analysis.id, line=analysis.line)
    check_protocol(study, analysis.protocol, analysis.variables(), analysis=analysis.id,
                   line=analysis.line, gate=gate)


def check_study(study: Study, *, on: date | None = None) -> None:
    """Every runtime check for every analysis, in file order; the first refusal raises.

    Examples
    --------
    >>> from safeflow.study.load import parse_study
    >>> check_study(parse_study(_EXAMPLE, path="study.yaml"))
    """
    check_expiry(study, on=on)
    for a in study.analyses:
        check_analysis(study, a, on=on)


_EXAMPLE = """
title: Demo
purpose: scientific-research
expires: 2099-12-31
destination: NL
sites: [{name: a, jurisdiction: CN, data: a.csv}, {name: b, jurisdiction: NL, data: b.csv}]
schema: {columns: {age: {bounds: [18, 100]}, bmi: {bounds: [10, 60]}}}
allowed_variables: [age]
analyses: [{id: t1, type: describe, columns: [age]}]
"""

__all__ = ["check_analysis", "check_expiry", "check_protocol", "check_study",
           "check_variables", "message_facts", "today"]

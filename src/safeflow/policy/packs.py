"""Policy packs: versioned YAML files of CEL rules, validated when loaded.

A pack is one file::

    pack: cn                      # name: lowercase letters, digits, _ . -
    version: "2024.1"             # a quoted string
    title: China (PIPL, DSL, 2024 Provisions, HGR)
    jurisdictions: [CN]           # origins it applies to ("*": every origin) ...
    scope: output                 # ... or, instead, once per output (SDC profiles, studies)
    data: {adequacy: [JP, ...]}   # constants the rules read as `data` (optional)
    profile: {name: acro, ...}    # SDC thresholds (output-scope SDC packs only)
    rules:
      - id: CN-court
        when: destination.recipient_type in ['court', 'law_enforcement']
        outcome: PROHIBITED       # a POLICY.md outcome
        satisfied_by: ...         # CEL; required for (and only for) procedure outcomes
        obligations: [...]        # duties that come with the rule
        sources: [{law: DSL, article: "Art 36", url: ...}]   # required, non-empty
        verify: true              # the source needs checking (POLICY.md "(verify)")
        fix: ...                  # next step; required when the outcome blocks export
        negative_list: CN-FTZ-BJ  # the rule is an entry of that FTZ's negative list
        note: ...                 # free text
    export_gate:
      - {id: ..., when: ..., decision: allow | deny, reason: ..., sources: [...]}

Validation (each a :class:`~safeflow.errors.PackError` naming the file and the rule): YAML
syntax and duplicate keys, unknown keys, a missing or malformed field, an unknown outcome,
missing sources, duplicate rule ids, CEL that does not compile, that names a variable the
engine does not provide (see :mod:`safeflow.policy._context`), or that does not give a
bool on default facts (guard optional fields: ``output.dp != null && ...``).

The shipped packs (``base``, ``cn``, ``eu``, ``nl``, ``sdc-acro``, ``sdc-ohdsi``,
``sdc-datashield``) live next to this module and ship in the wheel; :func:`default_packs`
loads them lazily (importing this module reads no file).

Examples
--------
>>> cn = next(p for p in default_packs() if p.name == "cn")
>>> cn.version, cn.applies_to("CN"), cn.applies_to("NL")
('2024.1', True, False)
>>> len(cn.sha256)
64
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from safeflow.errors import InvalidParameter, PackError
from safeflow.policy.outcome import Outcome
from safeflow.policy.sdc import Profile

_SHIPPED = ("base", "cn", "eu", "nl")
SDC_PACKS = {"acro": "sdc-acro", "ohdsi": "sdc-ohdsi", "datashield": "sdc-datashield"}


@dataclass(frozen=True)
class Source:
    """A citation: the law, the article and optionally where to read it."""

    law: str
    article: str
    url: str | None = None

    def to_dict(self) -> dict[str, str]:
        """JSON-able form (``url`` left out when absent)."""
        d = {"law": self.law, "article": self.article}
        return {**d, "url": self.url} if self.url else d


@dataclass(frozen=True)
class Rule:
    """One output rule: a CEL predicate with an outcome, obligations, sources and a fix."""

    id: str
    when: str
    outcome: Outcome
    sources: tuple[Source, ...]
    obligations: tuple[str, ...] = ()
    fix: str | None = None
    satisfied_by: str | None = None
    negative_list: str | None = None
    verify: bool = False
    title: str | None = None
    note: str | None = None
    program: Any = field(default=None, repr=False, compare=False)
    satisfied_program: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class GateRule:
    """One export-gate rule: a CEL predicate over message facts that allows or denies."""

    id: str
    when: str
    decision: str
    reason: str
    sources: tuple[Source, ...]
    fix: str | None = None
    verify: bool = False
    title: str | None = None
    note: str | None = None
    program: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Pack:
    """A loaded, validated policy pack; ``sha256`` is the hash of the file's bytes."""

    name: str
    version: str
    path: str
    sha256: str
    scope: str
    jurisdictions: frozenset[str]
    rules: tuple[Rule, ...]
    export_gate: tuple[GateRule, ...] = ()
    data: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    profile: Profile | None = None
    title: str | None = None
    description: str | None = None

    def applies_to(self, jurisdiction: str) -> bool:
        """Whether this origin-scope pack covers an origin in ``jurisdiction``."""
        return self.scope == "origin" and (
            "*" in self.jurisdictions or jurisdiction in self.jurisdictions
        )

    @property
    def key(self) -> tuple[str, str, str]:
        """``(name, version, sha256)``, as certificates record it."""
        return (self.name, self.version, self.sha256)

    def __repr__(self) -> str:
        return (
            f"<Pack {self.name} {self.version}: {len(self.rules)} rules, "
            f"{len(self.export_gate)} gate rules, sha256 {self.sha256[:12]}>"
        )


def load_pack(path: str | Path) -> Pack:
    """Load and validate a policy pack from a YAML file.

    Parameters
    ----------
    path : str or Path
        The pack file (e.g. a study's own rules or an FTZ negative list).

    Returns
    -------
    Pack

    Raises
    ------
    PackError
        The file cannot be read or fails validation; the message names the file and rule.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "study.yaml").write_text('''
    ... pack: study-nl-only
    ... version: "1"
    ... scope: output
    ... rules:
    ...   - id: STUDY-destination
    ...     when: destination.jurisdiction != 'NL'
    ...     outcome: PROHIBITED
    ...     fix: release the results to the Amsterdam study office only
    ...     sources: [{law: Study protocol, article: "Sec 7.2"}]
    ... ''')
    >>> load_pack(d / "study.yaml").rules[0].outcome
    <Outcome.PROHIBITED: 'PROHIBITED'>
    >>> _ = (d / "bad.yaml").write_text('''
    ... pack: bad
    ... version: "1"
    ... scope: output
    ... rules:
    ...   - {id: B-1, when: "1 +", outcome: ALLOW, sources: [{law: x, article: "1"}]}
    ... ''')
    >>> load_pack(d / "bad.yaml")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    safeflow.errors.PackError: .../bad.yaml: rule 'B-1': when is not valid CEL: ...
    """
    p = Path(path)
    try:
        text = p.read_bytes()
    except OSError as e:
        raise PackError(f"{p}: cannot read the pack ({e.strerror or e})") from None
    from safeflow.policy._pack_parse import parse

    return parse(text, str(p))


@functools.cache
def _shipped(name: str) -> Pack:
    res = resources.files("safeflow.policy") / "packs" / f"{name}.yaml"
    from safeflow.policy._pack_parse import parse

    return parse(res.read_bytes(), f"safeflow/policy/packs/{name}.yaml")


def default_packs(sdc_profile: str = "acro") -> tuple[Pack, ...]:
    """The shipped packs: base export gate, CN, EU, NL and one SDC profile.

    Each jurisdiction pack applies only to origins in its jurisdictions, so passing them
    all is safe; add your own with ``(*default_packs(), load_pack("study.yaml"))``.

    Parameters
    ----------
    sdc_profile : {"acro", "ohdsi", "datashield"}
        Which disclosure-control profile pack to include.

    Examples
    --------
    >>> [p.name for p in default_packs("ohdsi")]
    ['base', 'cn', 'eu', 'nl', 'sdc-ohdsi']
    """
    if sdc_profile not in SDC_PACKS:
        raise InvalidParameter(
            f"unknown SDC profile {sdc_profile!r}; choose one of {', '.join(SDC_PACKS)}"
        )
    return tuple(_shipped(n) for n in (*_SHIPPED, SDC_PACKS[sdc_profile]))


__all__ = ["GateRule", "Pack", "Rule", "Source", "default_packs", "load_pack"]

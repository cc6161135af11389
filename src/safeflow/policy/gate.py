"""Export-gate policy: which message protections may leave a jurisdiction during a run.

A site's export gate first checks a message against the protocol spec (declared stage,
protection, fields, size); :func:`gate_check` adds the site jurisdiction's *policy*: the
``export_gate:`` rules of every pack that applies to that jurisdiction.

Message facts (each optional, with these defaults):

==============  ============================================================  ==============
field           values                                                        default
==============  ============================================================  ==============
protection      none, masked, aead-encrypted, bfv-ciphertext, ckks-ciphertext  ``none``
                dp-noised
kind            statistics, keys, shares, control, row_level                  ``statistics``
crosses_border  bool                                                          ``true``
destination     ISO 3166 alpha-2 code of the receiving party, or null         null
instruments     as in the facts (scc, security_assessment, ...)               all absent
budget_ok       bool: a dp-noised message is within its privacy budget        ``false``
public_data     bool: computed only from ``public`` (open) columns             ``false``
stage           the protocol stage (for messages)                             null
==============  ============================================================  ==============

Combination: a firing ``deny`` rule refuses; otherwise a firing ``allow`` rule lets the
message leave; otherwise it is refused (``GATE-default-deny``): fail closed. The shipped
``base`` pack (every jurisdiction) allows messages that do not cross a border, masked or
encrypted statistics, DP-noised statistics within budget, public keys, sealed shares, the
threshold shares of the masking unmask stage and control messages. It has no rule for
unprotected statistics (the ``plain`` protocol) or row-level data, so these stay at home
unless a pack allows them: ``cn`` allows row-level data with a security assessment (or a
standard contract plus separate consent), ``eu`` with an adequacy decision, SCC + TIA or
explicit consent, and a user pack may allow plain statistics for, e.g., a benchmark on
synthetic data. Deny rules win over allow rules of any pack.

Examples
--------
>>> gate_check("CN", {"protection": "masked", "kind": "statistics", "destination": "NL"})
GateDecision(allowed=True, rule='GATE-protected-statistics', reason=...)
>>> d = gate_check("CN", {"protection": "none", "kind": "statistics", "destination": "NL"})
>>> d.allowed, d.rule
(False, 'GATE-default-deny')
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from safeflow.errors import FactsError, InvalidParameter, PolicyError
from safeflow.policy._context import destination_flags, gate_context
from safeflow.policy._fields import _bool, _mapping, _text
from safeflow.policy.facts import _instruments

PROTECTIONS = ("none", "masked", "aead-encrypted", "bfv-ciphertext", "ckks-ciphertext", "dp-noised")
MESSAGE_KINDS = ("statistics", "keys", "shares", "control", "row_level")
DEFAULT_DENY = "GATE-default-deny"
_FIELDS = (
    "protection",
    "kind",
    "crosses_border",
    "destination",
    "instruments",
    "budget_ok",
    "public_data",
    "stage",
)
_CODE = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True)
class GateDecision:
    """Whether a message may leave, the rule that decided, why, and what to do if not."""

    allowed: bool
    rule: str
    reason: str
    fix: str | None = None

    def __repr__(self) -> str:
        return f"GateDecision(allowed={self.allowed}, rule={self.rule!r}, reason={self.reason!r})"


def normalize_message(message: Mapping[str, Any]) -> dict[str, Any]:
    """Validate message facts and fill the defaults (FactsError names the field).

    Examples
    --------
    >>> normalize_message({"kind": "keys"})["protection"]
    'none'
    >>> normalize_message({"kind": "rows"})
    Traceback (most recent call last):
    ...
    safeflow.errors.FactsError: message.kind must be one of statistics, ...; got 'rows'
    """
    m = _mapping(message, "message", _FIELDS)
    out: dict[str, Any] = {}
    for key, choices, default in (
        ("protection", PROTECTIONS, "none"),
        ("kind", MESSAGE_KINDS, "statistics"),
    ):
        value = m.get(key, default)
        if value not in choices:
            raise FactsError(f"message.{key} must be one of {', '.join(choices)}; got {value!r}")
        out[key] = value
    out["crosses_border"] = _bool(m, "crosses_border", "message", True)
    out["destination"] = _text(
        m,
        "destination",
        "message",
        None,
        pattern=_CODE,
        expected="an ISO 3166 alpha-2 code such as 'NL', or null",
    )
    out["instruments"] = _instruments(m.get("instruments"), "message.instruments")
    out["budget_ok"] = _bool(m, "budget_ok", "message", False)
    out["public_data"] = _bool(m, "public_data", "message", False)
    out["stage"] = _text(m, "stage", "message", None)
    return out


def gate_check(
    jurisdiction: str, message: Mapping[str, Any], *, packs: Sequence[Any] | None = None
) -> GateDecision:
    """Decide whether a message may leave a site in ``jurisdiction``.

    Parameters
    ----------
    jurisdiction : str
        ISO 3166 alpha-2 code of the sending site, e.g. ``"CN"``.
    message : Mapping
        Message facts (see the module docstring).
    packs : sequence of Pack or path, optional
        ``None``: the shipped packs. Only packs that apply to ``jurisdiction`` count.

    Returns
    -------
    GateDecision

    Examples
    --------
    >>> gate_check("NL", {"protection": "none", "kind": "row_level", "destination": "CN",
    ...                   "instruments": {"scc": True, "tia": True}}).rule
    'GATE-EU-row-level'
    >>> gate_check("CN", {"protection": "none", "kind": "row_level", "destination": "NL"}).allowed
    False
    """
    from safeflow.policy.engine import _resolve_packs

    if not isinstance(jurisdiction, str) or not _CODE.match(jurisdiction):
        raise InvalidParameter(
            f"jurisdiction must be an ISO 3166 alpha-2 code such as 'CN'; got {jurisdiction!r}"
        )
    msg = normalize_message(message)
    chosen = _resolve_packs(packs if packs is None else list(packs), "acro")
    flags = destination_flags(msg["destination"], [p.data for p in chosen])
    hits: dict[str, list[tuple[str, Any]]] = {"allow": [], "deny": []}
    for p in chosen:
        if not p.applies_to(jurisdiction):
            continue
        ctx = gate_context(jurisdiction, msg, flags=flags, data=p.data)
        for r in sorted(p.export_gate, key=lambda r: r.id):
            try:
                fired = r.program.execute(dict(ctx))
            except Exception as e:  # CEL runtime errors
                raise PolicyError(
                    f"{p.path}: rule {r.id!r}: when cannot be evaluated on this "
                    f"message ({type(e).__name__}: {e}); fix the rule"
                ) from None
            if fired is True:
                hits[r.decision].append((p.name, r))
            elif fired is not False:
                raise PolicyError(f"{p.path}: rule {r.id!r}: when gave {fired!r}, not a bool")
    for decision in ("deny", "allow"):
        if hits[decision]:
            _, rule = min(hits[decision], key=lambda h: (h[0], h[1].id))
            return GateDecision(decision == "allow", rule.id, rule.reason, rule.fix)
    where = "cross the border" if msg["crosses_border"] else "leave the site"
    return GateDecision(
        False,
        DEFAULT_DENY,
        f"no export-gate rule of the packs for {jurisdiction} allows a {msg['kind']} message "
        f"with protection {msg['protection']!r} to {where}",
        "use a protected protocol (masking or he, or DP within budget), or add a pack rule "
        "that allows this message with the matching instruments",
    )


__all__ = [
    "DEFAULT_DENY",
    "MESSAGE_KINDS",
    "PROTECTIONS",
    "GateDecision",
    "gate_check",
    "normalize_message",
]

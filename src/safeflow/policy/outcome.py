"""Policy outcomes, in POLICY.md order, and how they combine (the most restrictive wins).

``PROHIBITED > NEEDS_APPROVAL > SECURITY_ASSESSMENT > SCC_OR_CERT > REVIEW > DENY_SDC >
ALLOW_WITH_OBLIGATIONS > ALLOW > EXEMPT``. Only ``EXEMPT``, ``ALLOW`` and
``ALLOW_WITH_OBLIGATIONS`` let an output leave. The three *procedure* outcomes become
``ALLOW_WITH_OBLIGATIONS`` once the facts carry the instrument that completes the procedure.

Examples
--------
>>> Outcome.most_restrictive([Outcome.ALLOW, Outcome.DENY_SDC, Outcome.EXEMPT])
<Outcome.DENY_SDC: 'DENY_SDC'>
>>> Outcome.PROHIBITED.rank > Outcome.NEEDS_APPROVAL.rank
True
>>> Outcome("SCC_OR_CERT").procedure, Outcome.ALLOW.exportable
(True, True)
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Outcome(StrEnum):
    """A policy outcome; a ``str`` whose :attr:`rank` orders it (higher: more restrictive)."""

    PROHIBITED = "PROHIBITED"
    NEEDS_APPROVAL = "NEEDS_APPROVAL"
    SECURITY_ASSESSMENT = "SECURITY_ASSESSMENT"
    SCC_OR_CERT = "SCC_OR_CERT"
    REVIEW = "REVIEW"
    DENY_SDC = "DENY_SDC"
    ALLOW_WITH_OBLIGATIONS = "ALLOW_WITH_OBLIGATIONS"
    ALLOW = "ALLOW"
    EXEMPT = "EXEMPT"

    @property
    def rank(self) -> int:
        """Restrictiveness: ``EXEMPT`` is 0, ``PROHIBITED`` is 8."""
        members = list(type(self))
        return len(members) - 1 - members.index(self)

    @property
    def exportable(self) -> bool:
        """True for ``EXEMPT``, ``ALLOW`` and ``ALLOW_WITH_OBLIGATIONS``."""
        return self in _EXPORTABLE

    @property
    def procedure(self) -> bool:
        """True for outcomes an instrument can complete (contract, assessment, approval)."""
        return self in _PROCEDURES

    @classmethod
    def most_restrictive(cls, outcomes: Iterable[Outcome]) -> Outcome:
        """The outcome of highest rank (``ValueError`` for an empty iterable)."""
        return max(outcomes, key=lambda o: o.rank)


_EXPORTABLE = frozenset({Outcome.EXEMPT, Outcome.ALLOW, Outcome.ALLOW_WITH_OBLIGATIONS})
_PROCEDURES = frozenset({Outcome.SCC_OR_CERT, Outcome.SECURITY_ASSESSMENT, Outcome.NEEDS_APPROVAL})

__all__ = ["Outcome"]

"""Releases: the only thing an analyst receives.

A :class:`Release` carries its value together with the guarantees and provenance that
travel with it (STYLE.md item 1): the protocol and its spec hash, the facts customs
derived from the run (POLICY.md), the bytes that crossed each border, and, once the
policy layer certifies it, the decision and the signed certificate. Until then a release
says it is uncertified and :meth:`Release.export` refuses.

Examples
--------
>>> r = Release(value=1, facts={"output": {"protocol": "plain"}}, analysis="describe",
...             protocol="plain")
>>> r.certified
False
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safeflow.errors import ExportDenied, Uncertified


@dataclass(frozen=True)
class Release:
    """A result with its facts, decision and certificate."""

    value: Any
    facts: Mapping[str, Any]
    analysis: str
    protocol: str
    decision: Any = None
    certificate: Any = None
    rounds: int = 1
    log: tuple[Any, ...] = field(default=(), repr=False)

    @property
    def certified(self) -> bool:
        """True once the policy layer has signed a certificate for this release."""
        return self.certificate is not None

    @property
    def bytes_cross_border(self) -> int:
        """Total bytes that crossed a border during the run that produced this release."""
        return int(sum(self.facts.get("run", {}).get("border_bytes", {}).values()))

    def export(self, path: str | Path) -> Path:
        """Write the value and its certificate to ``path`` (refused until certified).

        Raises
        ------
        Uncertified
            No certificate yet (the certifier is not part of this release of safeflow).
        ExportDenied
            The decision does not allow export.
        """
        if not self.certified:
            raise Uncertified(
                f"this {self.analysis} release is uncertified: no policy decision or signed "
                "certificate exists yet, so it may not be exported. Keep it inside the study "
                "environment until the policy layer (customs) certifies it")
        if not getattr(self.decision, "exportable", False):
            raise ExportDenied("the policy decision does not allow export of this release")
        raise Uncertified("export writers arrive with the policy layer")  # pragma: no cover

    def __repr__(self) -> str:
        status = "certified" if self.certified else "UNCERTIFIED"
        return (f"<Release {self.analysis} via {self.protocol}: {status}, {self.rounds} "
                f"round(s), {self.bytes_cross_border} bytes crossed borders, no DP budget spent>")

"""Releases: the only thing an analyst receives.

A :class:`Release` carries its value together with the guarantees and provenance that
travel with it (STYLE.md item 1): the protocol, the facts customs derived from the run
(POLICY.md), the policy decision, and the certificate signed by customs and co-signed by
every origin site. A result that the policy does not allow never becomes a Release: the
analysis raises :class:`~safeflow.errors.ExportDenied` instead.

:meth:`Release.export` writes the value files, ``certificate.json`` and ``SUMMARY.txt``
atomically into a new directory; ``safeflow verify DIR`` checks them offline.

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
    files: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    summary: str = field(default="", repr=False)
    trusted: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def certified(self) -> bool:
        """True once the policy layer has signed a certificate for this release."""
        return self.certificate is not None

    @property
    def bytes_cross_border(self) -> int:
        """Total bytes that crossed a border during the run that produced this release."""
        return int(sum(self.facts.get("run", {}).get("border_bytes", {}).values()))

    @property
    def epsilon(self) -> Any:
        """The ε this release spent (``None`` without differential privacy)."""
        dp = self.facts.get("output", {}).get("dp")
        return None if dp is None else dp.get("epsilon")

    def export(self, path: str | Path) -> Path:
        """Write the value files, certificate and summary into the new directory ``path``.

        Atomic: written beside ``path`` and renamed into place, so a failure leaves nothing.

        Raises
        ------
        Uncertified
            The release carries no certificate.
        ExportDenied
            The decision does not allow export.
        """
        if not self.certified:
            raise Uncertified(
                f"this {self.analysis} release is uncertified: no policy decision or signed "
                "certificate exists, so it may not be exported. Keep it inside the study "
                "environment, or run the analysis through a federation (customs certifies)")
        if not getattr(self.decision, "exportable", False):
            raise ExportDenied("the policy decision does not allow export of this release",
                               rule=", ".join(getattr(self.decision, "rules", ()) or ()))
        from safeflow.policy.export import export_release

        return export_release(path, self.files, self.certificate, self.summary,
                              trusted=dict(self.trusted) or None)

    def __repr__(self) -> str:
        status = (f"certified {self.decision.outcome.value}" if self.certified
                  else "UNCERTIFIED")
        eps = self.epsilon
        budget = "no DP budget spent" if eps is None else f"ε={eps} spent"
        return (f"<Release {self.analysis} via {self.protocol}: {status}, {self.rounds} "
                f"round(s), {self.bytes_cross_border} bytes crossed borders, {budget}>")

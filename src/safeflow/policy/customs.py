"""Customs (数据海关): where an unprotected aggregate exists, and where it is released or not.

For each finished analysis customs

1. takes the facts the run itself produced (never a caller's claims), adds the study's
   declared instruments and recipient, and normalises them (:func:`normalize_facts`);
2. evaluates them against every origin's packs and the SDC profile (:func:`evaluate`);
   a denial is logged and raised as :class:`~safeflow.errors.ExportDenied` naming the
   rules and the fix, never the sensitive number;
3. turns the value into export files, logs a ``release`` entry in its Merkle audit log,
   and issues a certificate (:class:`~safeflow.policy.certificate.Certificate`) signed by
   customs and co-signed by every origin site, each site checking first that the
   certificate names the protocol spec it ran and the exact messages it sent.

Each party (customs and every site) keeps its Ed25519 key and its audit log in its own
state directory (``<state_dir>/<party>/``). Sites log every message they send across a
border; customs logs the study registration, every decision and every release.

Examples
--------
>>> PolicySettings().sdc_profile
'acro'
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from safeflow.errors import ExportDenied, InvalidParameter, VerificationError
from safeflow.policy.audit import AuditLog
from safeflow.policy.certificate import (
    Certificate,
    audit_section,
    build_body,
    release_entry,
    value_digest,
    value_manifest,
)
from safeflow.policy.engine import Decision, evaluate
from safeflow.policy.facts import normalize_facts
from safeflow.policy.gate import GateDecision, gate_check
from safeflow.policy.keystore import load_or_create_signing_key
from safeflow.policy.ledger import Population, ReleaseLedger
from safeflow.policy.packs import Pack, default_packs, load_pack
from safeflow.policy.sdc import PROFILES

_RECIPIENTS = ("research", "company", "court", "law_enforcement")


@dataclass(frozen=True)
class PolicySettings:
    """The study's policy: extra packs, SDC profile, instruments and recipient.

    Parameters
    ----------
    packs : sequence of Pack or path
        Study or site packs added to the shipped ones (e.g. an FTZ negative list, or a
        rule allowing ``plain`` for a benchmark on synthetic data). Packs only add rules;
        the most restrictive outcome still wins.
    sdc_profile : {"acro", "ohdsi", "datashield"}
    instruments : mapping
        The study's legal instruments (POLICY.md): ``scc``, ``security_assessment``,
        ``hgr_filing``, ``explicit_consent``, ``tia``, ``dpia``, ``pipia`` ...
    recipient_type : {"research", "company", "court", "law_enforcement"}
    suppress : bool
        Release tables (Table 1, cross-tabulations, histograms) that fail only their cell
        rules with those cells suppressed (primary and secondary) instead of denying them.
    """

    packs: Sequence[Any] = ()
    sdc_profile: str = "acro"
    instruments: Mapping[str, Any] = field(default_factory=dict)
    recipient_type: str = "research"
    suppress: bool = True

    def __post_init__(self) -> None:
        if self.recipient_type not in _RECIPIENTS:
            raise InvalidParameter(
                f"recipient_type must be one of {_RECIPIENTS}; got {self.recipient_type!r}")

    def resolved_packs(self) -> tuple[Pack, ...]:
        """The shipped packs for the profile plus the study's own."""
        extra = tuple(p if isinstance(p, Pack) else load_pack(p) for p in self.packs)
        return (*default_packs(self.sdc_profile), *extra)


class Party:
    """One party's signing key and audit log in its own state directory."""

    def __init__(self, root: Path, name: str) -> None:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.name = name
        self.key = load_or_create_signing_key(root, name)
        self.log = AuditLog(root / "audit.sqlite", signing_key=self.key, log_id=name)

    def close(self) -> None:
        """Close the audit log."""
        self.log.close()


def release_files(value: Any) -> dict[str, bytes]:
    """The files that carry a result: tables as CSV and Parquet, models as CSV and JSON.

    Examples
    --------
    >>> sorted(release_files(pd.DataFrame({"a": [1, 2]})))
    ['value.csv', 'value.parquet']
    """
    files: dict[str, bytes] = {}
    if isinstance(value, pd.DataFrame):
        keep_index = not isinstance(value.index, pd.RangeIndex)
        files["value.csv"] = value.to_csv(index=keep_index).encode()
        buf = io.BytesIO()
        value.to_parquet(buf, index=keep_index)
        files["value.parquet"] = buf.getvalue()
        return files
    for attr, name in (("summary", "summary.csv"), ("survival", "survival.csv"),
                       ("table", "table.csv"), ("baseline_survival", "baseline_survival.csv")):
        frame = getattr(value, attr, None)
        if isinstance(frame, pd.DataFrame):
            files[name] = frame.to_csv().encode()
    to_json = getattr(value, "to_json", None)
    if callable(to_json):  # trained models: the weights and architecture
        files["model.json"] = to_json().encode()
    if not files:
        raise InvalidParameter(f"no export format for a {type(value).__name__} result")
    return files


def messages_digest(hashes: Sequence[str]) -> str:
    """One digest over the SHA-256 hashes of the envelopes a site sent, in order.

    Examples
    --------
    >>> len(messages_digest(["00" * 32]))
    64
    """
    return hashlib.sha256("".join(hashes).encode()).hexdigest()


class Customs:
    """Decides, logs and certifies the releases of one federation."""

    def __init__(self, state_dir: Path, settings: PolicySettings, sites: Mapping[str, str],
                 *, study: str, destination: str, purpose: str) -> None:
        self.settings = settings
        self.packs = settings.resolved_packs()
        self.party = Party(state_dir / "customs", "customs")
        self.ledger = ReleaseLedger(state_dir / "customs" / "releases.sqlite")
        self.sites = {name: Party(state_dir / "sites" / name, name) for name in sites}
        self.jurisdictions = dict(sites)
        self.party.log.append({
            "kind": "study_registration", "study": study, "sites": sorted(sites),
            "destination": destination, "purpose": purpose,
            "packs": [[p.name, p.version, p.sha256] for p in self.packs]})

    def gate(self, site: str, message: Mapping[str, Any]) -> GateDecision:
        """The export-gate policy of ``site``'s jurisdiction for one outgoing message."""
        return gate_check(self.jurisdictions[site], message, packs=self.packs)

    def log_message(self, site: str, entry: Mapping[str, Any]) -> None:
        """Record a message a site sent across a border in that site's audit log."""
        self.sites[site].log.append({"kind": "message", **entry})

    def decide(self, facts: Mapping[str, Any]) -> tuple[dict[str, Any], Decision]:
        """Normalised facts (with the study's instruments and recipient) and the decision."""
        full = {**facts, "instruments": dict(self.settings.instruments),
                "destination": {**facts["destination"],
                                "recipient_type": self.settings.recipient_type}}
        norm = normalize_facts(full)
        return norm, evaluate(norm, packs=self.packs, sdc_profile=self.settings.sdc_profile)

    def deny(self, analysis: str, decision: Decision) -> ExportDenied:
        """Log a denial and build the error the analyst sees (rules and fixes, no numbers)."""
        self.party.log.append({"kind": "decision", "outcome": decision.outcome.value,
                               "analysis": analysis, "rules": list(decision.rules)})
        fixes = "; ".join(dict.fromkeys(decision.fixes)) or "see the rules' sources"
        rules = ", ".join(decision.rules)
        return ExportDenied(
            f"the {analysis} result may not be released: {decision.outcome.value} by {rules}. "
            f"Next step: {fixes}", rule=rules, fix=fixes)

    def check_differencing(self, release_id: str, analysis: str, facts: Mapping[str, Any],
                           filters: Sequence[str], group: str | None) -> None:
        """Refuse a release whose persons differ from an earlier one's by a small group.

        The population is the contributing sites and the conditions that selected rows
        (``"<column> present"`` for every column whose missing values drop the row), so a
        Table 1 of ``wt.loss`` after one of ``age`` is a subset release. Public data,
        releases without a person count and DP releases are not recorded (the privacy
        budget bounds what any combination of DP releases reveals, differencing included;
        their person counts are noised).
        """
        n = facts["output"]["sdc"].get("n")
        public = all(list(o["classes"]) == ["public"] for o in facts["origin"])
        if n is None or public or facts["output"].get("dp") is not None:
            return
        pop = Population(frozenset(o["site"] for o in facts["origin"]), frozenset(filters),
                         group)
        threshold = PROFILES[self.settings.sdc_profile].min_cell or 1
        try:
            self.ledger.check_and_record(release_id, analysis, pop, int(n), threshold=threshold)
        except ExportDenied:
            self.party.log.append({"kind": "decision", "outcome": "DENY_SDC",
                                   "analysis": analysis, "rules": ["SDC-differencing"]})
            raise

    def certify(self, facts: Mapping[str, Any], decision: Decision, files: Mapping[str, bytes],
                *, site_messages: Mapping[str, str]) -> Certificate:
        """Log the release, issue the certificate and collect every origin's co-signature."""
        spec_sha = facts["run"]["protocol_spec_sha256"]
        idx, _ = self.party.log.append(release_entry(
            output_sha256=value_digest(files), protocol_spec_sha256=spec_sha,
            decision=decision))
        origins = [o["site"] for o in facts["origin"]]
        body = build_body(
            outputs=value_manifest(files), protocol_spec_sha256=spec_sha, packs=decision.packs,
            facts=facts, decision=decision,
            audit=audit_section(self.party.log, idx, log_signer="customs"),
            customs=("customs", self.party.key.verify_key),
            sites={s: self.sites[s].key.verify_key for s in origins})
        cert = Certificate.issue(body, "customs", self.party.key)
        for site in origins:
            cert = self._cosign(cert, site, spec_sha, site_messages.get(site))
        return cert

    def _cosign(self, cert: Certificate, site: str, spec_sha: str,
                sent: str | None) -> Certificate:
        """A site checks what it can before it co-signs: the spec it ran, its messages."""
        facts = cert.body["facts"]
        if facts["run"].get("protocol_spec_sha256") != spec_sha:
            raise VerificationError(f"site {site!r} refuses to co-sign: the certificate names "
                                    "another protocol spec than the one it ran")
        if sent is None or facts["run"].get("messages_sha256", {}).get(site) != sent:
            raise VerificationError(f"site {site!r} refuses to co-sign: the certified run does "
                                    "not contain exactly the messages it sent")
        return cert.cosign(site, self.sites[site].key)

    def trusted_keys(self) -> dict[str, Any]:
        """Public keys of customs and every site (to hand to a verifier out of band)."""
        return {"customs": self.party.key.verify_key,
                **{s: p.key.verify_key for s, p in self.sites.items()}}

    def summary_text(self, analysis: str, protocol: str, facts: Mapping[str, Any],
                     decision: Decision, cert: Certificate) -> str:
        """A short human-readable summary that travels next to the certificate."""
        lines = [
            f"safeflow release: {analysis} via {protocol}",
            f"decision: {decision.outcome.value} (rules: {', '.join(decision.rules) or '-'})",
            f"obligations: {'; '.join(decision.obligations) or 'none'}",
            f"origins: {', '.join(o['site'] + ' (' + o['jurisdiction'] + ')' for o in facts['origin'])}",  # noqa: E501
            f"destination: {facts['destination']['jurisdiction']} "
            f"({facts['destination']['recipient_type']}), purpose: {facts['purpose']}",
            f"output sha256: {cert.output_sha256}",
            f"protocol spec sha256: {facts['run']['protocol_spec_sha256']}",
            "verify offline: safeflow verify <this directory>",
            "facts: " + json.dumps(facts["output"], sort_keys=True, default=str),
        ]
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        """Close every audit log and the release ledger."""
        self.ledger.close()
        self.party.close()
        for p in self.sites.values():
            p.close()

"""The aggregator and customs inside the Flower ServerApp.

:func:`serve_job` is what the ServerApp's ``main(grid, context)`` runs: it reads the job
from the run config, customs' configuration from the coordinator's own file (named by the
``SAFEFLOW_COORDINATOR`` environment variable of the SuperLink), finds each site's node,
drives the analysis exactly as :meth:`safeflow.Federation.run` does (same protocol server
half, same layout/combine loop, same facts, decision, disclosure control, differencing
check and certificate), and writes the release bundle (or the typed refusal) to the outbox.

The differences from the local transport are where things live: customs holds only its own
key (the sites' keys stay at the sites, which co-sign over Flower after checking their own
records) and a :class:`~safeflow.transport.flower.channel.FlowerChannel` replaces the
in-process channel.

Examples
--------
>>> CoordinatorFederation.__mro__[1].__name__
'Federation'
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from safeflow.analyses import Analysis, analysis_from_request
from safeflow.analyses.batch import Batch
from safeflow.data import Schema
from safeflow.errors import InvalidParameter, SafeflowError, TransportError
from safeflow.federation import Federation
from safeflow.policy.certificate import (
    Certificate,
    audit_section,
    build_body,
    release_entry,
    value_digest,
    value_manifest,
)
from safeflow.policy.customs import Customs, Party, PolicySettings
from safeflow.policy.ledger import ReleaseLedger
from safeflow.protocols import SessionInfo, default_threshold, load_spec
from safeflow.release import Release
from safeflow.transport.flower.channel import FlowerChannel
from safeflow.transport.flower.config import (
    COORDINATOR_ENV,
    CoordinatorConfig,
    StudySite,
    load_coordinator_config,
)
from safeflow.transport.flower.job import Job, item_job_id, write_bundle
from safeflow.transport.flower.pki import node_public_key_der

_NO_DP = ("differential privacy over Flower is not available yet: each site must debit its "
          "own budget ledger at its agent before anything leaves. Run DP analyses over the "
          "local transport, or without dp=")


class FlowerCustoms(Customs):
    """Customs without the sites' keys: origins co-sign remotely, through the channel."""

    def __init__(self, state_dir: Path, settings: PolicySettings, sites: Mapping[str, str],
                 *, study: str, destination: str, purpose: str) -> None:
        self.settings = settings
        self.packs = settings.resolved_packs()
        self.party = Party(state_dir / "customs", "customs")
        self.ledger = ReleaseLedger(state_dir / "customs" / "releases.sqlite")
        self.sites = {}
        self.jurisdictions = dict(sites)
        self.channel: FlowerChannel | None = None
        self.cosign_round = 0
        self.defer = False  # a batch: origins co-sign all its certificates at once
        if not self._registered(study):
            self.party.log.append({
                "kind": "study_registration", "study": study, "sites": sorted(sites),
                "destination": destination, "purpose": purpose,
                "packs": [[p.name, p.version, p.sha256] for p in self.packs]})

    def _registered(self, study: str) -> bool:
        log = self.party.log
        return any(log.entry(i).get("kind") == "study_registration"
                   and log.entry(i).get("study") == study for i in range(log.size))

    def certify(self, facts: Mapping[str, Any], decision: Any, files: Mapping[str, bytes],
                *, site_messages: Mapping[str, str]) -> Certificate:
        """Log the release, sign, and have every origin site co-sign over Flower."""
        if self.channel is None:
            raise TransportError("customs has no channel to the sites; run through "
                                 "CoordinatorFederation")
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
            sites={s: self.channel.site_keys[s] for s in origins})
        cert = Certificate.issue(body, "customs", self.party.key)
        if self.defer:  # CoordinatorFederation._finish_batch collects the co-signatures
            return cert
        return self.channel.cosign(cert, origins, self.cosign_round)

    def trusted_keys(self) -> dict[str, Any]:
        """Customs' key and the keys the sites presented (pinned by the study when given)."""
        sites = dict(self.channel.site_keys) if self.channel is not None else {}
        return {"customs": self.party.key.verify_key, **sites}

    def close(self) -> None:
        """Close customs' audit log and release ledger."""
        self.ledger.close()
        self.party.close()


class CoordinatorFederation(Federation):
    """A federation seen from the ServerApp: public site facts, no data, remote sites."""

    def __init__(self, job: Job, config: CoordinatorConfig, grid: Any) -> None:
        self.sites = list(job.sites)  # type: ignore[arg-type]
        names = [s.name for s in self.sites]
        if len(set(names)) != len(names):
            raise InvalidParameter(f"site names must be unique; got {names}")
        self.destination, self.purpose = job.destination, job.purpose
        self.transport, self.study = "flower", job.study
        self.threshold = job.threshold or default_threshold(len(names))
        SessionInfo(self.study, "check", tuple(names), self.threshold)
        self.max_rows_per_site = int(job.max_rows_per_site)
        self.max_envelope_bytes = int(job.max_envelope_bytes)
        self.public_schema = Schema.from_dict(job.schema)
        self._site_data = {}
        self._faults = {}
        pol = dict(job.policy)
        self.policy = PolicySettings(packs=config.packs,
                                     sdc_profile=pol.get("sdc_profile", "acro"),
                                     instruments=pol.get("instruments", {}),
                                     recipient_type=pol.get("recipient_type", "research"),
                                     suppress=bool(pol.get("suppress", True)))
        self.state_dir = config.state_dir
        self.customs = FlowerCustoms(self.state_dir, self.policy,
                                     {s.name: s.jurisdiction for s in self.sites},
                                     study=self.study, destination=self.destination,
                                     purpose=self.purpose)
        self.config, self.grid, self.job = config, grid, job
        self.nodes = find_nodes(grid, self.sites)

    def _session(self, protocol: str, params: Mapping[str, Any]) -> dict[str, Any]:
        return {"sites": [s.name for s in self.sites],
                "jurisdictions": {s.name: s.jurisdiction for s in self.sites},
                "threshold": self.threshold, "destination": self.destination,
                "purpose": self.purpose, "protocol": protocol,
                "protocol_spec_sha256": load_spec(protocol).sha256, "params": dict(params),
                "schema": self.public_schema.to_dict(),
                "max_rows_per_site": self.max_rows_per_site,
                "max_envelope_bytes": self.max_envelope_bytes}

    def run(self, analysis: Analysis, *, protocol: str = "masking",
            rng: np.random.Generator | None = None, query_id: str | None = None,
            **protocol_params: Any) -> Release:
        """:meth:`Federation.run` over a :class:`FlowerChannel` (DP refused for now).

        DP is refused here, where it matters, not only at the analyst: a job could carry
        DP-FedAvg parameters (``dp_fedavg``) and budget facts that no site's ledger paid
        for, which customs would otherwise certify.
        """
        p = analysis.params
        if (p.get("dp") is not None or "dp" in protocol_params
                or p.get("dp_fedavg") is not None or p.get("budget") is not None):
            raise InvalidParameter(_NO_DP)
        return super().run(analysis, protocol=protocol, rng=rng, query_id=query_id,
                           **protocol_params)

    def run_batch(self, analyses: Sequence[Analysis], *, protocol: str = "masking",
                  rng: np.random.Generator | None = None,
                  **protocol_params: Any) -> list[Release | SafeflowError]:
        """:meth:`Federation.run_batch` over a :class:`FlowerChannel`; the origins co-sign
        every certificate of the batch in one round trip (DP refused, as in :meth:`run`)."""
        for a in analyses:
            p = getattr(a, "params", {})
            if p.get("dp") is not None or p.get("dp_fedavg") is not None:
                raise InvalidParameter(_NO_DP)
        if "dp" in protocol_params:
            raise InvalidParameter(_NO_DP)
        self.customs.defer = True
        try:
            return super().run_batch(analyses, protocol=protocol, rng=rng, **protocol_params)
        finally:
            self.customs.defer = False

    def _finish_batch(self, channel: Any, results: list[Release | SafeflowError]
                      ) -> list[Release | SafeflowError]:
        done = [i for i, r in enumerate(results) if isinstance(r, Release)]
        if not done:
            return results
        first = results[done[0]]
        assert isinstance(first, Release)
        origins = [o["site"] for o in first.facts["origin"]]
        certs = self.customs.channel.cosign_many(  # type: ignore[union-attr]
            [results[i].certificate for i in done],  # type: ignore[union-attr]
            origins, self.customs.cosign_round)
        out = list(results)
        for i, cert in zip(done, certs, strict=True):
            out[i] = dataclasses.replace(results[i], certificate=cert)  # type: ignore[arg-type]
        return out

    def _open_channel(self, info: SessionInfo, protocol: str, rng: np.random.Generator | None,
                      params: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
        channel = FlowerChannel(
            self.grid, study=self.study, run=info.run, nodes=self.nodes,
            jurisdictions={s.name: s.jurisdiction for s in self.sites},
            aggregator_jurisdiction=self.destination,
            session=self._session(protocol, params),
            pinned_keys={s.name: s.signing_key for s in self.sites},
            max_envelope_bytes=self.max_envelope_bytes, timeout=self.config.reply_timeout,
            poll=self.config.poll_interval)
        self.customs.channel = channel
        self._last_round = 0
        return channel, {}  # the sites' runtimes live in their agents

    def _before_certify(self, rounds: int) -> None:
        self._last_round = rounds
        self.customs.cosign_round = rounds + 1  # customs asks the origins to co-sign

    def _close_channel(self, channel: Any) -> None:
        last = max([self._last_round, *(e.round for e in channel.log)])
        channel.close(last + 2)


def find_nodes(grid: Any, sites: Sequence[StudySite]) -> dict[str, int]:
    """Each site's Flower node: by registered name, and by pinned key when the study pins one.

    Nodes the SuperLink does not know (not registered, or offline) are simply absent: the
    protocol treats those sites as dropped out.
    """
    by_name: dict[str, list[Any]] = {}
    for n in grid.get_nodes():
        by_name.setdefault(n.name, []).append(n)
    out: dict[str, int] = {}
    for s in sites:
        found = by_name.get(s.node_name or s.name, [])
        if s.node_key:
            want = node_public_key_der(s.node_key.encode())
            found = [n for n in found if n.public_key
                     and node_public_key_der(n.public_key) == want]
        if len(found) > 1:
            raise TransportError(f"{len(found)} SuperNodes are registered as "
                                 f"{s.node_name or s.name!r}; pin the site's node_key")
        if found:
            out[s.name] = int(found[0].node_id)
    return out


def serve_job(grid: Any, context: Any) -> None:
    """The ServerApp's main: one job in, one release bundle (or typed refusal) out."""
    job = Job.from_json(context.run_config.get("job"))
    path = os.environ.get(COORDINATOR_ENV)
    if not path:
        raise InvalidParameter(f"the SuperLink has no {COORDINATOR_ENV}; start it with "
                               f"{COORDINATOR_ENV}=/path/coordinator.toml")
    config = load_coordinator_config(path)
    fed = None
    try:
        fed = CoordinatorFederation(job, config, grid)
        analysis = analysis_from_request(job.analysis)
        if isinstance(analysis, Batch):  # one bundle per item, then the job's own
            results = fed.run_batch(analysis.items, protocol=job.protocol,
                                    **dict(job.params))
            for i, r in enumerate(results):
                item = item_job_id(job.job_id, i)
                if isinstance(r, Release):
                    write_bundle(config.outbox, item, release=r)
                else:
                    write_bundle(config.outbox, item, error=r)
            write_bundle(config.outbox, job.job_id, batch=len(results))
            return
        release = fed.run(analysis, protocol=job.protocol, **dict(job.params))
        write_bundle(config.outbox, job.job_id, release=release)
    except SafeflowError as e:
        write_bundle(config.outbox, job.job_id, error=e)
    except Exception as e:
        write_bundle(config.outbox, job.job_id, error=TransportError(
            f"the coordinator failed ({type(e).__name__}); see `flwr log` of this run"))
        raise
    finally:
        if fed is not None:
            fed.customs.close()


__all__ = ["CoordinatorFederation", "FlowerCustoms", "find_nodes", "serve_job"]

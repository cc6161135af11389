"""The analyst's side: submit an analysis to a running SuperLink, get a ``Release`` back.

``run_on_flower`` (and :class:`FlowerFederation`, which makes every ``sf.describe``,
``sf.glm`` ... work unchanged) turns an analysis into a :class:`~safeflow.transport.flower.job.Job`,
submits it with ``flwr run`` (Flower's Control API, over TLS to the SuperLink), waits for
the ServerApp's release bundle in the coordinator's outbox, verifies the certificate and
returns the :class:`~safeflow.release.Release` (or raises the typed refusal, e.g.
``ExportDenied``, exactly as the local transport would).

Flower's open-source SuperLink has no channel for a ServerApp's results back to the
submitter (``flwr pull`` needs an artifact provider of the enterprise edition), so the
release is handed over through the outbox directory of ``coordinator.toml``: the
analyst's process runs on the coordinator's machine (or mounts its outbox).

Examples
--------
>>> conn = FlowerConnection("127.0.0.1:9093", root_certificates="/etc/safeflow/ca.pem")
>>> conn.profile
'production'
>>> FlowerConnection("127.0.0.1:9093", insecure=True)  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
...
safeflow.transport.flower.pki.InsecureTransport: refusing to start ... without TLS...
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safeflow.analyses import Analysis
from safeflow.analyses.batch import Batch
from safeflow.data import Schema
from safeflow.errors import InvalidParameter, SafeflowError, TransportError
from safeflow.federation import Federation
from safeflow.policy.customs import PolicySettings
from safeflow.protocols import SessionInfo, default_threshold, protocol_classes
from safeflow.release import Release
from safeflow.transport.flower.apps import write_flower_app
from safeflow.transport.flower.config import StudySite
from safeflow.transport.flower.job import Job, bundle_path, read_batch, read_bundle
from safeflow.transport.flower.pki import require_secure

CONNECTION = "safeflow"


def _flwr_executable() -> str:
    local = Path(sys.executable).with_name("flwr")
    found = str(local) if local.exists() else shutil.which("flwr")
    if not found:
        raise TransportError("the Flower CLI (flwr) is not installed; pip install "
                             "'flwr>=1.41,<2' next to safeflow")
    return found


@dataclass(frozen=True)
class FlowerConnection:
    """How to reach a SuperLink's Control API (the ``flwr`` CLI's connection).

    Parameters
    ----------
    address : str
        ``host:port`` of the SuperLink (its one HTTP port in Flower 1.4x).
    root_certificates : str or Path, optional
        The CA that signed the SuperLink's TLS certificate.
    insecure : bool
        Plain HTTP; refused by the production profile.
    node_auth : bool
        The SuperLink runs with ``--enable-supernode-auth`` (the production profile
        requires it).
    profile : {"production", "test"}
    """

    address: str
    root_certificates: str | Path | None = None
    insecure: bool = False
    node_auth: bool = True
    profile: str = "production"

    def __post_init__(self) -> None:
        if not isinstance(self.address, str) or ":" not in self.address:
            raise InvalidParameter(f"address must be host:port; got {self.address!r}")
        tls = not self.insecure
        if tls and self.root_certificates is None and self.profile == "production":
            raise InvalidParameter("give root_certificates (the SuperLink's CA certificate) "
                                   "for a TLS connection")
        require_secure(self.profile, tls=tls, node_auth=self.node_auth)

    def config_toml(self) -> str:
        """The Flower CLI configuration naming this connection ``safeflow``."""
        lines = ["[superlink]", f'default = "{CONNECTION}"', "",
                 f"[superlink.{CONNECTION}]", f"address = {json.dumps(self.address)}"]
        if self.insecure:
            lines.append("insecure = true")
        elif self.root_certificates is not None:
            lines.append("root-certificates = "
                         + json.dumps(str(Path(self.root_certificates).resolve())))
        return "\n".join(lines) + "\n"


class FlowerCLI:
    """The ``flwr`` command line against one SuperLink, with its own ``FLWR_HOME``."""

    def __init__(self, connection: FlowerConnection, home: str | Path | None = None) -> None:
        self.connection = connection
        self.home = Path(home) if home is not None else Path(tempfile.mkdtemp(
            prefix="safeflow-flwr-"))
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "config.toml").write_text(connection.config_toml())

    def __call__(self, *args: str, timeout: float = 120.0) -> dict[str, Any]:
        """Run ``flwr ARGS --format json``; the JSON it printed, or a TransportError."""
        env = {**os.environ, "FLWR_HOME": str(self.home), "FLWR_TELEMETRY_ENABLED": "0",
               "FLWR_DISABLE_UPDATE_CHECK": "1"}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        try:
            done = subprocess.run([_flwr_executable(), *args, "--format", "json"],
                                  capture_output=True, text=True, env=env, timeout=timeout,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise TransportError(f"`flwr {args[0]}` did not answer within {timeout:.0f} s; "
                                 "is the SuperLink up?") from None
        start = done.stdout.find("{")
        try:
            out = json.loads(done.stdout[start:]) if start >= 0 else {}
        except json.JSONDecodeError:
            out = {}
        if done.returncode != 0 or not out.get("success", False):
            why = (out.get("error-message") or done.stderr.strip()[-400:]
                   or done.stdout.strip()[-400:])
            raise TransportError(f"`flwr {args[0]}` failed against "
                                 f"{self.connection.address}: {why}")
        return out

    def register_node(self, public_key: str | Path, name: str) -> int:
        """Register a SuperNode's authentication key under ``name``; its node id."""
        out = self("supernode", "register", str(public_key), CONNECTION, "--name", name)
        return int(out["node-id"])

    def submit(self, app: Path, job: Job) -> int:
        """``flwr run`` the app with this job as its run config; the run id."""
        cfg = self.home / f"job-{job.job_id}.toml"
        cfg.write_text("job = " + json.dumps(job.to_json()) + "\n")
        try:
            out = self("run", str(app), CONNECTION, "--run-config", str(cfg))
        finally:
            cfg.unlink(missing_ok=True)
        return int(out["run-id"])

    def status(self, run_id: int) -> str:
        """The run's status as ``flwr ls`` reports it (e.g. ``running``, ``finished:completed``)."""
        out = self("ls", CONNECTION, "--run-id", str(run_id))
        runs = out.get("runs") or []
        return str(runs[0].get("status", "unknown")) if runs else "unknown"


def run_on_flower(job: Job, connection: FlowerConnection, *, outbox: str | Path,
                  timeout: float = 900.0, cli: FlowerCLI | None = None,
                  app_dir: str | Path | None = None,
                  trusted: Mapping[str, Any] | None = None, batch: bool = False) -> Any:
    """Submit ``job`` to the SuperLink and return its certified release.

    ``batch=True`` (a :class:`~safeflow.analyses.batch.Batch` job): a list with one
    release or typed error per analysis (:func:`~safeflow.transport.flower.job.read_batch`).

    Raises the job's typed refusal (``ExportDenied``, ``ExportRefused``, ``SchemaError``,
    ``TooFewSurvivors`` ...) as the local transport would, and a ``TransportError`` when
    the run fails or no bundle arrives within ``timeout`` seconds.
    """
    cli = cli or FlowerCLI(connection)
    app = write_flower_app(app_dir or (cli.home / "app"))
    target = bundle_path(Path(outbox), job.job_id)
    run_id = cli.submit(app, job)
    deadline = time.monotonic() + timeout
    next_check = time.monotonic() + 30.0
    while not target.exists():
        now = time.monotonic()
        if now > deadline:
            raise TransportError(f"no release for run {run_id} after {timeout:.0f} s; see "
                                 f"`flwr log {run_id}` and the SuperNodes' logs")
        if now > next_check:
            status = cli.status(run_id)
            if status.startswith("finished") and not target.exists():
                time.sleep(1.0)
                if not target.exists():
                    raise TransportError(f"run {run_id} ended ({status}) without a release; "
                                         f"see `flwr log {run_id}`")
            next_check = now + 30.0
        time.sleep(0.1)
    if batch:
        return read_batch(Path(outbox), job.job_id, trusted=trusted)
    try:
        return read_bundle(target, trusted=trusted)
    finally:
        target.unlink(missing_ok=True)


class FlowerFederation(Federation):
    """The analyst's view of a federation deployed on Flower (no data, no keys here).

    Works with every analysis function: ``sf.describe(fed, ...)`` submits a job and
    returns the release certified by customs next to the SuperLink.
    """

    def __init__(self, sites: Sequence[StudySite], *, destination: str, purpose: str,
                 schema: Schema, connection: FlowerConnection, outbox: str | Path,
                 study: str | None = None, threshold: int | None = None,
                 max_rows_per_site: int = 2**32, max_envelope_bytes: int = 1 << 30,
                 policy: PolicySettings | None = None, timeout: float = 900.0,
                 cli: FlowerCLI | None = None) -> None:
        sites = list(sites)
        if not sites or not all(isinstance(s, StudySite) for s in sites):
            raise InvalidParameter("sites must be a list of StudySite (name, jurisdiction, "
                                   "node and signing keys)")
        if not isinstance(schema, Schema) or not schema.declared:
            raise InvalidParameter("a Flower federation needs the declared public schema "
                                   "(sf.Schema) every site also declares")
        policy = policy or PolicySettings()
        if policy.packs:
            raise InvalidParameter("extra policy packs live with customs (coordinator.toml "
                                   "packs) and with each site (site.toml); not in the job")
        self.sites = sites  # type: ignore[assignment]
        self.destination, self.purpose, self.transport = destination, purpose, "flower"
        self.study = study or f"study-{os.urandom(4).hex()}"
        names = [s.name for s in sites]
        self.threshold = threshold if threshold is not None else default_threshold(len(sites))
        SessionInfo(self.study, "check", tuple(names), self.threshold)
        self.public_schema, self.policy = schema, policy
        self.max_rows_per_site, self.max_envelope_bytes = max_rows_per_site, max_envelope_bytes
        self.connection, self.outbox, self.timeout = connection, Path(outbox), timeout
        self.cli = cli or FlowerCLI(connection)
        self._faults = {}
        self._trusted = {s.name: s.signing_key for s in sites if s.signing_key}

    def job(self, analysis: Analysis, protocol: str, params: Mapping[str, Any]) -> Job:
        """The job that runs ``analysis`` under ``protocol`` for this study.

        The analysis travels with its own state (empty before a run), not with
        :meth:`Analysis.request`: some analyses (Cox) send the sites only the public part
        of their state, whose empty keys would stop the coordinator from starting the run
        with :meth:`Analysis.initial_state`.
        """
        protocol_classes(protocol)
        return Job(study=self.study, destination=self.destination, purpose=self.purpose,
                   sites=tuple(self.sites), schema=self.public_schema.to_dict(),  # type: ignore[arg-type]
                   analysis={"analysis": analysis.name, "params": dict(analysis.params),
                             "state": dict(analysis.state)},
                   protocol=protocol, params=dict(params),
                   threshold=self.threshold, max_rows_per_site=self.max_rows_per_site,
                   max_envelope_bytes=self.max_envelope_bytes,
                   policy={"sdc_profile": self.policy.sdc_profile,
                           "instruments": dict(self.policy.instruments),
                           "recipient_type": self.policy.recipient_type,
                           "suppress": self.policy.suppress})

    def run(self, analysis: Analysis, *, protocol: str = "masking", rng: Any = None,
            **protocol_params: Any) -> Release:
        """Submit the analysis to the SuperLink; the certified release (or typed refusal)."""
        if rng is not None:
            raise InvalidParameter("rng cannot be injected into a deployed run; sites and "
                                   "customs draw from their operating systems")
        from safeflow.crypto.keys import VerifyKey
        from safeflow.transport.flower.coordinator import _NO_DP

        if analysis.params.get("dp") is not None or "dp" in protocol_params:
            raise InvalidParameter(_NO_DP)

        trusted = {n: VerifyKey.from_bytes(bytes.fromhex(k)) for n, k in self._trusted.items()}
        return run_on_flower(self.job(analysis, protocol, protocol_params), self.connection,
                             outbox=self.outbox, timeout=self.timeout, cli=self.cli,
                             trusted=trusted or None)

    def run_batch(self, analyses: Sequence[Analysis], *, protocol: str = "masking",
                  rng: Any = None, **protocol_params: Any) -> list[Release | SafeflowError]:
        """Submit one-shot analyses as one job: one session, one secure sum, one
        co-signature round (see :meth:`safeflow.Federation.run_batch`); one release or
        typed error per analysis, in order."""
        if rng is not None:
            raise InvalidParameter("rng cannot be injected into a deployed run; sites and "
                                   "customs draw from their operating systems")
        from safeflow.crypto.keys import VerifyKey
        from safeflow.transport.flower.coordinator import _NO_DP

        if "dp" in protocol_params or any(
                getattr(a, "params", {}).get("dp") is not None for a in analyses):
            raise InvalidParameter(_NO_DP)
        batch = Batch.of(analyses, self.public_schema)
        trusted = {n: VerifyKey.from_bytes(bytes.fromhex(k)) for n, k in self._trusted.items()}
        job = self.job(batch, protocol, protocol_params)
        return run_on_flower(job, self.connection, outbox=self.outbox, timeout=self.timeout,
                             cli=self.cli, trusted=trusted or None, batch=True)


__all__ = ["FlowerCLI", "FlowerConnection", "FlowerFederation", "run_on_flower"]

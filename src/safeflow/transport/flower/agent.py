"""The site agent: the long-lived process that holds a hospital's data, keys and sessions.

Flower 1.4x runs the ClientApp in a fresh ``flwr-clientapp`` process for every message, so
nothing a protocol keeps between stages (the masking keys of a run, the replay guard)
could live there. The agent keeps it instead: one :class:`~safeflow.runtime.SiteRuntime`
per open run, the site's Ed25519 key and Merkle audit log (``<state_dir>/keys``,
``<state_dir>/audit.sqlite``), and its export-gate policy (the jurisdiction's packs plus
the site's own). The ClientApp only relays envelope bytes to it over a Unix socket that
only the site's user can open (``<state_dir>/agent.sock``, mode 0600). Patient rows never
enter a Flower process.

Start it next to the SuperNode (``safeflow site serve --config site.toml`` starts both)::

    python -m safeflow.transport.flower.agent /srv/safeflow/site.toml

At :data:`~safeflow.transport.flower.wire.OPEN` the agent refuses a session whose protocol
spec (``protocol_spec_sha256``) is not the one this site has installed: the site only runs
the protocol it was given, before anything is computed.

**Test-only fault hook.** When the environment variable ``SAFEFLOW_TEST_AGENT_EXIT_AT`` is
``"ROUND:STAGE"`` (e.g. ``"1:masked_input"``), the agent kills itself with SIGKILL on the
first request envelope of that round and stage, before answering: a site that dies
mid-round, for the fault-tolerance system tests. Never set it in production.

Examples
--------
>>> SiteAgent.__name__
'SiteAgent'
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import safeflow.analyses.batch  # noqa: F401 - registers the batch analysis at the site
from safeflow.data import Schema, SiteData
from safeflow.envelope import Envelope, Header, Payload
from safeflow.errors import (
    InvalidParameter,
    ProtocolError,
    ReplayedEnvelope,
    SafeflowError,
    SchemaError,
    TransportError,
    UnexpectedStage,
    VerificationError,
)
from safeflow.policy.customs import Party, messages_digest
from safeflow.policy.gate import gate_check
from safeflow.policy.packs import default_packs, load_pack
from safeflow.protocols import SessionInfo, load_spec, protocol_classes
from safeflow.runtime import AGGREGATOR, SiteRuntime
from safeflow.transport.flower.config import SiteConfig, load_site_config
from safeflow.transport.flower.wire import (
    CLOSE,
    COSIGN,
    OPEN,
    STATUS_ERROR,
    STATUS_OK,
    error_to_json,
    recv_frame,
    send_frame,
)

_SESSION_KEYS = {"sites", "jurisdictions", "threshold", "destination", "purpose", "protocol",
                 "protocol_spec_sha256", "params", "schema", "max_rows_per_site",
                 "max_envelope_bytes"}
FAULT_ENV = "SAFEFLOW_TEST_AGENT_EXIT_AT"


@dataclass
class _Session:
    runtime: SiteRuntime
    protocol: str
    nonces: set[str] = field(default_factory=set)
    touched: float = field(default_factory=time.monotonic)


class SiteAgent:
    """Answers envelopes for one site: control stages itself, protocol stages by runtime."""

    def __init__(self, config: SiteConfig, *, session_ttl: float = 6 * 3600) -> None:
        self.config = config
        self.declared: Schema = config.schema()
        config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.party = Party(config.state_dir, config.name)
        extra = tuple(load_pack(p) for p in config.packs)
        self.packs = (*default_packs(config.sdc_profile), *extra)
        self.sessions: dict[tuple[str, str], _Session] = {}
        self.closed: set[tuple[str, str]] = set()
        self.ttl = session_ttl
        self._exit_at = _fault_point(os.environ.get(FAULT_ENV))

    @property
    def verify_key_hex(self) -> str:
        """The site's public Ed25519 key (hex), which co-signs certificates."""
        return self.party.key.verify_key.to_bytes().hex()

    def _reply(self, h: Header, stage: str, meta: Mapping[str, Any],
               blobs: Mapping[str, bytes] | None = None) -> bytes:
        out = Header(study=h.study, run=h.run, round=h.round, stage=stage,
                     sender=self.config.name, receiver=AGGREGATOR)
        return Envelope(out, Payload("none", meta=dict(meta), blobs=dict(blobs or {}))
                        ).to_bytes()

    def handle(self, raw: bytes) -> bytes:
        """One request envelope in, one reply envelope out (or a typed error)."""
        env = Envelope.from_bytes(raw, max_bytes=self.config.max_envelope_bytes)
        h = env.header
        if self._exit_at is not None and (h.round, h.stage) == self._exit_at:
            os.kill(os.getpid(), signal.SIGKILL)  # test-only: die mid-round, no reply
        if h.receiver != self.config.name or h.sender != AGGREGATOR:
            raise UnexpectedStage(f"envelope from {h.sender!r} to {h.receiver!r} reached site "
                                  f"{self.config.name!r}; dropped")
        if self.config.studies and h.study not in self.config.studies:
            raise ExportRefusedStudy(h.study)
        self._expire()
        key = (h.study, h.run)
        if h.stage == OPEN:
            return self._open(h, env.payload)
        session = self.sessions.get(key)
        if session is None:
            raise UnexpectedStage(f"no open session for run {h.run!r} at {self.config.name!r} "
                                  "(closed, expired or never opened); start a new run")
        session.touched = time.monotonic()
        if h.stage == COSIGN:
            self._fresh(session, h)
            return self._cosign(h, env.payload, session)
        if h.stage == CLOSE:
            self._fresh(session, h)
            self._drop(key)
            return self._reply(h, CLOSE, {"closed": True})
        return session.runtime.handle(raw)

    def _fresh(self, session: _Session, h: Header) -> None:
        if h.nonce in session.nonces:
            raise ReplayedEnvelope("envelope nonce already accepted in this run (replay); "
                                   "it was dropped and nothing was counted twice")
        session.nonces.add(h.nonce)

    def _drop(self, key: tuple[str, str]) -> None:
        self.sessions.pop(key, None)
        self.closed.add(key)

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, s in self.sessions.items() if now - s.touched > self.ttl]:
            self._drop(key)

    def _open(self, h: Header, p: Payload) -> bytes:
        key = (h.study, h.run)
        if key in self.sessions or key in self.closed:
            raise ReplayedEnvelope(f"run {h.run!r} was already opened at {self.config.name!r} "
                                   "(replay); a new run needs a new run id")
        if h.round != 0:
            raise UnexpectedStage("a session opens in round 0")
        s = p.meta.get("session")
        if not isinstance(s, dict) or set(s) != _SESSION_KEYS:
            raise ProtocolError("malformed session request; the coordinator is not a "
                                "conforming safeflow party")
        me, cfg = self.config.name, self.config
        if me not in s["sites"] or s["jurisdictions"].get(me) != cfg.jurisdiction:
            raise InvalidParameter(
                f"the study lists site {me!r} in {s['jurisdictions'].get(me)!r}, but this site "
                f"is in {cfg.jurisdiction!r}; fix the study configuration (sites are never "
                "moved by a coordinator)")
        public = Schema.from_dict(s["schema"])
        if public.to_dict() != self.declared.to_dict():
            raise SchemaError(
                f"the study's public schema differs from the one site {me!r} declares "
                f"({cfg.schema_path.name}); every site must declare the same schema")
        limit = s["max_envelope_bytes"]
        if type(limit) is not int or limit > cfg.max_envelope_bytes:
            raise InvalidParameter(f"the run asks for envelopes up to {limit} bytes; site "
                                   f"{me!r} accepts at most {cfg.max_envelope_bytes}")
        protocol = s["protocol"]
        protocol_classes(protocol)
        if s["protocol_spec_sha256"] != load_spec(protocol).sha256:
            raise VerificationError(
                f"site {me!r} refuses the run: the coordinator runs another {protocol!r} "
                "protocol spec than the one installed here; install the same safeflow "
                "version at the coordinator and the sites")
        info = SessionInfo(h.study, h.run, tuple(s["sites"]), int(s["threshold"]))
        data = SiteData(cfg.data_source(), schema=public)
        ctx = {"sites": list(info.sites), "max_rows_per_site": int(s["max_rows_per_site"]),
               "public_schema": public, "site": me, "jurisdiction": cfg.jurisdiction,
               "destination": s["destination"]}
        params = dict(s["params"])
        rt = SiteRuntime(
            me, data, public, protocol, info, context=ctx, max_envelope_bytes=limit,
            policy_gate=lambda msg: gate_check(cfg.jurisdiction, msg, packs=self.packs),
            on_sent=lambda entry: self.party.log.append({"kind": "message", **entry}),
            **params)
        session = _Session(rt, protocol)
        session.nonces.add(h.nonce)
        self.sessions[key] = session
        return self._reply(h, OPEN, {"site": me, "jurisdiction": cfg.jurisdiction,
                                     "signing_key": self.verify_key_hex,
                                     "ciio": cfg.ciio, "ftz": cfg.ftz})

    def _cosign(self, h: Header, p: Payload, session: _Session) -> bytes:
        """Co-sign the run's certificate(s): ``certificate``, or ``certificate:<i>`` for
        each release of a batch (one secure sum, several releases; one round trip)."""
        from safeflow.policy.certificate import Certificate

        me = self.config.name
        if "certificate" in p.blobs:
            names = ["certificate"]
        else:
            names = [f"certificate:{i}" for i in range(len(p.blobs))]
            if not names or set(names) != set(p.blobs):
                raise ProtocolError("malformed co-signature request; the coordinator is not "
                                    "a conforming safeflow party")
        sent = messages_digest(session.runtime.sent)
        signatures: dict[str, bytes] = {}
        for name in names:
            cert = Certificate.from_json(p.blobs.get(name, b""))
            self._check_cosign(cert, h, session, sent)
            signed = cert.cosign(me, self.party.key)
            signatures[name.replace("certificate", "signature")] = signed.signatures[me]
        self._drop((h.study, h.run))
        return self._reply(h, COSIGN, {"site": me}, signatures)

    def _check_cosign(self, cert: Any, h: Header, session: _Session, sent: str) -> None:
        me = self.config.name
        run = cert.body["facts"]["run"]
        if run.get("run_id") != h.run or run.get("study") != h.study:
            raise VerificationError(f"site {me!r} refuses to co-sign: the certificate is for "
                                    "another run")
        if run.get("protocol_spec_sha256") != load_spec(session.protocol).sha256:
            raise VerificationError(f"site {me!r} refuses to co-sign: the certificate names "
                                    "another protocol spec than the one it ran")
        if run.get("messages_sha256", {}).get(me) != sent:
            raise VerificationError(f"site {me!r} refuses to co-sign: the certified run does "
                                    "not contain exactly the messages it sent")
        customs = cert.signer_keys.get("customs")
        pinned = self.config.customs_key
        if pinned is not None and (customs is None or customs.to_bytes().hex() != pinned):
            raise VerificationError(f"site {me!r} refuses to co-sign: the certificate is not "
                                    "signed by the customs key this site trusts")

    def close(self) -> None:
        """Forget every session and close the audit log."""
        self.sessions.clear()
        self.party.close()


def _fault_point(value: str | None) -> tuple[int, str] | None:
    """Parse ``SAFEFLOW_TEST_AGENT_EXIT_AT`` (``"ROUND:STAGE"``); typed error if malformed.

    Examples
    --------
    >>> _fault_point("1:masked_input"), _fault_point(None)
    ((1, 'masked_input'), None)
    """
    if not value:
        return None
    rnd, sep, stage = value.partition(":")
    if not sep or not rnd.isdigit() or not stage:
        raise InvalidParameter(f"{FAULT_ENV} must be ROUND:STAGE such as '1:masked_input'; "
                               f"got {value!r}")
    return int(rnd), stage


class ExportRefusedStudy(TransportError):
    """(internal) an envelope of a study this site did not join."""

    def __init__(self, study: str) -> None:
        super().__init__(f"this site has not joined study {study!r} (site.toml studies); "
                         "ask its operator to add it")


def serve(config: SiteConfig, *, ready: Any = None) -> None:
    """Listen on the site's Unix socket until SIGTERM/SIGINT (one connection at a time)."""
    agent = SiteAgent(config)
    path = config.socket
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        srv.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    srv.listen(8)
    stop = {"now": False}

    def _stop(*_: Any) -> None:
        stop["now"] = True
        srv.close()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if ready is not None:
        ready()
    limit = config.max_envelope_bytes
    try:
        while not stop["now"]:
            try:
                conn, _ = srv.accept()
            except OSError:
                break
            with conn:
                conn.settimeout(600)
                while True:
                    try:
                        _, raw = recv_frame(conn, max_bytes=limit)
                    except (TransportError, OSError):
                        break
                    try:
                        out, status = agent.handle(raw), STATUS_OK
                    except SafeflowError as e:
                        out, status = error_to_json(e).encode(), STATUS_ERROR
                    except Exception as e:
                        print(f"safeflow agent: {type(e).__name__}: {e}", file=sys.stderr)
                        out, status = error_to_json(e).encode(), STATUS_ERROR
                    try:
                        send_frame(conn, out, status)
                    except OSError:
                        break
    finally:
        agent.close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def main(argv: list[str] | None = None) -> int:
    """``python -m safeflow.transport.flower.agent SITE_TOML``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m safeflow.transport.flower.agent SITE_TOML", file=sys.stderr)
        return 2
    cfg = load_site_config(args[0])
    digest = hashlib.sha256(str(cfg.socket).encode()).hexdigest()[:8]

    def ready() -> None:
        print(f"safeflow agent {cfg.name} ready on {cfg.socket} ({digest})", flush=True)

    serve(cfg, ready=ready)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = ["SiteAgent", "main", "serve"]

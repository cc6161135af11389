"""``FlowerChannel``: the :class:`~safeflow.protocols.Channel` of a Flower ServerApp.

It does what :class:`~safeflow.transport.local.LocalChannel` does (envelope bytes out,
envelope bytes back, each checked by a :class:`~safeflow.envelope.ReplayGuard`, bytes
counted per border and per round, reply hashes kept for the certificate), but each
exchange is one Flower message per site through the SuperLink (``grid.push_messages``,
then ``grid.pull_messages`` every ``poll`` seconds until every site answered or
``timeout`` passed). A site that does not answer in time, whose relay reports its agent
unreachable (:data:`~safeflow.transport.flower.wire.UNAVAILABLE_CODE`), or whose node the
SuperLink reports offline, has dropped out:
the protocol decides what that means, exactly as with ``dropouts`` locally.

Sites are Flower nodes: a site's node is the one the SuperLink authenticated under the
site's registered name (or pinned key), and its replies must come from that node.

Before a site's first protocol envelope of a run, the channel sends it the session
(:data:`~safeflow.transport.flower.wire.OPEN`) in the same Flower message; after customs
certified a release it collects the sites' co-signatures (:meth:`FlowerChannel.cosign`).
Control envelopes are counted in :attr:`FlowerChannel.control_bytes`, not in
``border_bytes``, so a release's facts describe the protocol's messages the same way under
both transports.

Examples
--------
>>> FlowerChannel.__name__
'FlowerChannel'
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from safeflow.crypto.keys import VerifyKey
from safeflow.envelope import Envelope, Header, Payload, ReplayGuard
from safeflow.errors import TransportError, UnexpectedStage, VerificationError
from safeflow.protocols import Channel
from safeflow.runtime import AGGREGATOR
from safeflow.transport.flower import wire
from safeflow.transport.local import RoundLog


def _offline(reply: Any) -> bool:
    """The SuperLink's own error reply: the destination node is (or went) offline.

    Flower's SuperLink answers in a node's place, from ``SUPERLINK_NODE_ID`` with
    ``NODE_UNAVAILABLE`` (or ``REPLY_MESSAGE_UNAVAILABLE``), when the node is offline. It
    can only report a site absent, which withholding the message would do anyway, so the
    site counts as dropped out.
    """
    from flwr.common.constant import SUPERLINK_NODE_ID, ErrorCode

    return (reply.metadata.src_node_id == SUPERLINK_NODE_ID and reply.has_error()
            and reply.error.code in (ErrorCode.NODE_UNAVAILABLE,
                                     ErrorCode.REPLY_MESSAGE_UNAVAILABLE))


class FlowerChannel(Channel):
    """Envelopes to Flower nodes and back, with the same checks and counts as local."""

    def __init__(self, grid: Any, *, study: str, run: str, nodes: Mapping[str, int],
                 jurisdictions: Mapping[str, str], aggregator_jurisdiction: str,
                 session: Mapping[str, Any], pinned_keys: Mapping[str, str | None],
                 max_envelope_bytes: int, timeout: float = 120.0,
                 poll: float = 0.1) -> None:
        self.grid, self.study, self.run = grid, study, run
        self.nodes, self.jurisdictions = dict(nodes), dict(jurisdictions)
        self.aggregator_jurisdiction = aggregator_jurisdiction
        self.session, self.pinned = dict(session), dict(pinned_keys)
        self.max_envelope_bytes, self.timeout, self.poll = max_envelope_bytes, timeout, poll
        self.border_bytes: dict[tuple[str, str], int] = defaultdict(int)
        self.received: dict[str, list[str]] = defaultdict(list)
        self.log: list[RoundLog] = []
        self.control_bytes = 0
        self.timings: list[tuple[int, str, float]] = []
        self.site_keys: dict[str, VerifyKey] = {}
        self._guard = ReplayGuard(study, run, me=AGGREGATOR)
        self._opened: set[str] = set()
        self._dead: set[str] = set()

    # ---------------------------------------------------------------- accounting

    def _count(self, src: str, dst: str, n: int, entry: RoundLog) -> None:
        entry.messages += 1
        entry.bytes_total += n
        if src != dst:
            self.border_bytes[(src, dst)] += n
            entry.bytes_cross_border += n

    def _envelope(self, site: str, round: int, stage: str, payload: Payload) -> bytes:
        return Envelope(Header(self.study, self.run, round, stage, AGGREGATOR, site),
                        payload).to_bytes()

    # ---------------------------------------------------------------- Flower round trip

    def _roundtrip(self, batches: Mapping[str, list[bytes]]) -> dict[str, list[bytes]]:
        """One Flower message per site; replies of those that answered in time."""
        from flwr.app import Message

        if not batches:
            return {}
        sites = list(batches)
        msgs = [Message(wire.to_record(batches[s]), dst_node_id=self.nodes[s],
                        message_type=wire.MESSAGE_TYPE, ttl=self.timeout + 60.0)
                for s in sites]
        ids = list(self.grid.push_messages(msgs))
        pending = {mid: s for mid, s in zip(ids, sites, strict=True) if mid}
        for s, mid in zip(sites, ids, strict=True):
            if not mid:
                self._dead.add(s)
        out: dict[str, list[bytes]] = {}
        deadline = time.monotonic() + self.timeout
        while pending and time.monotonic() < deadline:
            for reply in self.grid.pull_messages(list(pending)):
                site = pending.pop(reply.metadata.reply_to_message_id, None)
                if site is None:
                    continue
                if reply.metadata.src_node_id != self.nodes[site]:
                    if _offline(reply):  # the SuperLink answers for a node gone offline
                        self._dead.add(site)
                        continue
                    raise UnexpectedStage(f"a reply for {site!r} came from another node; "
                                          "dropped and the run aborted")
                if reply.has_error():
                    err = reply.error
                    if err.code == wire.UNAVAILABLE_CODE:  # its agent is down: dropped out
                        self._dead.add(site)
                        continue
                    if err.code == wire.ERROR_CODE:
                        raise wire.error_from_json(err.reason)
                    raise TransportError(
                        f"site {site!r} could not answer (Flower error {err.code}: "
                        f"{(err.reason or '')[:300]}); check its SuperNode and agent logs")
                envs = wire.from_record(reply.content)
                if len(envs) != len(batches[site]):
                    raise TransportError(f"site {site!r} answered {len(envs)} envelopes to "
                                         f"{len(batches[site])}; not a conforming party")
                out[site] = envs
            if pending:
                time.sleep(self.poll)
        self._dead.update(pending.values())
        return out

    def _open_envelope(self, site: str) -> bytes:
        raw = self._envelope(site, 0, wire.OPEN, Payload("none", meta={"session": self.session}))
        self.control_bytes += len(raw)
        return raw

    def _accept_open(self, site: str, raw: bytes) -> None:
        self.control_bytes += len(raw)
        env = Envelope.from_bytes(raw, max_bytes=self.max_envelope_bytes)
        self._guard.accept(env.header, round=0, stage=wire.OPEN, sender=site)
        m = env.payload.meta
        if m.get("site") != site or m.get("jurisdiction") != self.jurisdictions[site]:
            raise UnexpectedStage(f"the node registered as {site!r} answered as "
                                  f"{m.get('site')!r} in {m.get('jurisdiction')!r}; check "
                                  "its site.toml and the study configuration")
        key = m.get("signing_key")
        pinned = self.pinned.get(site)
        if not isinstance(key, str) or (pinned is not None and key != pinned):
            raise VerificationError(f"site {site!r} presented a signing key other than the "
                                    "one the study pins; nothing was computed")
        self.site_keys[site] = VerifyKey.from_bytes(bytes.fromhex(key))

    # ---------------------------------------------------------------- Channel

    def exchange(self, round: int, stage: str,
                 requests: Mapping[str, Payload]) -> dict[str, Payload]:
        """Deliver each request as envelope bytes and collect the parsed replies."""
        entry = RoundLog(round, stage)
        agg = self.aggregator_jurisdiction
        started = time.perf_counter()
        batches: dict[str, list[bytes]] = {}
        for site, payload in requests.items():
            raw = self._envelope(site, round, stage, payload)
            self._count(agg, self.jurisdictions[site], len(raw), entry)
            if site not in self.nodes or site in self._dead:
                continue
            opening = [] if site in self._opened else [self._open_envelope(site)]
            batches[site] = [*opening, raw]
        replies: dict[str, Payload] = {}
        for site, outs in self._roundtrip(batches).items():
            if site not in self._opened:
                self._accept_open(site, outs[0])
                self._opened.add(site)
            out = outs[-1]
            self._count(self.jurisdictions[site], agg, len(out), entry)
            self.received[site].append(hashlib.sha256(out).hexdigest())
            env = Envelope.from_bytes(out, max_bytes=self.max_envelope_bytes)
            self._guard.accept(env.header, round=round, stage=stage, sender=site)
            replies[site] = env.payload
        entry.answered = tuple(replies)
        self.log.append(entry)
        self.timings.append((round, stage, time.perf_counter() - started))
        trace = os.environ.get("SAFEFLOW_FLOWER_TRACE")
        if trace:  # a file to append one line per exchange to (benchmarks)
            with open(trace, "a") as f:
                f.write(f"safeflow exchange round={round} stage={stage} "
                        f"seconds={self.timings[-1][2]:.3f} bytes={entry.bytes_total}\n")
        return replies

    # ---------------------------------------------------------------- control

    def _control(self, stage: str, round: int, payloads: Mapping[str, Payload]
                 ) -> dict[str, Payload]:
        batches = {}
        for site, p in payloads.items():
            raw = self._envelope(site, round, stage, p)
            self.control_bytes += len(raw)
            batches[site] = [raw]
        out = {}
        for site, (raw,) in self._roundtrip(batches).items():
            self.control_bytes += len(raw)
            env = Envelope.from_bytes(raw, max_bytes=self.max_envelope_bytes)
            self._guard.accept(env.header, round=round, stage=stage, sender=site)
            out[site] = env.payload
        return out

    def cosign(self, cert: Any, origins: Sequence[str], round: int) -> Any:
        """Collect every origin's co-signature (each site checks its own records first)."""
        blob = cert.to_json()
        replies = self._control(wire.COSIGN, round, {
            s: Payload("none", blobs={"certificate": blob}) for s in origins})
        for site in origins:
            if site not in replies:
                raise VerificationError(f"site {site!r} did not co-sign in time; the release "
                                        "is withheld. Retry when the site is online")
            cert = cert.add_signature(site, replies[site].blobs.get("signature", b""))
        self._opened.difference_update(origins)
        return cert

    def cosign_many(self, certs: Sequence[Any], origins: Sequence[str], round: int
                    ) -> list[Any]:
        """Every origin co-signs several certificates of this run in one round trip (a
        batch's releases); each site checks each certificate against its own records."""
        blobs = {f"certificate:{i}": c.to_json() for i, c in enumerate(certs)}
        replies = self._control(wire.COSIGN, round, {
            s: Payload("none", blobs=blobs) for s in origins})
        out = list(certs)
        for site in origins:
            if site not in replies:
                raise VerificationError(f"site {site!r} did not co-sign in time; the releases "
                                        "are withheld. Retry when the site is online")
            got = replies[site].blobs
            for i in range(len(out)):
                out[i] = out[i].add_signature(site, got.get(f"signature:{i}", b""))
        self._opened.difference_update(origins)
        return out

    def close(self, round: int) -> None:
        """Tell every site still holding this run's session to forget it (best effort)."""
        live = sorted(self._opened - self._dead)
        self._opened.clear()
        if live:
            with contextlib.suppress(TransportError):
                self._control(wire.CLOSE, round, {s: Payload("none") for s in live})


__all__ = ["FlowerChannel"]

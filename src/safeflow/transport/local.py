"""The embedded local transport: every role in one process, every message still an envelope.

Requests and replies are serialised to envelope bytes, checked by the receiver (format,
replay, order, addressee) and counted: :attr:`LocalChannel.border_bytes` holds the bytes
that crossed each border (sender jurisdiction != receiver jurisdiction), per direction.
The aggregator sits in the destination jurisdiction.

For tests, ``dropouts`` makes sites fall silent from a given ``(round, stage)`` on, and
``tamper`` may rewrite a site's reply bytes in flight.

Examples
--------
>>> LocalChannel.__name__
'LocalChannel'
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from safeflow.envelope import DEFAULT_MAX_BYTES, Envelope, Header, Payload, ReplayGuard
from safeflow.protocols import Channel
from safeflow.runtime import AGGREGATOR, SiteRuntime


@dataclass
class RoundLog:
    """Bytes and messages of one exchange (one stage of one round)."""

    round: int
    stage: str
    messages: int = 0
    bytes_total: int = 0
    bytes_cross_border: int = 0
    answered: tuple[str, ...] = ()


@dataclass
class LocalChannel(Channel):
    """In-process :class:`~safeflow.protocols.Channel` over real envelopes."""

    study: str
    run: str
    runtimes: Mapping[str, SiteRuntime]
    jurisdictions: Mapping[str, str]
    aggregator_jurisdiction: str
    max_envelope_bytes: int = DEFAULT_MAX_BYTES
    dropouts: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    tamper: Callable[[str, int, str, bytes], bytes] | None = None
    border_bytes: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    received: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    log: list[RoundLog] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._guard = ReplayGuard(self.study, self.run, me=AGGREGATOR)
        self._dead: set[str] = set()

    def _count(self, src: str, dst: str, n: int, entry: RoundLog) -> None:
        entry.messages += 1
        entry.bytes_total += n
        if src != dst:
            self.border_bytes[(src, dst)] += n
            entry.bytes_cross_border += n

    def _alive(self, site: str, round: int, stage: str, order: tuple[str, ...]) -> bool:
        if site in self._dead:
            return False
        when = self.dropouts.get(site)
        if when is not None and (round, order.index(stage)) >= (when[0], order.index(when[1])):
            self._dead.add(site)
            return False
        return True

    def exchange(self, round: int, stage: str,
                 requests: Mapping[str, Payload]) -> dict[str, Payload]:
        """Deliver each request as envelope bytes and collect the parsed replies."""
        entry = RoundLog(round, stage)
        agg = self.aggregator_jurisdiction
        replies: dict[str, Payload] = {}
        for site, payload in requests.items():
            rt = self.runtimes[site]
            order = rt._gate.spec.stage_order
            raw = Envelope(Header(self.study, self.run, round, stage, AGGREGATOR, site),
                           payload).to_bytes()
            self._count(agg, self.jurisdictions[site], len(raw), entry)
            if not self._alive(site, round, stage, order):
                continue
            out = rt.handle(raw)
            if self.tamper is not None:
                out = self.tamper(site, round, stage, out)
            self._count(self.jurisdictions[site], agg, len(out), entry)
            self.received[site].append(hashlib.sha256(out).hexdigest())
            env = Envelope.from_bytes(out, max_bytes=self.max_envelope_bytes)
            self._guard.accept(env.header, round=round, stage=stage, sender=site)
            replies[site] = env.payload
        entry.answered = tuple(replies)
        self.log.append(entry)
        return replies

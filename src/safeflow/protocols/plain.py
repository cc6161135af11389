"""``plain``: the unprotected federated sum (baseline for tests and benchmarks).

Sites send their ring-encoded statistics in the clear; the aggregator adds them. It uses
the same encoding as ``masking`` and BFV, so all three give bit-identical results; it
differs only in what it reveals (every site's statistics, see ``protocols/plain.yaml``).

Examples
--------
>>> PlainServer.name, INPUT
('plain', 'plain_input')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from safeflow.envelope import Payload
from safeflow.errors import ProtocolError
from safeflow.protocols._base import (
    Channel,
    LocalStats,
    ServerHalf,
    SiteHalf,
    SumResult,
    bounds_meta,
)
from safeflow.protocols.encoding import RingCodec, ring_size
from safeflow.statspec import StatLayout

INPUT = "plain_input"


class PlainServer(ServerHalf):
    """Aggregator half: adds the clear vectors."""

    name = "plain"

    def _sum(self, channel: Channel, round: int, layout: StatLayout,
             request: Mapping[str, Any], bounds: tuple[float, ...]) -> SumResult:
        members = list(self.members)
        req = {"request": dict(request), "bounds": bounds_meta(bounds), "members": members}
        replies = channel.exchange(round, INPUT, {s: Payload("none", meta=req) for s in members})
        self._require(replies, INPUT)
        total = np.zeros(ring_size(layout), dtype=np.uint64)
        for site, p in replies.items():
            v = p.arrays.get("vector")
            if v is None or v.dtype != np.uint64 or v.shape != total.shape:
                raise ProtocolError(f"site {site!r} sent a malformed input vector")
            total += v
        contributors = tuple(s for s in members if s in replies)
        totals = RingCodec(layout, bounds).decode(total, n_contributors=len(contributors))
        return SumResult(totals, contributors, bounds)


class PlainSite(SiteHalf):
    """Site half: encodes and sends its statistics."""

    name = "plain"

    def _handle(self, round: int, stage: str, payload: Payload,
                local: LocalStats) -> Payload:
        if stage != INPUT:
            raise ProtocolError(f"plain has no stage {stage!r}")
        _, vec = self.encode(payload, local)
        return Payload("none", arrays={"vector": vec})

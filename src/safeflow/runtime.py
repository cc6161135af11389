"""The site runtime: what runs inside a hospital, whatever the transport.

It receives envelope bytes, checks them (format, replay, order), lets the protocol's site
half answer, computes the analysis's local statistics when a round asks for them, passes
every reply through the site's :class:`~safeflow.protocols.spec.ExportGate`, and returns
envelope bytes. The site's data never leaves this object: only statistics of the round's
public layout, protected as the spec declares, do.

The same runtime serves the in-process local transport and (later) the Flower ClientApp.

Examples
--------
>>> SiteRuntime.__name__
'SiteRuntime'
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from safeflow.analyses import analysis_from_request
from safeflow.data import Schema, SiteData
from safeflow.envelope import DEFAULT_MAX_BYTES, Envelope, Header, ReplayGuard
from safeflow.errors import ExportRefused, ProtocolError
from safeflow.protocols import ExportGate, SessionInfo, protocol_classes
from safeflow.protocols.dp import DPPlan
from safeflow.protocols.encoding import ring_size
from safeflow.statspec import StatLayout

AGGREGATOR = "aggregator"


class SiteRuntime:
    """One site's endpoint for one protocol session."""

    def __init__(self, site: str, data: SiteData, public_schema: Schema, protocol: str,
                 info: SessionInfo, *, context: Mapping[str, Any],
                 rng: Callable[[int], bytes] | None = None,
                 max_envelope_bytes: int = DEFAULT_MAX_BYTES,
                 policy_gate: Callable[[Mapping[str, Any]], Any] | None = None,
                 on_sent: Callable[[Mapping[str, Any]], None] | None = None,
                 **params: Any) -> None:
        _, site_cls = protocol_classes(protocol)
        self.site, self.info = site, info
        self._data, self._schema, self._context = data, public_schema, dict(context)
        self._half = site_cls(site, info, rng=rng, **params)
        self._gate = ExportGate(self._half_spec(protocol), site=site)
        self._guard = ReplayGuard(info.study, info.run, me=site)
        self._max = max_envelope_bytes
        self._cache: tuple[int, str, StatLayout, dict[str, np.ndarray]] | None = None
        self.rows_dropped: dict[str, int] = {}
        self._policy_gate, self._on_sent = policy_gate, on_sent
        self._public = False
        self.sent: list[str] = []

    @staticmethod
    def _half_spec(protocol: str):  # type: ignore[no-untyped-def]
        from safeflow.protocols import load_spec

        return load_spec(protocol)

    def _local(self, round: int) -> Callable[[Mapping[str, Any]],
                                             tuple[StatLayout, Mapping[str, np.ndarray]]]:
        def compute(request: Mapping[str, Any]) -> tuple[StatLayout, Mapping[str, np.ndarray]]:
            key = repr(sorted(request.items()))
            if self._cache is not None and self._cache[:2] == (round, key):
                return self._cache[2], self._cache[3]
            analysis = analysis_from_request(request)
            self._public = all(
                tuple(self._schema.column(c).classes) == ("public",) for c in analysis.columns())
            layout = analysis.layout(self._schema, self._context)
            stats = analysis.local(self._data, self._context)
            layout.check(stats)
            plan = DPPlan.for_analysis(analysis, self._schema, self._context)
            if plan is not None:  # zero what DP withholds; local mode: noise here
                stats = plan.site_prepare(stats, self._data, self._schema)
                layout = plan.layout(layout)
            self.rows_dropped = dict(self._data.drop_counts)
            self._cache = (round, key, layout, dict(stats))
            return layout, stats

        return compute

    def handle(self, raw: bytes) -> bytes:
        """Answer one request envelope with one reply envelope (or raise a typed error)."""
        env = Envelope.from_bytes(raw, max_bytes=self._max)
        h = env.header
        self._guard.accept_in_order(h, order=self._gate.spec.stage_order, sender=AGGREGATOR)
        reply = self._half.handle(h.round, h.stage, env.payload, self._local(h.round))
        size = None
        if self._cache is not None and self._cache[0] == h.round:
            size = ring_size(self._cache[2])
        self._gate.check(h.stage, reply, layout_size=size)
        crosses = self._context.get("jurisdiction") != self._context.get("destination")
        if self._policy_gate is not None:
            msg = self._gate.spec.message(h.stage, "site")
            decision = self._policy_gate({
                "protection": reply.protection, "kind": msg.content if msg else "statistics",
                "crosses_border": crosses, "destination": self._context.get("destination"),
                "public_data": self._public, "stage": h.stage})
            if not decision.allowed:
                raise ExportRefused(
                    f"export gate at {self.site!r} refused a {h.stage!r} message under "
                    f"{decision.rule}: {decision.reason}; nothing was sent. "
                    f"{decision.fix or ''}".strip(), rule=decision.rule, fix=decision.fix)
        out = Header(study=h.study, run=h.run, round=h.round, stage=h.stage,
                     sender=self.site, receiver=AGGREGATOR)
        raw = Envelope(out, reply).to_bytes()
        digest = hashlib.sha256(raw).hexdigest()
        self.sent.append(digest)
        if crosses and self._on_sent is not None:
            self._on_sent({"hash": digest, "size": len(raw), "protocol": self._gate.spec.name,
                           "stage": h.stage, "sender": self.site, "receiver": AGGREGATOR,
                           "run": h.run, "round": h.round})
        return raw

    def __reduce__(self) -> Any:
        raise ProtocolError("a site runtime holds site data and keys; it is never serialised")

"""What every secure-sum protocol shares: the channel it talks through and its two halves.

A protocol is one unit (STYLE.md item 6): a module with a ``SiteHalf`` (runs at each site)
and a ``ServerHalf`` (aggregator and customs), its stage names as constants, and a spec in
``protocols/<name>.yaml``. The server half drives; every exchange goes through a
:class:`Channel`, which a transport implements (in-process ``local``, or Flower). A site
that does not answer an exchange has dropped out; protocols decide what that means.

Rounds: round 0 is the session set-up (keys, contexts), run once; each secure sum is one
round ``r >= 1``. A round starts with an optional ``scale`` stage when some statistic has
no public bound (sites reveal only a power of two), then the protocol's input stages.

Examples
--------
>>> from safeflow.protocols import make_protocol
>>> server, site_cls = make_protocol("plain")
>>> server.spec.name
'plain'
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from safeflow.envelope import Payload
from safeflow.errors import InvalidParameter, ProtocolError, TooFewSurvivors
from safeflow.protocols.encoding import MAX_SITES, RingCodec, bound_exponent
from safeflow.protocols.spec import ProtocolSpec, load_spec
from safeflow.statspec import StatLayout

SCALE = "scale"

#: what a site needs to produce its statistics for a request: (layout, stats)
LocalStats = Callable[[Mapping[str, Any]], tuple[StatLayout, Mapping[str, np.ndarray]]]


class Channel(ABC):
    """How the server half reaches the sites (implemented by transports)."""

    @abstractmethod
    def exchange(self, round: int, stage: str,
                 requests: Mapping[str, Payload]) -> dict[str, Payload]:
        """Send one request per site; return the replies of the sites that answered."""


@dataclass(frozen=True)
class SessionInfo:
    """Public facts of a protocol session, known to every party."""

    study: str
    run: str
    sites: tuple[str, ...]
    threshold: int

    def __post_init__(self) -> None:
        n = len(self.sites)
        if not 2 <= n <= MAX_SITES:
            raise InvalidParameter(f"a federation needs 2..{MAX_SITES} sites; got {n}")
        if len(set(self.sites)) != n:
            raise InvalidParameter(f"site names must be unique; got {list(self.sites)}")
        if not 2 <= self.threshold <= n:
            raise InvalidParameter(
                f"threshold must be between 2 and the number of sites ({n}); "
                f"got {self.threshold}. A sum of one site is that site's statistics."
            )


def default_threshold(n_sites: int) -> int:
    """Default threshold: a strict majority, at least 2.

    Examples
    --------
    >>> default_threshold(2), default_threshold(3), default_threshold(10)
    (2, 2, 6)
    """
    return max(2, n_sites // 2 + 1)


@dataclass
class SumResult:
    """A decoded total and who contributed to it (customs' view, never the analyst's)."""

    totals: dict[str, np.ndarray]
    contributors: tuple[str, ...]
    bounds: tuple[float, ...]
    stats: dict[str, Any] = field(default_factory=dict)


class ServerHalf(ABC):
    """Aggregator and customs half of a protocol."""

    name: ClassVar[str]

    def __init__(self, info: SessionInfo, *, rng: np.random.Generator | None = None,
                 **params: Any) -> None:
        self.info = info
        self.spec: ProtocolSpec = load_spec(self.name)
        self.params = params
        self.members: tuple[str, ...] = info.sites
        self.rng = rng

    def setup(self, channel: Channel) -> None:  # noqa: B027 - optional hook
        """Run the session set-up stages (round 0). Default: none."""

    def secure_sum(self, channel: Channel, round: int, layout: StatLayout,
                   request: Mapping[str, Any]) -> SumResult:
        """Sum one round's statistics over the members; negotiate unknown scales first."""
        if round < 1:
            raise ProtocolError("secure-sum rounds are numbered from 1")
        bounds = self._negotiate_bounds(channel, round, layout, request)
        return self._sum(channel, round, layout, request, bounds)

    def _negotiate_bounds(self, channel: Channel, round: int, layout: StatLayout,
                          request: Mapping[str, Any]) -> tuple[float, ...]:
        missing = [s.name for s in layout.specs if s.bound is None]
        if not missing:
            return tuple(float(s.bound) for s in layout.specs)  # type: ignore[arg-type]
        replies = channel.exchange(round, SCALE, {
            s: Payload("none", meta={"request": dict(request)}) for s in self.members})
        self._require(replies, "scale")
        exps: dict[str, int] = {}
        for site, p in replies.items():
            got = p.meta.get("exponents")
            if (not isinstance(got, dict) or set(got) != set(missing)
                    or any(type(v) is not int or not -60 <= v <= 1023 for v in got.values())):
                raise ProtocolError(f"site {site!r} sent a malformed scale message")
            for k, v in got.items():
                exps[k] = max(exps.get(k, -60), v)
        self.members = tuple(s for s in self.members if s in replies)
        return tuple(float(s.bound) if s.bound is not None else math.ldexp(1.0, exps[s.name])
                     for s in layout.specs)

    def _require(self, replies: Mapping[str, Payload], stage: str) -> None:
        if len(replies) < self.info.threshold:
            raise TooFewSurvivors(
                f"only {len(replies)} of {len(self.members)} sites answered at stage {stage!r}; "
                f"the threshold is {self.info.threshold}. The run is aborted and nothing was "
                "released; retry when enough sites are online"
            )

    @abstractmethod
    def _sum(self, channel: Channel, round: int, layout: StatLayout,
             request: Mapping[str, Any], bounds: tuple[float, ...]) -> SumResult:
        """Protocol-specific input stages."""


class SiteHalf(ABC):
    """Site half of a protocol: answers the server's requests, one stage at a time."""

    name: ClassVar[str]

    def __init__(self, site: str, info: SessionInfo, *,
                 rng: Callable[[int], bytes] | None = None, **params: Any) -> None:
        self.site, self.info, self.params, self.rng = site, info, params, rng

    def handle(self, round: int, stage: str, payload: Payload,
               local: LocalStats) -> Payload:
        """Answer one request; the runtime passes the reply through the export gate."""
        if stage == SCALE:
            layout, stats = local(payload.meta["request"])
            exps = {s.name: bound_exponent(np.asarray(stats[s.name], dtype=np.float64))
                    for s in layout.specs if s.bound is None}
            return Payload("none", meta={"exponents": exps})
        return self._handle(round, stage, payload, local)

    @abstractmethod
    def _handle(self, round: int, stage: str, payload: Payload,
                local: LocalStats) -> Payload:
        """Protocol-specific stages."""

    @staticmethod
    def encode(payload: Payload, local: LocalStats) -> tuple[StatLayout, np.ndarray]:
        """Encode this round's statistics with the bounds the server announced."""
        layout, stats = local(payload.meta["request"])
        bounds = parse_bounds(payload.meta.get("bounds"), len(layout.specs))
        return layout, RingCodec(layout, bounds).encode(stats)


def bounds_meta(bounds: tuple[float, ...]) -> list[str]:
    """Bounds as exact hex strings for a JSON header (JSON numbers lose large floats).

    Examples
    --------
    >>> bounds_meta((1.0, 0.5))
    ['0x1.0000000000000p+0', '0x1.0000000000000p-1']
    """
    return [float(b).hex() for b in bounds]


def parse_bounds(raw: Any, n: int) -> tuple[float, ...]:
    """Inverse of :func:`bounds_meta`, with validation (typed error when malformed)."""
    if not isinstance(raw, list) or len(raw) != n or not all(isinstance(b, str) for b in raw):
        raise ProtocolError("the request's bounds do not match the analysis layout")
    try:
        out = tuple(float.fromhex(b) for b in raw)
    except ValueError as e:
        raise ProtocolError("the request's bounds are malformed") from e
    if not all(math.isfinite(b) and b > 0 for b in out):
        raise ProtocolError("the request's bounds must be finite and positive")
    return out

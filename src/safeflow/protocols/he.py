"""``he``: homomorphic secure sum with TenSEAL (BFV exact by default, CKKS approximate).

Roles: customs makes the context and keeps the secret key (:class:`_Customs`); sites get
the public context at set-up (stage ``he_context``, round 0) and refuse a context that is
weak or carries the secret key (:func:`~safeflow.crypto.he_context.load_public_context`);
the aggregator only adds ciphertexts under the public context (:func:`_aggregate`, which
has no secret key in reach); customs decrypts the total alone. Sites that do not answer
are left out of the sum and out of :attr:`HEServer.members`; fewer than the threshold
aborts the round (:class:`~safeflow.errors.TooFewSurvivors`).

BFV (``scheme="bfv"``, default): exact
---------------------------------------
Sites encrypt the same :class:`~safeflow.protocols.encoding.RingCodec` integers as
``plain`` and ``masking``, so the decoded totals are bit-identical to theirs. A slot holds
any sum below ``2^C`` exactly (``C = 59`` for the default 60-bit plain modulus ``t``).
:class:`SlotPacking` packs several fields per slot: a ring element of width ``w`` bits
(from ``RingCodec.widths()``) occupies fields of ``limb + carry`` bits, ``carry =
ceil(log2(members))``, so the sum over all members never leaves its field; elements wider
than ``C - carry`` are split into limbs. Counts of bound ``2^20`` (21 bits) with 10 members
take 25-bit fields, two per slot; a real is two 48-bit ring elements, one slot each. The
packing is public: both sides recompute it from the widths, the number of members and
``C`` (announced as ``packing`` at set-up). After decryption customs checks
that every field is within ``contributors · (2^limb - 1)`` and every padding bit is zero:
a damaged or invalid ciphertext decrypts to random slots and is refused, not summed.

CKKS (``scheme="ckks"``): approximate, noise-flooded
----------------------------------------------------
Sites encrypt ``layout.flatten(stats)`` with each statistic divided by ``2^e``, the power of
two at or above its bound, so every encrypted value is in ``[-1, 1]`` and the error of a
statistic is relative to its own bound. With ``M`` members and data modulus ``2^Q``
(``Q = 88`` by default) the scale is ``Δ = 2^(Q - 3 - ceil(log2 M))``, so the sum never
wraps. One fresh encryption's error in a slot is at most ``E = 12 N + 260 N / p`` (the
7-sigma bounds ``7√(N/12)·7√(2N/3) ≈ 11.5 N`` on the mod-switch rounding ``δ₁·s``, plus
``δ₀``, encoding rounding and the key-level noise divided by the special prime ``p``;
measured at ``N = 8192``: at most ``1.5 N``). Releasing a raw CKKS decryption leaks the
secret key (Li & Micciancio, EUROCRYPT 2021), so customs floods it before release: it adds
Gaussian noise of standard deviation (in units of ``2^e``) ::

    σ = max(2^(s/2) · sqrt(64 · D) · M · E / Δ,  M · 2^-40),   s = 40, D = 2^14

(the noise-flooding rule of Li, Micciancio, Schultz & Sorrell, CRYPTO 2022, for ``s`` bits
of statistical security over ``D`` decryptions; customs refuses to decrypt more than ``D``
ciphertexts under one key). The floor keeps the noise above float64 rounding (about
``M · 2^-48``). Counts are rounded to integers after flooding.

**Accuracy bound.** For a statistic with bound ``B`` (``2^(e-1) < B <= 2^e``) the released
total ``T'`` and the exact total ``T`` satisfy, with probability at least
``1 - 1.3·10^-15`` per value, ::

    |T' - T| <= 9 σ 2^e <= 18 σ B

(8σ for the flooding, at most σ for decryption error and float64 rounding). With the
defaults (``N = 8192``, ``Q = 88``) ``σ <= 5.5·10^-12 · M²``, so
``|T' - T| <= 10^-10 · M² · B``; for 10 members ``σ = 4.4·10^-10``, and counts of bound
``2^20`` are exact after rounding (``9 σ 2^20 < 0.005``).

Security caveats: IND-CPA ciphertexts protect sites from the aggregator, not from
customs colluding with it; a malicious site can still encrypt any in-range values (no
proofs of plaintext knowledge).

Examples
--------
>>> HEServer.name, CONTEXT, INPUT
('he', 'he_context', 'encrypted_input')
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import tenseal as ts  # type: ignore[import-untyped]

from safeflow.crypto.he_context import (
    SCHEMES,
    HEParams,
    context_params,
    load_public_context,
    load_vector,
    new_context,
    public_context_bytes,
)
from safeflow.envelope import Payload
from safeflow.errors import InvalidParameter, ProtocolError
from safeflow.protocols._base import (
    Channel,
    LocalStats,
    ServerHalf,
    SessionInfo,
    SiteHalf,
    SumResult,
    bounds_meta,
    parse_bounds,
)
from safeflow.protocols.encoding import RingCodec, bound_exponent
from safeflow.protocols.he_packing import (
    CKKS_HEADROOM_BITS,
    MAX_CKKS_DECRYPTIONS,
    SlotPacking,
    ckks_flood_sd,
    ckks_scale_bits,
)
from safeflow.statspec import StatLayout

CONTEXT: Final = "he_context"
INPUT: Final = "encrypted_input"
PROTECTION: Final[dict[str, str]] = {"bfv": "bfv-ciphertext", "ckks": "ckks-ciphertext"}
PACKING_RULES: Final[dict[str, str]] = {
    "bfv": "safeflow-bfv-slots-v1",
    "ckks": "safeflow-ckks-normalised-v1",
}


def _exponent(bound: float) -> int:
    """The power of two a statistic is divided by: ``bound <= 2^e``."""
    return bound_exponent(np.array([bound]))


@dataclass(frozen=True)
class _RoundPlan:
    """What both sides derive for one round: values per ciphertext and the encoding."""

    sizes: tuple[int, ...]
    packing: SlotPacking | None = None  # BFV
    exponents: np.ndarray | None = None  # CKKS, per value
    scale: float | None = None  # CKKS

    @classmethod
    def make(
        cls, params: HEParams, layout: StatLayout, bounds: Sequence[float], n_members: int
    ) -> _RoundPlan:
        if params.scheme == "bfv":
            packing = SlotPacking.plan(
                RingCodec(layout, bounds).widths(), n_members=n_members, slot_bits=params.slot_bits
            )
            return cls(_chunks(packing.n_slots, params.slots), packing=packing)
        exps = np.repeat([_exponent(b) for b in bounds], [s.size for s in layout.specs])
        return cls(
            _chunks(layout.size, params.slots),
            exponents=exps.astype(np.int64),
            scale=2.0 ** ckks_scale_bits(params.data_modulus_bits, n_members),
        )


def _chunks(total: int, per: int) -> tuple[int, ...]:
    return tuple(min(per, total - a) for a in range(0, total, per))


def _packing_meta(params: HEParams) -> dict[str, Any]:
    if params.scheme == "bfv":
        return {"rule": PACKING_RULES["bfv"], "slot_bits": params.slot_bits}
    return {"rule": PACKING_RULES["ckks"], "headroom_bits": CKKS_HEADROOM_BITS}


class _Customs:
    """Customs: the only holder of the secret key. It decrypts totals, nothing else.

    BFV totals come back as slot values modulo ``t``; CKKS totals are range-checked and
    noise-flooded here, so no raw CKKS decryption ever leaves this object.
    """

    def __init__(self, secret: Any, params: HEParams, rng: np.random.Generator | None) -> None:
        self._secret, self._params = secret, params
        self._rng = rng if rng is not None else np.random.default_rng()
        self.decryptions = 0

    def decrypt_total(
        self, blobs: Sequence[bytes], plan: _RoundPlan, *, n_members: int, n_contributors: int
    ) -> np.ndarray:
        p = self._params
        if p.scheme == "ckks" and self.decryptions + len(blobs) > MAX_CKKS_DECRYPTIONS:
            raise ProtocolError(
                f"this CKKS key has reached its budget of {MAX_CKKS_DECRYPTIONS} decrypted "
                "ciphertexts (the noise-flooding bound); start a new session so customs "
                "makes a fresh key"
            )
        self.decryptions += len(blobs)
        parts = [
            np.asarray(
                load_vector(
                    self._secret,
                    b,
                    scheme=p.scheme,
                    size=n,
                    scale=plan.scale,
                    source="the aggregate",
                ).decrypt()
            )
            for b, n in zip(blobs, plan.sizes, strict=True)
        ]
        if p.scheme == "bfv":
            v = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
            return np.where(v < 0, v + p.plain_modulus, v).astype(np.uint64)
        y = np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)
        if not np.all(np.abs(y) <= n_contributors + 2.0**-20):
            raise ProtocolError(
                "the decrypted CKKS total is outside what the bounds allow: a site sent an "
                "invalid or damaged ciphertext. Nothing was released; drop the site and "
                "rerun the round"
            )
        return y + self._rng.normal(0.0, ckks_flood_sd(p, n_members), y.size)


def _aggregate(
    public: Any, params: HEParams, plan: _RoundPlan, replies: Mapping[str, Payload]
) -> tuple[list[bytes], int]:
    """The aggregator's step: check and add the sites' ciphertexts under the public context.

    Returns the serialised sums and the number of ciphertext bytes received.
    """
    scheme = params.scheme
    names = [f"ct:{i}" for i in range(len(plan.sizes))]
    acc: list[Any] = []
    received = 0
    for site, p in replies.items():
        if (
            p.protection != PROTECTION[scheme]
            or dict(p.meta) != {"scheme": scheme}
            or p.arrays
            or set(p.blobs) != set(names)
        ):
            raise ProtocolError(
                f"site {site!r} sent a malformed {INPUT!r} message: expected "
                f"{PROTECTION[scheme]} with blobs ct:0..ct:{len(names) - 1} and scheme "
                f"{scheme!r}. Nothing was summed; drop the site or rerun the round"
            )
        vecs = [
            load_vector(
                public,
                p.blobs[n],
                scheme=scheme,
                size=size,
                scale=plan.scale,
                source=f"site {site!r} {n}",
            )
            for n, size in zip(names, plan.sizes, strict=True)
        ]
        received += sum(len(p.blobs[n]) for n in names)
        if not acc:
            acc = vecs
            continue
        try:
            for a, v in zip(acc, vecs, strict=True):
                a.add_(v)
        except Exception as e:  # SEAL refuses e.g. a transparent result
            raise ProtocolError(
                f"the ciphertexts of site {site!r} cannot be added to the others; nothing "
                "was summed: drop the site or rerun the round"
            ) from e
    return [v.serialize() for v in acc], received


class HEServer(ServerHalf):
    """Aggregator and customs half: sends the public context, adds, decrypts the total.

    Parameters
    ----------
    info : SessionInfo
    rng : numpy.random.Generator, optional
        Source of the CKKS flooding noise; default ``numpy.random.default_rng()`` (seeded
        from the OS). Encryption randomness is SEAL's own.
    scheme : {"bfv", "ckks"}
    poly_modulus_degree : int, optional
        4096 (BFV) or 8192 (CKKS) by default.
    coeff_mod_bit_sizes : sequence of int, optional
        Default ``(56, 32, 21)``; see :mod:`safeflow.crypto.he_context`.

    Examples
    --------
    >>> from safeflow.protocols import SessionInfo
    >>> s = HEServer(SessionInfo("study", "run", ("a", "b"), 2))
    >>> s.he_params.scheme, s.he_params.slot_bits
    ('bfv', 59)
    """

    name = "he"

    def __init__(
        self,
        info: SessionInfo,
        *,
        rng: np.random.Generator | None = None,
        scheme: str = "bfv",
        poly_modulus_degree: int | None = None,
        coeff_mod_bit_sizes: Sequence[int] | None = None,
        **params: Any,
    ) -> None:
        if params:
            raise InvalidParameter(
                f"unknown he parameters {sorted(params)}; the he protocol takes scheme, "
                "poly_modulus_degree and coeff_mod_bit_sizes"
            )
        super().__init__(
            info,
            rng=rng,
            scheme=scheme,
            poly_modulus_degree=poly_modulus_degree,
            coeff_mod_bit_sizes=coeff_mod_bit_sizes,
        )
        secret = new_context(
            scheme, poly_modulus_degree=poly_modulus_degree, coeff_mod_bit_sizes=coeff_mod_bit_sizes
        )
        self.he_params: HEParams = context_params(secret)
        self._customs = _Customs(secret, self.he_params, rng)
        self._context_blob = public_context_bytes(secret)
        self._public = ts.context_from(self._context_blob)
        self._ready = False

    def _replies(
        self, channel: Channel, round: int, stage: str, requests: Mapping[str, Payload]
    ) -> dict[str, Payload]:
        replies = channel.exchange(round, stage, requests)
        strangers = sorted(set(replies) - set(requests))
        if strangers:
            raise ProtocolError(f"replies at stage {stage!r} from non-members {strangers}")
        self._require(replies, stage)
        self.members = tuple(s for s in self.members if s in replies)
        return replies

    def setup(self, channel: Channel) -> None:
        """Round 0: send the public context; members that do not acknowledge it drop out."""
        blob = self._context_blob
        meta = {"scheme": self.he_params.scheme, "packing": _packing_meta(self.he_params)}
        replies = self._replies(
            channel,
            0,
            CONTEXT,
            {s: Payload("none", meta=meta, blobs={"context": blob}) for s in self.members},
        )
        digest = hashlib.sha256(blob).hexdigest()
        wrong = sorted(s for s, p in replies.items() if p.meta.get("context_sha256") != digest)
        if wrong:
            raise ProtocolError(
                f"sites {wrong} acknowledged another context than customs sent; the bytes "
                "were damaged in transit: rerun the set-up"
            )
        self._ready = True

    def _sum(
        self,
        channel: Channel,
        round: int,
        layout: StatLayout,
        request: Mapping[str, Any],
        bounds: tuple[float, ...],
    ) -> SumResult:
        if not self._ready:
            raise ProtocolError("the he session is not set up: run setup() (round 0) first")
        p, members = self.he_params, list(self.members)
        plan = _RoundPlan.make(p, layout, bounds, len(members))
        req = {"request": dict(request), "bounds": bounds_meta(bounds), "members": members}
        replies = self._replies(
            channel, round, INPUT, {s: Payload("none", meta=req) for s in members}
        )
        contributors = self.members
        summed, received = _aggregate(self._public, p, plan, {s: replies[s] for s in contributors})
        k = len(contributors)
        values = self._customs.decrypt_total(summed, plan, n_members=len(members), n_contributors=k)
        stats: dict[str, Any] = {
            "scheme": p.scheme,
            "poly_modulus_degree": p.poly_modulus_degree,
            "coeff_modulus_bits": p.coeff_modulus_bits,
            "ciphertexts_per_site": len(plan.sizes),
            "ciphertext_bytes": received,
        }
        if plan.packing is not None:
            ring = plan.packing.unpack(values, n_contributors=k)
            totals = RingCodec(layout, bounds).decode(ring, n_contributors=k)
            stats |= {
                "plain_modulus_bits": p.plain_modulus.bit_length(),
                "slots": plan.packing.n_slots,
            }
        else:
            assert plan.exponents is not None and plan.scale is not None
            flat = np.ldexp(values, plan.exponents)
            for s, a, b in layout.offsets():
                if s.kind == "count":
                    flat[a:b] = np.rint(flat[a:b])
            totals = layout.unflatten(flat)
            sd = ckks_flood_sd(p, len(members))
            stats |= {
                "scale_bits": int(math.log2(plan.scale)),
                "flood_sd": {
                    s.name: math.ldexp(sd, _exponent(b))
                    for s, b in zip(layout.specs, bounds, strict=True)
                },
            }
        return SumResult(totals, contributors, bounds, stats)


class HESite(SiteHalf):
    """Site half: checks the public context, then encrypts its statistics under it.

    The ``rng`` argument of :class:`SiteHalf` is not used: encryption randomness comes from
    SEAL's generator, seeded by the operating system.
    """

    name = "he"

    def __init__(
        self,
        site: str,
        info: SessionInfo,
        *,
        rng: Callable[[int], bytes] | None = None,
        **params: Any,
    ) -> None:
        super().__init__(site, info, rng=rng, **params)
        self._ctx: Any = None
        self._params: HEParams | None = None

    def _handle(self, round: int, stage: str, payload: Payload, local: LocalStats) -> Payload:
        if stage == CONTEXT:
            return self._accept_context(round, payload)
        if stage == INPUT:
            return self._encrypt(payload, local)
        raise ProtocolError(f"he has no stage {stage!r}")

    def _accept_context(self, round: int, payload: Payload) -> Payload:
        if round != 0:
            raise ProtocolError(f"{CONTEXT!r} belongs to the set-up (round 0), not round {round}")
        scheme = payload.meta.get("scheme")
        if scheme not in SCHEMES:
            raise ProtocolError(f"customs announced an unknown HE scheme {scheme!r}; refusing")
        blob = payload.blobs.get("context")
        ctx, params = load_public_context(blob, scheme)
        if payload.meta.get("packing") != _packing_meta(params):
            raise ProtocolError(
                "customs announced another packing rule than this site implements; update "
                "safeflow on every party to the same version"
            )
        self._ctx, self._params = ctx, params
        return Payload("none", meta={"context_sha256": hashlib.sha256(blob).hexdigest()})

    def _members(self, payload: Payload) -> list[str]:
        m = payload.meta.get("members")
        if (
            not isinstance(m, list)
            or not all(isinstance(x, str) for x in m)
            or len(set(m)) != len(m)
            or self.site not in m
            or not set(m) <= set(self.info.sites)
        ):
            raise ProtocolError(
                "the round's member list is malformed or omits this site; refusing to encrypt"
            )
        if len(m) < self.info.threshold:
            raise ProtocolError(
                f"the round has {len(m)} members, fewer than the threshold "
                f"{self.info.threshold}; refusing to encrypt"
            )
        return m

    def _encrypt(self, payload: Payload, local: LocalStats) -> Payload:
        params, ctx = self._params, self._ctx
        if params is None:
            raise ProtocolError(
                "this site has no HE context: the session set-up (he_context) did not reach "
                "it; rerun the set-up"
            )
        n_members = len(self._members(payload))
        if params.scheme == "bfv":
            layout, enc = self.encode(payload, local)
            bounds = parse_bounds(payload.meta.get("bounds"), len(layout.specs))
            plan = _RoundPlan.make(params, layout, bounds, n_members)
            assert plan.packing is not None
            v = plan.packing.pack(enc).astype(np.int64)
            t = params.plain_modulus
            v = np.where(v > (t - 1) // 2, v - t, v)  # BatchEncoder takes centred values
            make = ts.bfv_vector
            kwargs: dict[str, Any] = {}
        else:
            layout, stats = local(payload.meta["request"])
            bounds = parse_bounds(payload.meta.get("bounds"), len(layout.specs))
            RingCodec(layout, bounds).encode(stats)  # the layout and bound checks
            plan = _RoundPlan.make(params, layout, bounds, n_members)
            assert plan.exponents is not None
            v = np.ldexp(layout.flatten(stats), -plan.exponents)
            make, kwargs = ts.ckks_vector, {"scale": plan.scale}
        blobs, a = {}, 0
        for i, n in enumerate(plan.sizes):
            blobs[f"ct:{i}"] = make(ctx, v[a : a + n].tolist(), **kwargs).serialize()
            a += n
        return Payload(PROTECTION[params.scheme], meta={"scheme": params.scheme}, blobs=blobs)


__all__ = [
    "CONTEXT",
    "INPUT",
    "PACKING_RULES",
    "PROTECTION",
    "HEServer",
    "HESite",
]

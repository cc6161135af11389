"""``masking``: pairwise-masked secure sum with dropout recovery (SecAgg, Bonawitz et al. 2017).

Stages (see ``protocols/masking.yaml`` for what each message reveals):

* set-up, once per run (round 0)
    ``advertise``: each site sends two fresh X25519 public keys, ``c`` (to encrypt shares)
    and ``s`` (to agree pairwise masks).
    ``share_keys``: each site Shamir-splits (t of n) its ``s`` secret key and the
    self-mask seed of round 1, and seals each peer's shares with AES-256-GCM under a key
    derived from the ``c`` agreement; the aggregator only forwards the sealed blobs.
* each secure sum (round r >= 1)
    ``masked_input``: the site encodes its statistics in the ring mod 2^64, adds the
    self-mask ``PRG(b_r)`` and, for every other member ``v``, ``±PRG(KDF(s_u · s_v, r))``
    (``+`` when ``u < v``). The pairwise masks cancel in the sum.
    ``unmask``: for each site whose input arrived, survivors reveal their share of its
    self-mask seed; for each member that dropped before sending, their share of its mask
    key (never both for one site in a round; a site whose mask key was revealed is out of
    the session for good). Each survivor also seals shares of its next round's seed.

Masks are AES-256-CTR keystreams keyed by HKDF-SHA256 of the full 32-byte X25519 secret,
bound to the study, run, round and the pair: fresh for every round, with keys agreed only
once per run. The aggregator checks that each reconstructed mask key matches its public
key. Threat model: an honest-but-curious aggregator colluding with fewer than ``t`` sites
learns only the sum of the surviving sites' statistics.

Examples
--------
>>> MaskingServer.name, (ADVERTISE, SHARE_KEYS, INPUT, UNMASK)
('masking', ('advertise', 'share_keys', 'masked_input', 'unmask'))
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from safeflow.crypto.aead import open_sealed, seal
from safeflow.crypto.keys import X25519KeyPair, derive_key
from safeflow.crypto.prg import mask_add, mask_stream
from safeflow.crypto.shamir import Share, combine_shares, is_shareable, split_secret
from safeflow.envelope import Payload
from safeflow.errors import CryptoError, ProtocolError
from safeflow.protocols._base import (
    Channel,
    LocalStats,
    ServerHalf,
    SessionInfo,
    SiteHalf,
    SumResult,
    bounds_meta,
)
from safeflow.protocols.encoding import RingCodec, ring_size
from safeflow.statspec import StatLayout

ADVERTISE = "advertise"
SHARE_KEYS = "share_keys"
INPUT = "masked_input"
UNMASK = "unmask"
_SHARE_LEN = 33  # 1 index byte + 32 bytes (two 16-byte Shamir chunks)


def _ctx(info: SessionInfo, *parts: object) -> bytes:
    return "|".join(["safeflow-masking-v1", info.study, info.run, *map(str, parts)]).encode()


def pair_key(info: SessionInfo, shared: bytes, round: int, a: str, b: str) -> bytes:
    """The AES key of the pairwise mask of sites ``a`` and ``b`` for ``round``."""
    lo, hi = sorted((a, b))
    return derive_key(shared, context=_ctx(info, "pair", round, lo, hi))


def self_key(info: SessionInfo, seed: bytes, round: int, site: str) -> bytes:
    """The AES key of ``site``'s self-mask for ``round``, from its round seed."""
    return derive_key(seed, context=_ctx(info, "self", round, site))


def pair_mask(info: SessionInfo, shared: bytes, round: int, a: str, b: str,
              n: int) -> np.ndarray:
    """The pairwise mask of sites ``a`` and ``b`` for ``round`` (``n`` ring elements)."""
    return mask_stream(pair_key(info, shared, round, a, b), n)


def self_mask(info: SessionInfo, seed: bytes, round: int, site: str, n: int) -> np.ndarray:
    """The self-mask of ``site`` for ``round`` from its round seed."""
    return mask_stream(self_key(info, seed, round, site), n)


def _index(info: SessionInfo, site: str) -> int:
    return info.sites.index(site) + 1


class MaskingServer(ServerHalf):
    """Aggregator half: forwards sealed shares, adds masked vectors, removes the masks."""

    name = "masking"

    def __init__(self, info: SessionInfo, **params: Any) -> None:
        super().__init__(info, **params)
        self.keys: dict[str, tuple[bytes, bytes]] = {}
        self.inbox: dict[str, dict[str, bytes]] = {}

    def setup(self, channel: Channel) -> None:
        """Key advertisement and sealed share distribution (round 0)."""
        t, sites = self.info.threshold, list(self.info.sites)
        replies = channel.exchange(0, ADVERTISE, {
            s: Payload("none", meta={"sites": sites, "threshold": t}) for s in sites})
        self._require(replies, ADVERTISE)
        for site, p in replies.items():
            c_pk, s_pk = p.blobs.get("c_pk", b""), p.blobs.get("s_pk", b"")
            if len(c_pk) != 32 or len(s_pk) != 32 or c_pk == s_pk:
                raise ProtocolError(f"site {site!r} advertised malformed public keys")
            self.keys[site] = (c_pk, s_pk)
        u1 = [s for s in sites if s in replies]
        keys = {s: [self.keys[s][0].hex(), self.keys[s][1].hex()] for s in u1}
        replies = channel.exchange(0, SHARE_KEYS, {
            s: Payload("none", meta={"keys": keys, "members": u1}) for s in u1})
        self._require(replies, SHARE_KEYS)
        self._collect_sealed(replies, [s for s in u1 if s in replies])

    def _collect_sealed(self, replies: Mapping[str, Payload], members: list[str]) -> None:
        inbox: dict[str, dict[str, bytes]] = {v: {} for v in members}
        for u in members:
            blobs = replies[u].blobs
            for v in members:
                if v == u:
                    continue
                blob = blobs.get(f"to:{v}")
                if blob is None:
                    raise ProtocolError(f"site {u!r} sent no sealed shares for {v!r}")
                inbox[v][u] = blob
        self.inbox, self.members = inbox, tuple(members)

    def _sum(self, channel: Channel, round: int, layout: StatLayout,
             request: Mapping[str, Any], bounds: tuple[float, ...]) -> SumResult:
        members = list(self.members)
        meta = {"request": dict(request), "bounds": bounds_meta(bounds), "members": members}
        requests = {
            v: Payload("aead-encrypted", meta=meta,
                       blobs={f"from:{u}": b for u, b in self.inbox.get(v, {}).items()
                              if u in members})
            for v in members}
        replies = channel.exchange(round, INPUT, requests)
        self._require(replies, INPUT)
        total = np.zeros(ring_size(layout), dtype=np.uint64)
        for site, p in replies.items():
            vec = p.arrays.get("vector")
            if vec is None or vec.dtype != np.uint64 or vec.shape != total.shape:
                raise ProtocolError(f"site {site!r} sent a malformed masked vector")
            total += vec
        survivors = [s for s in members if s in replies]
        dropped = [s for s in members if s not in replies]
        replies = channel.exchange(round, UNMASK, {
            v: Payload("none", meta={"survivors": survivors, "dropped": dropped})
            for v in survivors})
        self._require(replies, UNMASK)
        self._remove_masks(total, replies, round, survivors, dropped)
        next_members = [s for s in survivors if s in replies]
        self._collect_sealed(replies, next_members)
        totals = RingCodec(layout, bounds).decode(total, n_contributors=len(survivors))
        return SumResult(totals, tuple(survivors), bounds,
                         stats={"survivors": len(survivors), "dropped": dropped})

    def _reconstruct(self, replies: Mapping[str, Payload], kind: str, site: str) -> bytes:
        shares = []
        for holder, p in replies.items():
            raw = p.blobs.get(f"{kind}:{site}")
            if raw is None:
                raise ProtocolError(f"site {holder!r} withheld its share for {site!r}")
            shares.append(Share.from_bytes(raw))
        try:
            return combine_shares(shares, self.info.threshold)
        except CryptoError as e:
            raise ProtocolError(f"could not reconstruct the {kind}-secret of {site!r}: {e}") from e

    def _remove_masks(self, total: np.ndarray, replies: Mapping[str, Payload], round: int,
                      survivors: list[str], dropped: list[str]) -> None:
        """Subtract every survivor's self-mask and every dropped site's pairwise masks."""
        for u in survivors:
            seed = self._reconstruct(replies, "b", u)
            mask_add(total, self_key(self.info, seed, round, u), subtract=True)
        for u in dropped:
            s_sk = self._reconstruct(replies, "s", u)
            kp = X25519KeyPair.from_private_bytes(s_sk)
            if kp.public_bytes != self.keys[u][1]:
                raise ProtocolError(f"reconstructed mask key of {u!r} does not match its "
                                    "public key: a share was corrupted; the run is aborted")
            for v in survivors:
                key = pair_key(self.info, kp.agree(self.keys[v][1]), round, u, v)
                # v added +m when v < u, -m otherwise: take that out of the total
                mask_add(total, key, subtract=v < u)


class MaskingSite(SiteHalf):
    """Site half: keys, sealed shares, masked input, unmask shares."""

    name = "masking"

    def __init__(self, site: str, info: SessionInfo, *,
                 rng: Callable[[int], bytes] | None = None, **params: Any) -> None:
        super().__init__(site, info, rng=rng, **params)
        self._rand = rng or secrets.token_bytes
        self._c = X25519KeyPair.generate(rng)
        self._s = X25519KeyPair.generate(rng)
        while not is_shareable(self._s.to_private_bytes()):  # probability 2^-120
            self._s = X25519KeyPair.generate(rng)
        self._peers: dict[str, tuple[bytes, bytes]] = {}
        self._chan: dict[str, bytes] = {}
        self._pair: dict[str, bytes] = {}
        self._s_shares: dict[str, bytes] = {}
        self._b_shares: dict[str, bytes] = {}
        self._seed: bytes | None = None
        self._revealed_s: set[str] = set()
        self._round = 0

    def _handle(self, round: int, stage: str, payload: Payload,
                local: LocalStats) -> Payload:
        if stage == ADVERTISE:
            return Payload("none", blobs={"c_pk": self._c.public_bytes,
                                          "s_pk": self._s.public_bytes})
        if stage == SHARE_KEYS:
            return self._share_keys(payload)
        if stage == INPUT:
            return self._masked_input(round, payload, local)
        if stage == UNMASK:
            return self._unmask(round, payload)
        raise ProtocolError(f"masking has no stage {stage!r}")

    def _aad(self, round: int, stage: str, sender: str, receiver: str) -> bytes:
        return _ctx(self.info, "seal", round, stage, sender, receiver)

    def _share_keys(self, payload: Payload) -> Payload:
        keys, members = payload.meta.get("keys"), payload.meta.get("members")
        if (not isinstance(keys, dict) or not isinstance(members, list)
                or self.site not in members or set(keys) != set(members)
                or not set(members) <= set(self.info.sites)):
            raise ProtocolError("malformed share_keys request")
        mine = [self._c.public_bytes.hex(), self._s.public_bytes.hex()]
        if keys[self.site] != mine:
            raise ProtocolError("the aggregator forwarded keys that are not this site's own")
        for v in members:
            if v != self.site:
                c_pk, s_pk = (bytes.fromhex(x) for x in keys[v])
                self._peers[v] = (c_pk, s_pk)
                self._chan[v] = derive_key(self._c.agree(c_pk),
                                           context=_ctx(self.info, "chan", *sorted((self.site, v))))
        s_shares = self._split(self._s.to_private_bytes())
        return Payload("aead-encrypted", blobs=self._seal_round_seed(0, SHARE_KEYS, members,
                                                                     s_shares))

    def _split(self, secret: bytes) -> dict[str, bytes]:
        shares = split_secret(secret, self.info.threshold, len(self.info.sites))
        return {s: shares[_index(self.info, s) - 1].to_bytes() for s in self.info.sites}

    def _seal_round_seed(self, round: int, stage: str, members: list[str],
                         prefix: dict[str, bytes] | None) -> dict[str, bytes]:
        """Draw the next round's self-mask seed and seal each peer's share (with prefix)."""
        self._seed = self._rand(32)
        while not is_shareable(self._seed):  # probability 2^-120
            self._seed = self._rand(32)
        b_shares = self._split(self._seed)
        if prefix is not None:
            self._s_shares[self.site] = prefix[self.site]
        self._b_shares[self.site] = b_shares[self.site]
        out = {}
        for v in members:
            if v == self.site:
                continue
            body = (prefix[v] if prefix is not None else b"") + b_shares[v]
            out[f"to:{v}"] = seal(self._chan[v], body, aad=self._aad(round, stage, self.site, v))
        return out

    def _masked_input(self, round: int, payload: Payload, local: LocalStats) -> Payload:
        members = payload.meta.get("members")
        if (not isinstance(members, list) or self.site not in members
                or len(members) < self.info.threshold or self._seed is None
                or round <= self._round or not set(members) <= set(self._peers) | {self.site}
                or set(members) & self._revealed_s):
            raise ProtocolError("masked_input request with an invalid member list or round; "
                                "refusing to send a masked vector")
        first = self._round == 0
        stage_sealed, round_sealed = (SHARE_KEYS, 0) if first else (UNMASK, self._round)
        for u in members:
            if u == self.site:
                continue
            blob = payload.blobs.get(f"from:{u}")
            if blob is None:
                raise ProtocolError(f"no sealed shares from {u!r} were forwarded")
            body = open_sealed(self._chan[u], blob, aad=self._aad(round_sealed, stage_sealed,
                                                                    u, self.site))
            want = 2 * _SHARE_LEN if first else _SHARE_LEN
            if len(body) != want:
                raise ProtocolError(f"sealed shares from {u!r} have the wrong length")
            if first:
                self._s_shares[u] = body[:_SHARE_LEN]
            self._b_shares[u] = body[-_SHARE_LEN:]
        _, vec = self.encode(payload, local)
        mask_add(vec, self_key(self.info, self._seed, round, self.site))
        for v in members:
            if v == self.site:
                continue
            shared = self._pair.get(v)
            if shared is None:
                shared = self._pair[v] = self._s.agree(self._peers[v][1])
            mask_add(vec, pair_key(self.info, shared, round, self.site, v),
                     subtract=self.site > v)
        self._round = round
        return Payload("masked", arrays={"vector": vec})

    def _unmask(self, round: int, payload: Payload) -> Payload:
        survivors, dropped = payload.meta.get("survivors"), payload.meta.get("dropped")
        if (round != self._round or not isinstance(survivors, list)
                or not isinstance(dropped, list) or set(survivors) & set(dropped)
                or self.site not in survivors or len(survivors) < self.info.threshold
                or not set(survivors) | set(dropped) <= set(self._b_shares)):
            raise ProtocolError("unmask request is inconsistent (a site cannot be both a "
                                "survivor and dropped; at least t survivors); refusing")
        blobs = {f"b:{u}": self._b_shares[u] for u in survivors}
        blobs |= {f"s:{u}": self._s_shares[u] for u in dropped}
        self._revealed_s |= set(dropped)
        blobs |= self._seal_round_seed(round, UNMASK, survivors, None)
        return Payload("none", blobs=blobs)

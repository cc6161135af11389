"""The ``he`` protocol: BFV bit-identical to ``plain``, CKKS within its documented bound,
weak or secret contexts refused, dropouts, and untrusted ciphertext bytes.

Every message crosses an in-process channel as envelope bytes and passes the site's
export gate, so the tests also check that the protocol sends only what ``he.yaml`` declares.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping

import numpy as np
import pytest
import tenseal as ts
from hypothesis import given, settings
from hypothesis import strategies as st

from safeflow.crypto import he_context as hc
from safeflow.envelope import Envelope, Header, Payload
from safeflow.errors import (
    EncodingOverflow,
    InsecureParameters,
    InvalidParameter,
    ProtocolError,
    TooFewSurvivors,
)
from safeflow.protocols import ExportGate, SessionInfo, he_packing, load_spec
from safeflow.protocols import he as he_mod
from safeflow.protocols._base import Channel, LocalStats, ServerHalf, SiteHalf, SumResult
from safeflow.protocols.encoding import RingCodec, ring_size
from safeflow.protocols.he import CONTEXT, INPUT, HEServer, HESite
from safeflow.protocols.he_packing import (
    SlotPacking,
    ckks_flood_sd,
    ckks_fresh_noise,
    ckks_scale_bits,
)
from safeflow.protocols.plain import PlainServer, PlainSite
from safeflow.statspec import StatLayout, StatSpec

Stats = dict[str, np.ndarray]
Tamper = Callable[[str, str, Payload], Payload | None]

LAYOUT = StatLayout(
    (
        StatSpec("n", (3,), "count", bound=2**20),
        StatSpec("sum", (2, 2), "real", bound=1e4),
        StatSpec("ss", (5,), "real", bound=None),  # negotiated by the scale stage
        StatSpec("bins", (7,), "count", bound=100),
    )
)
REQUEST = {"analysis": "test"}


# --------------------------------------------------------------------------- helpers


def _wire(p: Payload, rnd: int, stage: str, sender: str, receiver: str) -> Payload:
    env = Envelope(Header("study", "run", rnd, stage, sender, receiver), p)
    return Envelope.from_bytes(env.to_bytes()).payload


class WireChannel(Channel):
    """Plays every site in-process; messages cross as envelope bytes through the gate."""

    def __init__(
        self,
        sites: Mapping[str, SiteHalf],
        local: Mapping[str, LocalStats],
        *,
        layout: StatLayout,
        tamper: Tamper | None = None,
    ) -> None:
        self.sites, self.local, self.tamper = sites, local, tamper
        self.ring_size = ring_size(layout)
        self.drop: set[str] = set()
        self.gates = {n: ExportGate(load_spec(s.name), site=n) for n, s in sites.items()}

    def exchange(
        self, round: int, stage: str, requests: Mapping[str, Payload]
    ) -> dict[str, Payload]:
        out = {}
        for name, req in requests.items():
            if name in self.drop:
                continue
            req = _wire(req, round, stage, "aggregator", name)
            reply = self.sites[name].handle(round, stage, req, self.local[name])
            self.gates[name].check(stage, reply, layout_size=self.ring_size)
            reply = _wire(reply, round, stage, name, "aggregator")
            if self.tamper is not None:
                reply = self.tamper(name, stage, reply)  # type: ignore[assignment]
            if reply is not None:
                out[name] = reply
        return out


def random_stats(layout: StatLayout, rng: np.random.Generator, scale: float = 1.0) -> Stats:
    out: Stats = {}
    for s in layout.specs:
        b = s.bound if s.bound is not None else 3e7
        if s.kind == "count":
            out[s.name] = rng.integers(0, int(b) + 1, s.shape).astype(np.float64)
        else:
            out[s.name] = rng.uniform(-b, b, s.shape) * scale
    return out


def session(
    server_cls: type[ServerHalf],
    site_cls: type[SiteHalf],
    stats: Mapping[str, Stats],
    *,
    layout: StatLayout = LAYOUT,
    threshold: int = 2,
    tamper: Tamper | None = None,
    **params: object,
) -> tuple[ServerHalf, WireChannel]:
    names = tuple(stats)
    info = SessionInfo("study", "run", names, threshold)
    server = server_cls(info, **params)
    sites = {n: site_cls(n, info) for n in names}
    local = {n: (lambda req, n=n: (layout, stats[n])) for n in names}
    return server, WireChannel(sites, local, layout=layout, tamper=tamper)


def run(
    server_cls: type[ServerHalf],
    site_cls: type[SiteHalf],
    stats: Mapping[str, Stats],
    *,
    layout: StatLayout = LAYOUT,
    drop: Iterable[str] = (),
    **kw: object,
) -> SumResult:
    server, ch = session(server_cls, site_cls, stats, layout=layout, **kw)
    server.setup(ch)
    ch.drop = set(drop)
    return server.secure_sum(ch, 1, layout, REQUEST)


def assert_identical(a: SumResult, b: SumResult) -> None:
    assert a.contributors == b.contributors and a.bounds == b.bounds
    assert set(a.totals) == set(b.totals)
    for k, v in a.totals.items():
        assert v.dtype == b.totals[k].dtype and v.shape == b.totals[k].shape
        assert v.tobytes() == b.totals[k].tobytes(), k  # bit for bit


def sites_stats(n: int, seed: int, layout: StatLayout = LAYOUT) -> dict[str, Stats]:
    rng = np.random.default_rng(seed)
    return {f"site{i}": random_stats(layout, rng) for i in range(n)}


# --------------------------------------------------------------------------- docs


def test_public_functions_have_examples() -> None:
    for mod in (hc, he_mod, he_packing):
        for public in mod.__all__:
            obj = getattr(mod, public)
            if callable(obj) and not isinstance(obj, type):
                assert ">>> " in (obj.__doc__ or ""), f"{mod.__name__}.{public}"


# --------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"poly_modulus_degree": 2048}, r"2048 is below 128-bit security; use 4096"),
        ({"poly_modulus_degree": 1024}, r"below 128-bit security; use 4096"),
        (
            {"coeff_mod_bit_sizes": (40, 40, 30)},
            r"110-bit .*\(at most 109 bits\); use "
            r"poly_modulus_degree 8192 or fewer",
        ),
        (
            {"scheme": "ckks", "coeff_mod_bit_sizes": (60,) * 4},
            r"240-bit .*\(at most 218 bits\); "
            r"use poly_modulus_degree 16384",
        ),
        ({"scheme": "bgv"}, r"unknown HE scheme 'bgv'; use 'bfv' \(exact, the default\) or 'ckks'"),
    ],
)
def test_weak_parameters_are_refused(kw: dict[str, object], match: str) -> None:
    with pytest.raises(InsecureParameters, match=match):
        HEServer(SessionInfo("s", "r", ("a", "b"), 2), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"poly_modulus_degree": 6000}, "power of two"),
        ({"poly_modulus_degree": 65536}, "not supported; use 4096"),
        ({"coeff_mod_bit_sizes": (88,)}, "at least two prime sizes"),
        ({"coeff_mod_bit_sizes": (20, 20, 21)}, "plain modulus only; use larger data primes"),
        ({"min_contributors": 2}, r"unknown he parameters \['min_contributors'\]"),
    ],
)
def test_invalid_parameters(kw: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidParameter, match=match):
        HEServer(SessionInfo("s", "r", ("a", "b"), 2), **kw)  # type: ignore[arg-type]


def test_the_security_table_holds_at_every_degree() -> None:
    for n, limit in hc.SECURITY_TABLE.items():
        hc.check_security("ckks", n, limit)
        with pytest.raises(InsecureParameters):
            hc.check_security("ckks", n, limit + 1)


def test_miller_rabin_agrees_with_a_sieve() -> None:
    n = 20000
    sieve = np.ones(n, dtype=bool)
    sieve[:2] = False
    for i in range(2, int(n**0.5) + 1):
        sieve[i * i :: i] = False
    assert [hc.is_prime(i) for i in range(n)] == sieve.tolist()
    # strong pseudoprimes to several small bases, and known primes near 2^60, 2^64
    assert not any(hc.is_prime(x) for x in (2047, 3215031751, 3825123056546413051))
    assert hc.is_prime(2**61 - 1) and hc.is_prime(2**64 - 59)


@pytest.mark.parametrize("n", sorted(hc.SECURITY_TABLE))
def test_default_plain_modulus_is_a_60_bit_batching_prime(n: int) -> None:
    t = hc.batching_prime(hc.plain_modulus_bits(n, hc.DEFAULT_COEFF_MOD_BIT_SIZES), n)
    assert t.bit_length() == 60 and t % (2 * n) == 1 and hc.is_prime(t)
    # largest such prime: no prime between t and 2^60 in the progression
    assert not any(hc.is_prime(x) for x in range(t + 2 * n, 1 << 60, 2 * n))


def test_bfv_noise_budget_covers_1024_additions_with_margin() -> None:
    """Doubling a ciphertext doubles its noise: 2^10 = 1024 additions, plus 10 bits more."""
    secret = hc.new_context("bfv")
    t = hc.context_params(secret).plain_modulus
    vals = np.random.default_rng(0).integers(-(t // 2), t // 2, 4096)
    v = ts.bfv_vector(ts.context_from(hc.public_context_bytes(secret)), vals.tolist())
    for _ in range(20):
        v = v + v
    got = np.array(ts.bfv_vector_from(secret, v.serialize()).decrypt(), dtype=object)
    assert np.all(got % t == (vals.astype(object) << 20) % t)


# --------------------------------------------------------------------------- packing


def test_counts_pack_two_per_slot_and_real_limbs_one() -> None:
    widths = RingCodec(LAYOUT, (2**20, 1e4, 1.0, 100)).widths()
    p = SlotPacking.plan(widths, n_members=10, slot_bits=59)
    by_start = {c.start: c for c in p.columns}
    assert (by_start[0].field_bits, by_start[0].per_slot) == (25, 2)  # 21 + 4 carry bits
    assert (by_start[3].bits, by_start[3].per_slot) == (48, 1)  # low limbs of "sum"
    assert (by_start[7].bits, by_start[7].per_slot) == (48, 1)  # high limbs
    assert (by_start[21].field_bits, by_start[21].per_slot) == (11, 5)  # 7 + 4
    assert p.n_slots == 2 + 8 + 10 + 2


@st.composite
def _packing_case(draw: st.DrawFn) -> tuple[list[tuple[int, int, int]], int, np.ndarray]:
    widths, pos = [], 0
    for w in draw(st.lists(st.integers(1, 64), min_size=1, max_size=5)):
        n = draw(st.integers(0, 9))
        widths.append((pos, pos + n, w))
        pos += n
    members = draw(st.integers(1, 1024))
    k = draw(st.integers(1, min(members, 6)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    vals = np.zeros((k, pos), dtype=np.uint64)
    for a, b, w in widths:
        hi = np.uint64(2**w - 1)
        vals[:, a:b] = rng.integers(0, hi, (k, b - a), dtype=np.uint64, endpoint=True)
    return widths, members, vals


@settings(max_examples=200, deadline=None)
@given(_packing_case(), st.sampled_from([59, 40, 20]))
def test_packing_sums_unpack_to_the_ring_sum(case: tuple, slot_bits: int) -> None:
    widths, members, vals = case
    if slot_bits - (members - 1).bit_length() < 1:
        return
    p = SlotPacking.plan(widths, n_members=members, slot_bits=slot_bits)
    slots = sum((p.pack(v) for v in vals), np.zeros(p.n_slots, np.uint64))
    assert np.all(slots < np.uint64(2**slot_bits))  # every sum fits below t
    assert np.array_equal(
        p.unpack(slots, n_contributors=len(vals)), vals.sum(axis=0, dtype=np.uint64)
    )


def test_packing_refuses_out_of_range_slots() -> None:
    p = SlotPacking.plan([(0, 3, 21)], n_members=10, slot_bits=59)
    good = p.pack(np.array([1, 2, 3], np.uint64))
    for bad in (good | np.uint64(1 << 58), good + np.array([0, 2**25], np.uint64)):
        with pytest.raises(ProtocolError, match="outside what the packing allows"):
            p.unpack(bad, n_contributors=1)
    with pytest.raises(EncodingOverflow):
        p.pack(np.array([1, 2, 2**21], np.uint64))


# --------------------------------------------------------------------------- BFV


@settings(max_examples=8, deadline=None)
@given(st.integers(2, 5), st.integers(0, 2**32 - 1))
def test_bfv_is_bit_identical_to_plain(n_sites: int, seed: int) -> None:
    stats = sites_stats(n_sites, seed)
    he = run(HEServer, HESite, stats)
    assert_identical(he, run(PlainServer, PlainSite, stats))
    assert he.contributors == tuple(stats)


def test_bfv_round_facts() -> None:
    res = run(HEServer, HESite, sites_stats(3, 1))
    assert res.stats == {
        "scheme": "bfv",
        "poly_modulus_degree": 4096,
        "coeff_modulus_bits": 109,
        "plain_modulus_bits": 60,
        "ciphertexts_per_site": 1,
        "slots": 22,
        "ciphertext_bytes": res.stats["ciphertext_bytes"],
    }


def test_bfv_multiple_ciphertexts_and_rounds() -> None:
    layout = StatLayout(
        (StatSpec("c", (9000,), "count", bound=2**20), StatSpec("r", (2000,), "real", bound=50.0))
    )
    stats = sites_stats(3, 7, layout)
    server, ch = session(HEServer, HESite, stats, layout=layout)
    server.setup(ch)
    plain = run(PlainServer, PlainSite, stats, layout=layout)
    for rnd in (1, 2):
        res = server.secure_sum(ch, rnd, layout, REQUEST)
        assert res.stats["ciphertexts_per_site"] == 3  # 4500 + 2 * 2000 slots
        assert_identical(res, plain)


def test_bfv_bytes_per_count_meet_the_target() -> None:
    """Counts of bound 2^20, 10 sites: at most 3x the 8 bytes of a raw float64."""
    layout = StatLayout((StatSpec("c", (8192,), "count", bound=2**20),))
    stats = sites_stats(10, 3, layout)
    res = run(HEServer, HESite, stats, layout=layout)
    per_value = res.stats["ciphertext_bytes"] / (10 * 8192)
    assert res.stats["ciphertexts_per_site"] == 1
    assert per_value <= 3 * 8, per_value


def test_bfv_dropout_in_the_round() -> None:
    stats = sites_stats(4, 11)
    server, ch = session(HEServer, HESite, stats, threshold=3)
    server.setup(ch)
    ch.drop = {"site2"}
    res = server.secure_sum(ch, 1, LAYOUT, REQUEST)
    assert server.members == ("site0", "site1", "site3")
    rest = {k: v for k, v in stats.items() if k != "site2"}
    assert_identical(res, run(PlainServer, PlainSite, rest))


def test_bfv_dropout_at_setup() -> None:
    stats = sites_stats(4, 12)
    server, ch = session(HEServer, HESite, stats, threshold=3)
    ch.drop = {"site0"}
    server.setup(ch)
    assert server.members == ("site1", "site2", "site3")
    ch.drop = set()
    res = server.secure_sum(ch, 1, LAYOUT, REQUEST)
    assert res.contributors == ("site1", "site2", "site3")


def test_too_few_survivors_aborts() -> None:
    server, ch = session(HEServer, HESite, sites_stats(4, 13), threshold=3)
    server.setup(ch)
    ch.drop = {"site0", "site3"}
    with pytest.raises(TooFewSurvivors, match=r"threshold is 3.*nothing was\s+released"):
        server.secure_sum(ch, 1, LAYOUT, REQUEST)


def test_sum_before_setup_is_refused() -> None:
    server, ch = session(HEServer, HESite, sites_stats(2, 0))
    with pytest.raises(ProtocolError, match="run setup\\(\\) \\(round 0\\) first"):
        server.secure_sum(ch, 1, LAYOUT, REQUEST)


def test_context_digest_mismatch_is_refused() -> None:
    def lie(site: str, stage: str, p: Payload) -> Payload:
        return Payload("none", meta={"context_sha256": "0" * 64}) if stage == CONTEXT else p

    server, ch = session(HEServer, HESite, sites_stats(2, 0), tamper=lie)
    with pytest.raises(ProtocolError, match="another context than customs sent"):
        server.setup(ch)


def test_the_aggregator_holds_only_the_public_key() -> None:
    server = HEServer(SessionInfo("s", "r", ("a", "b"), 2))
    assert not server._public.is_private()
    assert server._customs._secret.is_private()
    assert not ts.context_from(server._context_blob).is_private()


# --------------------------------------------------------------------------- site checks


def _context_request(blob: bytes, scheme: str = "bfv", **meta: object) -> Payload:
    packing = meta.pop(
        "packing",
        {"rule": he_mod.PACKING_RULES[scheme], "slot_bits": 59}
        if scheme == "bfv"
        else {"rule": he_mod.PACKING_RULES["ckks"], "headroom_bits": 3},
    )
    return Payload(
        "none", meta={"scheme": scheme, "packing": packing, **meta}, blobs={"context": blob}
    )


def _site() -> HESite:
    return HESite("a", SessionInfo("s", "r", ("a", "b"), 2))


def _no_local(request: Mapping[str, object]) -> tuple[StatLayout, Stats]:
    raise AssertionError("the site must refuse before computing anything")


def test_site_refuses_a_context_with_the_secret_key() -> None:
    secret = hc.new_context("bfv")
    req = _context_request(secret.serialize(save_secret_key=True))
    with pytest.raises(ProtocolError) as e:
        _site().handle(0, CONTEXT, req, _no_local)
    assert str(e.value) == "customs sent a context with its secret key; refusing"


def test_site_refuses_a_weak_context_before_encrypting() -> None:
    weak = ts.context(ts.SCHEME_TYPE.BFV, 2048, plain_modulus=12289, coeff_mod_bit_sizes=[27, 27])
    site = _site()
    blob = weak.serialize(save_secret_key=False)
    with pytest.raises(InsecureParameters, match="2048 is below 128-bit security"):
        site.handle(0, CONTEXT, _context_request(blob), _no_local)
    req = Payload("none", meta={"request": {}, "bounds": ["0x1p0"], "members": ["a", "b"]})
    with pytest.raises(ProtocolError, match="no HE context"):
        site.handle(1, INPUT, req, _no_local)


@pytest.mark.parametrize(
    ("req", "match"),
    [
        (_context_request(b"not a context"), "not a TenSEAL context"),
        (Payload("none", meta={"scheme": "bfv", "packing": {}}), "no context bytes"),
        (_context_request(b"x", scheme="bgv"), "unknown HE scheme"),
        (
            _context_request(hc.public_context_bytes(hc.new_context("ckks")), scheme="bfv"),
            "announced scheme 'bfv' but sent a 'ckks' context",
        ),
        (
            _context_request(
                hc.public_context_bytes(hc.new_context("bfv")),
                packing={"rule": "other", "slot_bits": 59},
            ),
            "another packing rule",
        ),
    ],
)
def test_site_refuses_bad_context_messages(req: Payload, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        _site().handle(0, CONTEXT, req, _no_local)


@pytest.mark.parametrize(
    "members", [["b"], ["a", "a", "b"], ["a", "z"], "ab", ["a"], [{"a": 1}, "a", "b"]]
)
def test_site_refuses_a_bad_member_list(members: object) -> None:
    site = HESite("a", SessionInfo("s", "r", ("a", "b", "c"), 2))
    site.handle(
        0, CONTEXT, _context_request(hc.public_context_bytes(hc.new_context("bfv"))), _no_local
    )
    req = Payload("none", meta={"request": {}, "bounds": ["0x1p0"], "members": members})
    with pytest.raises(ProtocolError, match=r"member list|fewer than the threshold"):
        site.handle(1, INPUT, req, _no_local)


# --------------------------------------------------------------------------- untrusted bytes


def _tamper_ct(kind: str) -> Tamper:
    other = ts.bfv_vector(hc.new_context("bfv"), [5] * 13).serialize()  # another key
    ckks = ts.ckks_vector(hc.new_context("ckks"), [0.5] * 13, scale=2.0**40).serialize()

    def tamper(site: str, stage: str, p: Payload) -> Payload:
        if site != "site1" or stage != INPUT:
            return p
        blobs = dict(p.blobs)
        ct = blobs["ct:0"]
        rng = np.random.default_rng(5)
        blobs["ct:0"] = {
            "truncated": ct[: len(ct) // 2],
            "empty": b"",
            "random": rng.bytes(len(ct)),
            "other_key": other,
            "other_scheme": ckks,
            "prefix": ct[:40],
        }.get(kind, ct)
        if kind == "missing":
            del blobs["ct:0"]
        if kind == "extra":
            blobs["ct:1"] = ct
        prot = "ckks-ciphertext" if kind == "protection" else p.protection
        return Payload(prot, meta=p.meta, blobs=blobs)

    return tamper


@pytest.mark.parametrize(
    "kind",
    [
        "truncated",
        "empty",
        "random",
        "prefix",
        "other_key",
        "other_scheme",
        "missing",
        "extra",
        "protection",
    ],
)
def test_malformed_ciphertexts_are_refused(kind: str) -> None:
    server, ch = session(HEServer, HESite, sites_stats(3, 21), tamper=_tamper_ct(kind))
    server.setup(ch)
    with pytest.raises(ProtocolError, match=r"site1|outside what the packing allows"):
        server.secure_sum(ch, 1, LAYOUT, REQUEST)


def test_bit_flips_never_give_a_silent_wrong_sum() -> None:
    stats = sites_stats(3, 22)
    expected = run(PlainServer, PlainSite, stats)
    rng = np.random.default_rng(99)
    outcomes = {"refused": 0, "exact": 0}
    server, ch = session(HEServer, HESite, stats)
    server.setup(ch)
    for rnd in range(1, 41):
        pos, bit = int(rng.integers(0, 90_000)), int(rng.integers(0, 8))

        def flip(site: str, stage: str, p: Payload, pos: int = pos, bit: int = bit) -> Payload:
            if site != "site0" or stage != INPUT:
                return p
            raw = bytearray(p.blobs["ct:0"])
            raw[pos % len(raw)] ^= 1 << bit
            return Payload(p.protection, meta=p.meta, blobs={"ct:0": bytes(raw)})

        ch.tamper = flip
        server.members = tuple(stats)
        try:
            res = server.secure_sum(ch, rnd, LAYOUT, REQUEST)
        except ProtocolError:
            outcomes["refused"] += 1
        else:
            assert_identical(res, expected)  # a flip lost in the noise: still exact
            outcomes["exact"] += 1
    assert outcomes["refused"] > 0


# --------------------------------------------------------------------------- CKKS


@pytest.fixture(scope="module")
def ckks_run() -> tuple[dict[str, Stats], SumResult, HEServer]:
    layout = StatLayout(
        (
            StatSpec("n", (50,), "count", bound=2**20),
            StatSpec("x", (4000,), "real", bound=1000.0),
            StatSpec("y", (4242,), "real", bound=None),
        )
    )
    stats = sites_stats(10, 31, layout)
    server, ch = session(
        HEServer, HESite, stats, layout=layout, scheme="ckks", rng=np.random.default_rng(2024)
    )
    server.setup(ch)
    return stats, server.secure_sum(ch, 1, layout, REQUEST), server  # type: ignore[return-value]


def test_ckks_meets_its_accuracy_bound(ckks_run: tuple) -> None:
    stats, res, server = ckks_run
    m = 10
    sd = ckks_flood_sd(server.he_params, m)
    assert sd <= 5.5e-12 * m**2  # the module docstring's figure for the defaults
    exact = {k: sum(s[k] for s in stats.values()) for k in res.totals}
    for (name, total), bound in zip(res.totals.items(), res.bounds, strict=True):
        err = np.abs(total - exact[name])
        e = math.ceil(math.log2(bound))
        assert np.all(err <= 9 * sd * 2.0**e)
        assert np.all(err <= 1e-10 * m**2 * bound)
    assert res.totals["n"].dtype == np.int64
    assert np.array_equal(res.totals["n"], exact["n"].astype(np.int64))  # exact counts
    assert res.stats["scheme"] == "ckks" and res.stats["scale_bits"] == 81
    assert res.stats["flood_sd"]["x"] == sd * 1024


def test_ckks_noise_is_flooded_at_the_documented_level(ckks_run: tuple) -> None:
    stats, res, _ = ckks_run
    z = [
        (res.totals[k] - sum(s[k] for s in stats.values())) / res.stats["flood_sd"][k]
        for k in ("x", "y")
    ]
    z = np.concatenate(z)
    assert z.size > 8000
    assert 0.95 < z.std() < 1.05 and abs(z.mean()) < 0.05


@pytest.mark.parametrize("scale_bits", [40, None])
def test_ckks_decryption_error_is_below_the_estimate(
    ckks_run: tuple, scale_bits: int | None
) -> None:
    """Raw errors of a 10-site sum stay below ``M E / Δ + M 2^-48``, which the flooding
    exceeds by 2^8 at least. At scale 2^40 the key noise ``E`` shows; at the protocol's
    scale (2^81) float64 rounding does."""
    _, _, server = ckks_run
    p, m = server.he_params, 10
    pub = ts.context_from(server._context_blob)
    x = np.random.default_rng(4).uniform(-1, 1, p.slots)
    scale = scale_bits or ckks_scale_bits(p.data_modulus_bits, m)
    acc = None
    for _ in range(m):
        v = ts.ckks_vector(pub, x.tolist(), scale=2.0**scale)
        acc = v if acc is None else acc + v
    raw = np.array(ts.ckks_vector_from(server._customs._secret, acc.serialize()).decrypt())
    worst = np.max(np.abs(raw - m * x))
    key_noise = m * ckks_fresh_noise(p.poly_modulus_degree, p.special_modulus_bits)
    assert worst <= key_noise * 2.0**-scale + m * 2.0**-48
    if scale_bits is None:
        assert ckks_flood_sd(p, m) >= 2**8 * (key_noise * 2.0**-scale + m * 2.0**-48)


def test_ckks_decryption_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(he_mod, "MAX_CKKS_DECRYPTIONS", 2)
    server, ch = session(HEServer, HESite, sites_stats(2, 0), scheme="ckks")
    server.setup(ch)
    server.secure_sum(ch, 1, LAYOUT, REQUEST)
    server.secure_sum(ch, 2, LAYOUT, REQUEST)
    with pytest.raises(ProtocolError, match="budget of 2 decrypted ciphertexts"):
        server.secure_sum(ch, 3, LAYOUT, REQUEST)


def test_ckks_values_beyond_their_bound_never_leave_the_site() -> None:
    stats = sites_stats(2, 0)
    stats["site1"]["sum"][0, 0] = 2e4
    with pytest.raises(EncodingOverflow, match="exceeds its public bound"):
        run(HEServer, HESite, stats, scheme="ckks")


def test_ckks_refuses_a_garbled_total() -> None:
    """A ciphertext under another key decrypts to noise far beyond the bounds."""
    other = hc.new_context("ckks")

    def swap(site: str, stage: str, p: Payload) -> Payload:
        if site != "site0" or stage != INPUT:
            return p
        ct = ts.ckks_vector(other, [0.0] * 19, scale=2.0**82).serialize()
        return Payload(p.protection, meta=p.meta, blobs={"ct:0": ct})

    with pytest.raises(ProtocolError, match=r"wrong CKKS scale|outside what the bounds allow"):
        run(HEServer, HESite, sites_stats(2, 0), scheme="ckks", tamper=swap)


# --------------------------------------------------------------------------- speed


@pytest.mark.slow
def test_encrypting_a_million_counts_takes_seconds() -> None:
    layout = StatLayout((StatSpec("c", (10**6,), "count", bound=2**20),))
    stats = {"site0": {"c": np.ones(10**6)}}
    info = SessionInfo("s", "r", ("site0", "site1"), 2)
    server = HEServer(info)
    site = HESite("site0", info)
    site.handle(0, CONTEXT, _context_request(server._context_blob), _no_local)
    req = Payload(
        "none", meta={"request": {}, "bounds": [(2.0**20).hex()], "members": ["site0", "site1"]}
    )
    t0 = time.perf_counter()
    reply = site.handle(1, INPUT, req, lambda r: (layout, stats["site0"]))
    assert time.perf_counter() - t0 < 30
    assert len(reply.blobs) == math.ceil(10**6 / 2 / 4096)

"""Secure sum of a large vector across many sites, per protocol, against numpy's plain sum.

What is measured
----------------
Each of ``K`` sites (default 10) holds a vector of ``N`` values (default 10**6), in two
kinds: ``counts`` (integers in ``[0, 2**20]``, a ``count`` statistic with bound ``2**20``)
and ``reals`` (uniform in ``[-1e6, 1e6]``, a ``real`` statistic with bound ``1e6``). For
every protocol (``plain``, ``masking``, ``he`` with BFV and with CKKS) the benchmark drives
the protocol's two halves directly, through a timing :class:`~safeflow.protocols.Channel`
that does what the local transport does (every request and reply is a real, serialised
and re-parsed :class:`~safeflow.envelope.Envelope`, replay-checked, and every reply passes
the site's export gate) and in addition times each site separately.

* **critical-path time** of one secure sum: for each stage, the slowest site's time (as if
  sites ran in parallel, each on its own machine), summed over the stages, plus the
  aggregator's time (the wall time of the sum minus all site time: building and parsing
  envelopes on its side, adding, unmasking or decrypting, decoding). Divided by numpy's
  plain sum of the same ``K`` float64 arrays (the faster of ``np.sum(np.stack(...), 0)``
  and a loop of ``+=``, median of several repeats, measured in the same run).
* **bytes crossing borders** of one secure sum, site -> aggregator and aggregator -> site,
  divided by the raw float64 bytes ``K * N * 8``. Every site is taken to be in a different
  jurisdiction from the aggregator, so every site<->aggregator byte counts.
* **set-up** (round 0: masking's key advertisement and sealed key shares; HE key
  generation and public-context distribution), once per session, reported separately and
  excluded from the per-sum figures. Each session then runs ``R`` sums (rounds 1..R) and
  the per-sum figures are medians over them.
* **what bounds the figures**: the AES-256-CTR keystream rate of
  :func:`safeflow.crypto.prg.mask_stream` and how many keystreams each party expands per
  sum (masking), and the ciphertext expansion in bytes per value (HE).

Every sum is checked: exact protocols must reproduce the exact fixed-point sum bit for
bit; CKKS must lie within its documented error bound. A wrong sum stops the benchmark.

How to run
----------
::

    .venv/bin/python benchmarks/secure_sum.py              # 10 sites x 10**6 values, ~minutes
    .venv/bin/python benchmarks/secure_sum.py --quick      # 3 sites x 10**4 values, seconds
    .venv/bin/python benchmarks/secure_sum.py --values 100000 --sites 5 --repeats 5 \\
        --out /tmp/secure_sum.md

The results (a markdown table, the exact command, the machine and the date) are written
to ``--out`` (default ``benchmarks/results/secure_sum.md``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import math
import os
import shlex
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _machine
import numpy as np

from safeflow.crypto.prg import mask_stream
from safeflow.crypto.shamir import combine_shares, split_secret
from safeflow.envelope import Envelope, Header, Payload, ReplayGuard
from safeflow.protocols import (
    Channel,
    ExportGate,
    ServerHalf,
    SessionInfo,
    SiteHalf,
    SumResult,
    default_threshold,
    load_spec,
    protocol_classes,
)
from safeflow.protocols.encoding import RingCodec, real_frac_bits, ring_size
from safeflow.statspec import StatLayout, StatSpec

AGGREGATOR = "aggregator"
COUNT_BOUND = 2**20
REAL_BOUND = 1e6
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "secure_sum.md"
KINDS = ("counts", "reals", "reals-ext")
#: real precision per kind: "double" (one ring element per value, quantum bound * 2^-52)
#: for a vector whose values are of the order of their bound; "extended" (two elements,
#: quantum bound * 2^-94) is what row sums with pessimistic bounds use.
PRECISION = {"reals": "double", "reals-ext": "extended"}


@dataclass(frozen=True)
class Variant:
    """One protocol configuration: a label, the protocol name and its parameters."""

    label: str
    protocol: str
    params: Mapping[str, Any] = field(default_factory=dict)


VARIANTS = (
    Variant("plain", "plain"),
    Variant("masking", "masking"),
    Variant("he-bfv", "he", {"scheme": "bfv"}),
    Variant("he-ckks", "he", {"scheme": "ckks"}),
)

#: per-sum targets from the issue: label -> kind -> (max time ratio, max bytes ratio)
TARGETS: dict[str, dict[str, tuple[float, float]]] = {
    "masking": {"counts": (10.0, 1.0), "reals": (10.0, 1.0)},
    "he-bfv": {"counts": (100.0, 3.0)},
}


def log(msg: str) -> None:
    """Progress on stderr (the results go to the markdown file)."""
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- channel


@dataclass
class StageLog:
    """One exchange: per-site time (s) and bytes in each direction, and blob sizes."""

    round: int
    stage: str
    site_s: dict[str, float] = field(default_factory=dict)
    down: dict[str, int] = field(default_factory=dict)
    up: dict[str, int] = field(default_factory=dict)
    up_blobs: dict[str, list[int]] = field(default_factory=dict)


class TimingChannel(Channel):
    """The local transport's envelope path, with each site's work timed on its own.

    Site time covers parsing and replay-checking the request envelope, the site half's
    ``handle`` (encoding, masking or encrypting), the export gate and serialising the
    reply. Everything else in the exchange (serialising requests, parsing and checking
    replies) is the aggregator's, and is counted in its time by the caller.
    """

    def __init__(self, info: SessionInfo, halves: Mapping[str, SiteHalf],
                 local: Mapping[str, Callable[[Mapping[str, Any]],
                                              tuple[StatLayout, Mapping[str, np.ndarray]]]],
                 protocol: str) -> None:
        self.info, self.halves, self.local = info, halves, local
        spec = load_spec(protocol)
        self.order = spec.stage_order
        self.gates = {s: ExportGate(spec, site=s) for s in halves}
        self.site_guards = {s: ReplayGuard(info.study, info.run, me=s) for s in halves}
        self.guard = ReplayGuard(info.study, info.run, me=AGGREGATOR)
        self.layout_size: int | None = None
        self.log: list[StageLog] = []

    def exchange(self, round: int, stage: str,
                 requests: Mapping[str, Payload]) -> dict[str, Payload]:
        """Deliver each request as envelope bytes; time each site; return parsed replies."""
        entry = StageLog(round, stage)
        replies: dict[str, Payload] = {}
        study, run = self.info.study, self.info.run
        for site, payload in requests.items():
            raw = Envelope(Header(study, run, round, stage, AGGREGATOR, site),
                           payload).to_bytes()
            entry.down[site] = len(raw)
            t0 = time.perf_counter()
            env = Envelope.from_bytes(raw)
            h = env.header
            self.site_guards[site].accept_in_order(h, order=self.order, sender=AGGREGATOR)
            reply = self.halves[site].handle(h.round, h.stage, env.payload, self.local[site])
            self.gates[site].check(stage, reply, layout_size=self.layout_size if round else None)
            out = Envelope(Header(study, run, round, stage, site, AGGREGATOR),
                           reply).to_bytes()
            entry.site_s[site] = time.perf_counter() - t0
            entry.up[site] = len(out)
            entry.up_blobs[site] = [len(b) for b in reply.blobs.values()]
            back = Envelope.from_bytes(out)
            self.guard.accept(back.header, round=round, stage=stage, sender=site)
            replies[site] = back.payload
        self.log.append(entry)
        return replies

    def stages(self, round: int) -> list[StageLog]:
        """The exchanges of one round."""
        return [e for e in self.log if e.round == round]


# --------------------------------------------------------------------------- data


def make_layout(kind: str, n: int) -> StatLayout:
    """One statistic of ``n`` values: counts (bound 2**20) or reals (bound 1e6)."""
    if kind == "counts":
        return StatLayout((StatSpec("counts", (n,), "count", float(COUNT_BOUND)),))
    return StatLayout((StatSpec(kind, (n,), "real", REAL_BOUND, PRECISION[kind]),))


def make_data(kind: str, n: int, sites: list[str], seed: int) -> dict[str, np.ndarray]:
    """Seeded float64 data per site (integer-valued for counts)."""
    rng = np.random.default_rng(seed)
    out = {}
    for s in sites:
        if kind == "counts":
            out[s] = rng.integers(0, COUNT_BOUND, size=n, endpoint=True).astype(np.float64)
        else:
            out[s] = rng.uniform(-REAL_BOUND, REAL_BOUND, size=n)
    return out


def exact_sum(kind: str, data: Mapping[str, np.ndarray]) -> np.ndarray:
    """The exact sum the ring encoding must reproduce, independently of the ring.

    Counts: the int64 sum. Reals: each value quantised to the encoding's grid
    (``2^-f``, ``f = real_frac_bits(bound)``), summed exactly (TwoSum: the running sum
    and its error term are exact because every term is a multiple of ``2^-f`` far below
    the sum's magnitude), then rounded once to float64, which is what decoding promises.
    A sample of positions is cross-checked with :func:`math.fsum`.
    """
    if kind == "counts":
        return np.sum([v.astype(np.int64) for v in data.values()], axis=0)
    f = real_frac_bits(REAL_BOUND, PRECISION[kind])
    quantised = [np.ldexp(np.rint(np.ldexp(v, f)), -f) for v in data.values()]
    hi = np.zeros_like(quantised[0])
    lo = np.zeros_like(hi)
    for x in quantised:
        s = hi + x
        bp = s - hi
        lo += (hi - (s - bp)) + (x - bp)
        hi = s
    out = hi + lo
    idx = np.random.default_rng(0).choice(out.size, size=min(out.size, 2000), replace=False)
    for i in idx.tolist():
        if math.fsum(float(x[i]) for x in quantised) != out[i]:
            raise AssertionError("the reference real sum is not exact; fix the benchmark")
    return out


def ckks_tolerance(kind: str, k: int, result: SumResult) -> float:
    """CKKS error allowance: the protocol's documented bound ``9 sigma 2^e`` per value.

    ``he`` reports the flooding noise's standard deviation per statistic (``flood_sd``,
    already in the statistic's units); its accuracy bound is nine of them. Without that
    figure: ``1e-6`` of the largest possible total (``K * bound``).
    """
    sd = result.stats.get("flood_sd")
    if isinstance(sd, Mapping) and isinstance(sd.get(kind), int | float):
        return 9.0 * float(sd[kind])
    bound = COUNT_BOUND if kind == "counts" else REAL_BOUND
    return 1e-6 * k * bound


def verify(variant: Variant, kind: str, result: SumResult, expected: np.ndarray,
           k: int) -> tuple[float, float]:
    """Raise unless the decoded total is right; return (max absolute error, allowed)."""
    got = np.asarray(result.totals[kind])
    if got.shape != expected.shape:
        raise AssertionError(f"{variant.label}/{kind}: total has shape {got.shape}")
    err = float(np.max(np.abs(got.astype(np.float64) - expected.astype(np.float64))))
    tol = 0.0
    if variant.params.get("scheme") == "ckks":
        tol = ckks_tolerance(kind, k, result)
        if not err <= tol:
            raise AssertionError(f"{variant.label}/{kind}: CKKS error {err:.3g} exceeds its "
                                 f"bound {tol:.3g}")
    elif not np.array_equal(got, expected):
        bad = int(np.count_nonzero(got != expected))
        raise AssertionError(f"{variant.label}/{kind}: {bad} of {got.size} totals differ "
                             f"from the exact sum (max error {err:.3g})")
    return err, tol


# --------------------------------------------------------------------------- measuring


def numpy_baseline(arrays: list[np.ndarray], repeats: int) -> tuple[float, str]:
    """Median seconds of numpy's plain sum; the faster of stack+sum and a += loop."""
    def stacked() -> np.ndarray:
        return np.sum(np.stack(arrays), axis=0)

    def looped() -> np.ndarray:
        acc = arrays[0].copy()
        for a in arrays[1:]:
            acc += a
        return acc

    best: tuple[float, str] | None = None
    for name, fn in (("np.sum(np.stack(a), axis=0)", stacked), ("loop of +=", looped)):
        fn()  # warm up
        times = []
        for _ in range(max(5, repeats)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        if best is None or med < best[0]:
            best = (med, name)
    assert best is not None
    return best


def aes_rates(n_words: int) -> dict[str, float]:
    """Keystream MB/s (10**6 bytes/s): safeflow's mask_stream and pycryptodome's CTR."""
    key = os.urandom(32)
    out: dict[str, float] = {}
    mask_stream(key, n_words)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        mask_stream(key, n_words)
        times.append(time.perf_counter() - t0)
    out["mask_stream (pyca cryptography / OpenSSL)"] = 8 * n_words / statistics.median(times) / 1e6
    try:
        from Crypto.Cipher import AES
    except ImportError:  # pragma: no cover - pycryptodome is a dependency
        return out
    zeros = bytes(8 * n_words)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        AES.new(key, AES.MODE_CTR, nonce=bytes(8)).encrypt(zeros)
        times.append(time.perf_counter() - t0)
    out["pycryptodome AES-CTR (for comparison)"] = 8 * n_words / statistics.median(times) / 1e6
    return out


@dataclass
class SumFigures:
    """The per-sum figures of one round."""

    crit_s: float
    wall_s: float
    max_site_s: float
    agg_s: float
    up: int
    down: int
    error: float
    allowed: float
    up_blobs_per_site: float
    up_blob_bytes_per_site: float


@dataclass
class Row:
    """Results of one protocol on one data kind (medians over the repeats)."""

    variant: Variant
    kind: str
    available: bool
    reason: str = ""
    sums: list[SumFigures] = field(default_factory=list)
    setup_s: float = 0.0
    setup_bytes: int = 0
    stats: dict[str, Any] = field(default_factory=dict)

    def med(self, name: str) -> float:
        return statistics.median(getattr(s, name) for s in self.sums)


def run_session(variant: Variant, kind: str, n: int, k: int, repeats: int,
                data: Mapping[str, np.ndarray], expected: np.ndarray) -> Row:
    """Set up one protocol session and run ``repeats`` secure sums in it."""
    try:
        server_cls, site_cls = protocol_classes(variant.protocol)
    except ImportError as e:
        return Row(variant, kind, False, f"not available ({type(e).__name__}: {e})")
    sites = list(data)
    info = SessionInfo("bench-secure-sum", uuid.uuid4().hex[:16], tuple(sites),
                       default_threshold(k))
    layout = make_layout(kind, n)

    def local_for(site: str) -> Callable[[Mapping[str, Any]],
                                         tuple[StatLayout, Mapping[str, np.ndarray]]]:
        stats = {kind: data[site]}
        return lambda request: (layout, stats)

    gc.collect()
    t0 = time.perf_counter()
    server: ServerHalf = server_cls(info, **variant.params)
    halves = {s: site_cls(s, info, **variant.params) for s in sites}
    channel = TimingChannel(info, halves, {s: local_for(s) for s in sites}, variant.protocol)
    server.setup(channel)
    row = Row(variant, kind, True)
    row.setup_s = time.perf_counter() - t0
    row.setup_bytes = sum(sum(e.up.values()) + sum(e.down.values()) for e in channel.stages(0))
    channel.layout_size = ring_size(layout)  # what the site runtime gives its gate
    request = {"analysis": "benchmark", "kind": kind}
    for r in range(1, repeats + 1):
        gc.collect()
        t0 = time.perf_counter()
        result = server.secure_sum(channel, r, layout, request)
        wall = time.perf_counter() - t0
        err, tol = verify(variant, kind, result, expected, k)
        stages = channel.stages(r)
        site_total = sum(sum(e.site_s.values()) for e in stages)
        agg = wall - site_total
        crit = sum(max(e.site_s.values(), default=0.0) for e in stages) + agg
        inputs = max(stages, key=lambda e: sum(e.up.values()))
        row.stats = dict(result.stats)
        row.sums.append(SumFigures(
            crit_s=crit, wall_s=wall,
            max_site_s=max(sum(e.site_s.get(s, 0.0) for e in stages) for s in sites),
            agg_s=agg,
            up=sum(sum(e.up.values()) for e in stages),
            down=sum(sum(e.down.values()) for e in stages),
            error=err,
            allowed=tol,
            up_blobs_per_site=statistics.mean(len(b) for b in inputs.up_blobs.values()),
            up_blob_bytes_per_site=statistics.mean(sum(b) for b in inputs.up_blobs.values()),
        ))
        log(f"  {variant.label:8s} {kind:6s} sum {r}: critical path {crit * 1e3:9.1f} ms "
            f"(wall {wall * 1e3:.1f} ms), up {row.sums[-1].up / 1e6:.2f} MB")
    return row


# --------------------------------------------------------------------------- report


def machine() -> dict[str, str]:
    """CPU model, cores, RAM, OS, Python and numpy versions."""
    return _machine.machine()


def _versions() -> str:
    out = []
    for mod in ("cryptography", "Crypto", "tenseal"):
        try:
            m = __import__(mod)
            out.append(f"{'pycryptodome' if mod == 'Crypto' else mod} "
                       f"{getattr(m, '__version__', '?')}")
        except ImportError:
            out.append(f"{mod} not installed")
    return ", ".join(out)


def _ms(s: float) -> str:
    return f"{s * 1e3:,.1f}"


def _mb(b: float) -> str:
    return f"{b / 1e6:,.3f}"


def _allowed(tol: float) -> str:
    return "0 (exact)" if tol == 0 else f"{tol:.3g} (9 sigma)"


def load() -> str:
    """The 1/5/15-minute load averages (the machine may be shared)."""
    try:
        return "/".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def verdict(row: Row, base_s: float, raw: int) -> str:
    """Target check of one row, stated plainly."""
    target = TARGETS.get(row.variant.label, {}).get(row.kind)
    if target is None:
        return "no target"
    if not row.available:
        return "not measured"
    t_ratio = row.med("crit_s") / base_s
    b_ratio = (row.med("up") + row.med("down")) / raw
    parts = [f"time {t_ratio:.1f}x {'<=' if t_ratio <= target[0] else '>'} {target[0]:g}x "
             f"({'met' if t_ratio <= target[0] else 'MISSED'})",
             f"bytes {b_ratio:.4f}x {'<=' if b_ratio <= target[1] else '>'} {target[1]:g}x "
             f"({'met' if b_ratio <= target[1] else 'MISSED'})"]
    return "; ".join(parts)


def render(rows: list[Row], args: argparse.Namespace, base: dict[str, tuple[float, str]],
           aes: dict[str, float], parts: Mapping[str, Mapping[str, float]], command: str,
           elapsed: float) -> str:
    """The markdown report."""
    n, k = args.values, args.sites
    raw = k * n * 8
    lines = [
        "# Secure sum benchmark",
        "",
        f"Secure sum of a {n:,}-value vector across {k} sites, per protocol. Generated by "
        "`benchmarks/secure_sum.py` (see `benchmarks/README.md`); do not edit by hand.",
        "",
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- command: `{command}`",
        f"- run time: {elapsed:.0f} s; load average (1/5/15 min) at start "
        f"{args.load_start}, at end {load()} on {os.cpu_count()} cores: other processes "
        "sharing the machine inflate and scatter the timings",
    ]
    lines += [f"- {key}: {val}" for key, val in machine().items()]
    lines += [
        f"- libraries: {_versions()}",
        f"- parameters: {k} sites, {n:,} values each, {args.repeats} sums per session "
        f"(medians reported), threshold {default_threshold(k)}; counts in [0, 2^20] "
        f"(bound 2^20), reals uniform in [-1e6, 1e6] (bound 1e6)",
        f"- raw float64 bytes: {k} x {n:,} x 8 = {raw:,} bytes",
        "",
        "## Baseline: numpy's plain sum of the same float64 arrays",
        "",
        "| data | median time (ms) | method (faster of two) |",
        "|---|---:|---|",
    ]
    lines += [f"| {kind} | {base[kind][0] * 1e3:.2f} | {base[kind][1]} |" for kind in KINDS]
    lines += [
        "",
        "## Results (one secure sum; set-up reported separately)",
        "",
        "Critical path = sum over stages of the slowest site + the aggregator (sites in "
        "parallel). Bytes: every site<->aggregator byte is counted as crossing a border "
        "(each site is in a different jurisdiction from the aggregator).",
        "",
        "| protocol | data | critical path (ms) | x numpy | slowest site (ms) "
        "| aggregator (ms) | sequential wall (ms) | site->agg (MB) | agg->site (MB) "
        "| total (MB) | x raw float64 | set-up (s) | set-up bytes (MB) | max abs error "
        "| error allowed |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if not row.available:
            lines.append(f"| {row.variant.label} | {row.kind} | {row.reason} "
                         + "| - " * 12 + "|")
            continue
        crit = row.med("crit_s")
        up, down = row.med("up"), row.med("down")
        lines.append(
            f"| {row.variant.label} | {row.kind} | {_ms(crit)} | {crit / base[row.kind][0]:.1f} "
            f"| {_ms(row.med('max_site_s'))} | {_ms(row.med('agg_s'))} "
            f"| {_ms(row.med('wall_s'))} | {_mb(up)} | {_mb(down)} | {_mb(up + down)} "
            f"| {(up + down) / raw:.4f} | {row.setup_s:.2f} | {_mb(row.setup_bytes)} "
            f"| {max(s.error for s in row.sums):.3g} "
            f"| {_allowed(max(s.allowed for s in row.sums))} |")
    lines += ["", "## Targets", "", "| protocol | data | target | verdict |", "|---|---|---|---|"]
    for row in rows:
        target = TARGETS.get(row.variant.label, {}).get(row.kind)
        if target is None:
            continue
        lines.append(f"| {row.variant.label} | {row.kind} | <= {target[0]:g}x time, "
                     f"<= {target[1]:g}x bytes | {verdict(row, base[row.kind][0], raw)} |")
    lines += ["", *bounding_section(rows, base, aes, parts, n, k), ""]
    return "\n".join(lines)


def _median_time(fn: Callable[[], object], repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def masking_components(kind: str, n: int, k: int, values: np.ndarray) -> dict[str, float]:
    """Seconds of each piece of work a masking party does per sum, measured in isolation."""
    layout = make_layout(kind, n)
    codec = RingCodec(layout, (float(layout.specs[0].bound),))  # type: ignore[arg-type]
    stats = {kind: values}
    vec = codec.encode(stats)
    m = vec.size
    key = os.urandom(32)
    ks = mask_stream(key, m)
    env = Envelope(Header("s", "r", 1, "masked_input", "site00", AGGREGATOR),
                   Payload("masked", arrays={"vector": vec}))
    raw = env.to_bytes()
    total = np.zeros(m, dtype=np.uint64)
    t = default_threshold(k)
    shares = split_secret(os.urandom(32), t, k)

    def add_native() -> None:
        total.__iadd__(vec)

    return {
        "encode": _median_time(lambda: codec.encode(stats)),
        "keystream": _median_time(lambda: mask_stream(key, m)),
        "add mask": _median_time(lambda: vec + ks),
        "serialise": _median_time(env.to_bytes),
        "parse": _median_time(lambda: Envelope.from_bytes(raw)),
        "add vector": _median_time(add_native),
        "decode": _median_time(lambda: codec.decode(total, n_contributors=k)),
        "shamir split": _median_time(lambda: split_secret(os.urandom(32), t, k)),
        "shamir combine": _median_time(lambda: combine_shares(shares[:t], t)),
        "ring elements": float(m),
    }


def bounding_section(rows: list[Row], base: dict[str, tuple[float, str]],
                     aes: dict[str, float], parts: Mapping[str, Mapping[str, float]],
                     n: int, k: int) -> list[str]:
    """What bounds each figure: AES keystream rate, ciphertext expansion."""
    out = [
        "## What bounds the figures",
        "",
        "### masking: the AES-256-CTR keystream rate",
        "",
        "| keystream | MB/s (10^6 bytes/s) |",
        "|---|---:|",
    ]
    out += [f"| {name} | {v:,.0f} |" for name, v in aes.items()]
    out += [
        "",
        "safeflow's PRG (`safeflow.crypto.prg.mask_stream`) uses pyca `cryptography` "
        "(OpenSSL, AES-NI); pycryptodome's CTR mode is shown for comparison (same bytes). "
        f"Per secure sum each site expands {k} keystreams as long as its ring vector (its "
        f"self-mask and {k - 1} pairwise masks) and adds them; the aggregator expands {k} "
        "(the self-mask of every surviving site, rebuilt from Shamir shares; with a dropout "
        f"it would also expand the dropped site's {k - 1} pairwise masks). The ring vector "
        "has one 64-bit element per count and two per real (a low and a high 48-bit limb of "
        "the 94-bit fixed-point value), so reals cost twice the keystream and twice the "
        "bytes of counts. The keystream words are read big-endian (the SP 800-38A byte "
        "order), so adding a mask includes a byte-swap pass.",
        "",
        "Each piece of a masking party's work for one sum, timed on its own (median of 5; "
        "ms), and the critical path it predicts (slowest site + aggregator):",
        "",
        "| data | ring elements | encode | 1 keystream | add 1 mask | serialise reply "
        "| parse 1 reply | add 1 vector | decode | Shamir split / combine "
        "| site = encode + K(stream + add) + serialise + split | aggregator = K(parse + add "
        "+ stream + add + combine) + decode | predicted x numpy | AES alone x numpy "
        "| measured x numpy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    measured = {r.kind: r for r in rows if r.variant.label == "masking" and r.available}
    notes: list[str] = []
    for kind, c in parts.items():
        site = c["encode"] + k * (c["keystream"] + c["add mask"]) + c["serialise"] \
            + c["shamir split"]
        agg = k * (c["parse"] + c["add vector"] + c["keystream"] + c["add mask"]
                   + c["shamir combine"]) + c["decode"]
        b = base[kind][0]
        meas = measured.get(kind)
        meas_txt = f"{meas.med('crit_s') / b:.1f}" if meas is not None else "-"
        out.append(
            f"| {kind} | {c['ring elements']:,.0f} | {_ms(c['encode'])} | {_ms(c['keystream'])} "
            f"| {_ms(c['add mask'])} | {_ms(c['serialise'])} | {_ms(c['parse'])} "
            f"| {_ms(c['add vector'])} | {_ms(c['decode'])} "
            f"| {c['shamir split'] * 1e3:.2f} / {c['shamir combine'] * 1e3:.2f} "
            f"| {_ms(site)} | {_ms(agg)} | {(site + agg) / b:.1f} "
            f"| {2 * k * c['keystream'] / b:.1f} | {meas_txt} |")
        fixed = c["shamir split"] + k * c["shamir combine"]
        notes.append(
            f"- {kind}: AES alone is {2 * k * c['keystream'] / b:.1f}x numpy; Shamir "
            f"reconstruction of the {k} self-mask seeds at the aggregator (pycryptodome's "
            f"GF(2^128) arithmetic in Python) adds a fixed {fixed * 1e3:.0f} ms per sum "
            f"({fixed / b:.1f}x numpy at this size) that does not grow with the vector.")
    out += ["", *notes]
    out += [
        "",
        f"numpy's sum touches each float64 once ({k - 1} additions of {n:,} values); a masked "
        f"sum makes 2K = {2 * k} keystream expansions of the whole vector on its critical "
        "path, plus encoding, one byte-swapping addition per mask and copying every vector "
        "into and out of an envelope. The keystream rate therefore sets a floor on the "
        "time ratio (column 'AES alone') that no amount of tuning elsewhere removes; memory "
        "bandwidth for the additions and envelope copies makes up most of the rest.",
        "",
        "Bytes: a masked count is one 64-bit ring element, exactly the size of a float64; a "
        "masked real is two (16 bytes). What exceeds 1.0x (counts) or 2.0x (reals) is the "
        "fixed per-message overhead (envelope headers with the request, bounds and member "
        "list; Shamir shares of the self-mask seeds; sealed shares of the next round's "
        "seeds): O(K^2) small items per sum, independent of the vector length.",
        "",
        "### HE: ciphertext expansion and per-ciphertext work",
        "",
        "| protocol | data | N | log2 q | plain modulus bits | values per ciphertext (mean) "
        "| ciphertexts per site | bytes per ciphertext | bytes per value (site->agg) "
        "| x float64 | site ms per ciphertext | aggregator ms per ciphertext |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if row.variant.protocol != "he":
            continue
        if not row.available:
            out.append(f"| {row.variant.label} | {row.kind} | {row.reason} "
                       + "| - " * 9 + "|")
            continue
        st = row.stats
        blobs = row.med("up_blobs_per_site")
        blob_bytes = row.med("up_blob_bytes_per_site")
        per_value = row.med("up") / (k * n)
        cts = max(blobs, 1)
        out.append(
            f"| {row.variant.label} | {row.kind} | {st.get('poly_modulus_degree', '?')} "
            f"| {st.get('coeff_modulus_bits', '?')} | {st.get('plain_modulus_bits', '-')} "
            f"| {n / cts:,.0f} | {blobs:,.0f} | {blob_bytes / cts:,.0f} | {per_value:.2f} "
            f"| {per_value / 8:.2f} | {row.med('max_site_s') / cts * 1e3:.2f} "
            f"| {row.med('agg_s') / cts * 1e3:.2f} |")
    out += [
        "",
        "HE bytes are set by the ciphertext size (two polynomials of N coefficients modulo "
        "q, as serialised by SEAL with compression) divided by the values it carries: a BFV "
        "ciphertext has N slots of up to 59 bits and `he` packs count fields of "
        "bit_length(bound) + ceil(log2 K) bits (21 + 4 = 25 for 10 sites) two to a slot; a "
        "real is two 48-bit limbs, one slot each, so reals carry 4x fewer values per "
        "ciphertext than counts. CKKS carries "
        "N/2 values per ciphertext, of either kind. HE time is set by the per-ciphertext "
        "work: at each site one public-key encryption (and serialisation) per ciphertext; "
        "at the aggregator, for each ciphertext, K deserialisations and K-1 additions, "
        "then one decryption by customs (and, for CKKS, noise flooding). The ratio to "
        "numpy is (per-ciphertext work) / (time numpy needs to add K x values-per-ciphertext "
        "floats): milliseconds against microseconds.",
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the markdown report."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--values", type=int, default=10**6, help="values per site (default 10**6)")
    p.add_argument("--sites", type=int, default=10, help="number of sites (default 10)")
    p.add_argument("--repeats", type=int, default=3, help="secure sums per session (default 3)")
    p.add_argument("--quick", action="store_true", help="10**4 values, 3 sites, 1 repeat")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown output path")
    p.add_argument("--seed", type=int, default=2024, help="data seed")
    p.add_argument("--protocols", default=",".join(v.label for v in VARIANTS),
                   help="comma-separated subset of " + ", ".join(v.label for v in VARIANTS))
    args = p.parse_args(argv)
    if args.quick:
        args.values, args.sites, args.repeats = 10**4, 3, 1
    if args.values < 1 or args.sites < 2 or args.repeats < 1:
        p.error("--values >= 1, --sites >= 2 and --repeats >= 1 are required")
    wanted = [v.strip() for v in args.protocols.split(",") if v.strip()]
    unknown = sorted(set(wanted) - {v.label for v in VARIANTS})
    if unknown:
        p.error(f"unknown protocols {unknown}")
    command = " ".join(shlex.quote(a) for a in [
        ".venv/bin/python", "benchmarks/secure_sum.py", *(sys.argv[1:] if argv is None else argv)])
    start = time.perf_counter()
    args.load_start = load()
    sites = [f"site{i:02d}" for i in range(args.sites)]
    log(f"secure sum: {args.sites} sites x {args.values:,} values, {args.repeats} repeats")
    aes = aes_rates(args.values)
    for name, v in aes.items():
        log(f"  {name}: {v:,.0f} MB/s")
    base: dict[str, tuple[float, str]] = {}
    parts: dict[str, dict[str, float]] = {}
    rows: list[Row] = []
    for i, kind in enumerate(KINDS):
        data = make_data(kind, args.values, sites, args.seed + i)
        expected = exact_sum(kind, data)
        base[kind] = numpy_baseline(list(data.values()), args.repeats)
        log(f"  numpy {kind}: {base[kind][0] * 1e3:.2f} ms ({base[kind][1]})")
        if "masking" in wanted:
            parts[kind] = masking_components(kind, args.values, args.sites, data[sites[0]])
        for variant in VARIANTS:
            if variant.label not in wanted:
                continue
            row = run_session(variant, kind, args.values, args.sites, args.repeats, data,
                              expected)
            if not row.available:
                log(f"  {variant.label}: {row.reason}")
            rows.append(row)
    rows.sort(key=lambda r: ([v.label for v in VARIANTS].index(r.variant.label),
                             KINDS.index(r.kind)))
    text = render(rows, args, base, aes, parts, command, time.perf_counter() - start)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


"""Cost of certifying a release: certificate body, signatures, audit log, Merkle proofs.

What is measured
----------------
* **Certification overhead per release, signatures excluded**: hashing the value files
  (:func:`value_digest`), building the release audit entry, building and checking the body
  (:func:`build_body`), its canonical JSON (RFC 8785) and SHA-256. Target: < 5 ms.
  The audit append, the checkpoint and the inclusion proof (:func:`audit_section`) are
  reported on their own rows, with the fsync cost separated: the same append with
  ``synchronous=FULL`` (what safeflow uses: durable) and ``synchronous=OFF`` (no fsync; for
  comparison only, never used by safeflow).
* **Signatures**: Ed25519 sign and verify (``safeflow.crypto.keys``, pycryptodome), customs
  issuing a certificate, a site co-signing, and a full offline verification (strict parse,
  3 signatures, the checkpoint signature, the inclusion proof).
* **Audit log**: durable appends per second (one transaction each; WAL + synchronous=FULL),
  entries per second in batches (:meth:`AuditLog.extend`), checkpoints per second.
* **Proofs** on a log of ``--entries`` entries: root, inclusion and consistency proof
  generation (from SQLite) and verification, and :func:`verify_log` over the whole file.

Each figure is the median over several batches of repeated calls (more in the full run).

How to run
----------
::

    .venv/bin/python benchmarks/policy.py            # log of 100,000 entries, ~1 minute
    .venv/bin/python benchmarks/policy.py --quick    # log of 1,000 entries, seconds (CI smoke)
    .venv/bin/python benchmarks/policy.py --entries 1000000 --out /tmp/policy.md

The report (command, machine, date, table) goes to ``--out`` (default
``benchmarks/results/policy.md``). Audit files are written in ``--dir`` (default: a temporary
directory); fsync cost depends on the storage under it, which the report names.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import platform
import shlex
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from safeflow.crypto.keys import SigningKey
from safeflow.policy.audit import AuditLog, verify_log
from safeflow.policy.canonical import canonical_json
from safeflow.policy.certificate import (
    Certificate,
    audit_section,
    build_body,
    release_entry,
    value_digest,
    value_manifest,
)
from safeflow.policy.merkle import verify_consistency, verify_inclusion

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 5.0


@dataclass
class Row:
    section: str
    operation: str
    ms: float
    note: str = ""

    @property
    def per_second(self) -> float:
        return 1000.0 / self.ms if self.ms > 0 else float("inf")


def measure(fn: Callable[[], Any], *, batches: int, min_time: float) -> float:
    """Median milliseconds per call over ``batches`` batches of at least ``min_time`` s."""
    fn()  # warm up
    calls = 1
    while True:  # calibrate the batch size
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time or calls >= 1 << 20:
            break
        calls *= 2
    times = [elapsed / calls]
    for _ in range(batches - 1):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t0) / calls)
    return statistics.median(times) * 1000.0


# ------------------------------------------------------------------ a realistic release


KEYS = {
    n: SigningKey.from_bytes(hashlib.sha256(f"bench/{n}".encode()).digest())
    for n in ("customs", "beijing", "amsterdam")
}
SPEC = hashlib.sha256(b"protocols/masking.yaml").hexdigest()
DECISION = {
    "outcome": "ALLOW_WITH_OBLIGATIONS",
    "rules": ["CN-health-consent", "EU-health"],
    "obligations": [
        "separate consent (PIPL Art 29)",
        "PIPIA (PIPL Art 55-56)",
        "Art 9(2)(j) + Art 89 safeguards",
    ],
    "exportable": True,
}
FACTS = {
    "output": {
        "kind": "regression",
        "protocol": "masking",
        "sdc": {"min_cell": 12, "has_zero": False, "residual_dof": 220, "n_params": 4, "n": 226},
        "derived_from_genetic": False,
    },
    "origin": [
        {
            "site": "beijing",
            "jurisdiction": "CN",
            "ciio": False,
            "ftz": None,
            "classes": ["health"],
            "persons": 0,
            "sensitive_persons": 0,
            "persons_ytd": 0,
            "sensitive_persons_ytd": 0,
            "genome_persons": 0,
        },
        {
            "site": "amsterdam",
            "jurisdiction": "NL",
            "ciio": False,
            "ftz": None,
            "classes": ["health"],
            "persons": 0,
            "sensitive_persons": 0,
            "persons_ytd": 0,
            "sensitive_persons_ytd": 0,
            "genome_persons": 0,
        },
    ],
    "destination": {"jurisdiction": "NL", "recipient_type": "research"},
    "purpose": "scientific-research",
    "instruments": {
        "scc": False,
        "security_assessment": None,
        "hgr_filing": False,
        "hgr_approval": None,
        "explicit_consent": False,
        "tia": False,
        "dpia": True,
        "pipia": True,
    },
    "run": {"rounds": 6, "border_bytes": {"beijing": 48_210, "amsterdam": 48_210}},
}
FILES = {
    "estimates.csv": (
        "term,coef,se,z,p,ci_low,ci_high\n"
        + "".join(f"x{i},{i * 0.013:.6f},0.0123,1.05,0.29,-0.01,0.03\n" for i in range(40))
    ).encode(),
    "model.json": canonical_json(
        {"family": "binomial", "n": 226, "iterations": 6, "deviance": 241.3, "converged": True}
    ),
}


def message_entry(i: int) -> dict[str, Any]:
    return {
        "kind": "message",
        "time": "2026-01-05T09:00:00.000000Z",
        "hash": f"{i:064x}",
        "size": 48_210,
        "protocol": "masking",
        "stage": "masked_input",
        "sender": "beijing",
        "receiver": "aggregator",
    }


def body_for(log: AuditLog, index: int) -> dict[str, Any]:
    return build_body(
        outputs=value_manifest(FILES),
        protocol_spec_sha256=SPEC,
        packs=[
            ("CN", "2024.2", "ab" * 32),
            ("EU", "2024.1", "cd" * 32),
            ("acro", "1.0", "ef" * 32),
        ],
        facts=FACTS,
        decision=DECISION,
        audit=audit_section(log, index, log_signer="customs"),
        customs=("customs", KEYS["customs"].verify_key),
        sites={"beijing": KEYS["beijing"].verify_key, "amsterdam": KEYS["amsterdam"].verify_key},
    )


# ------------------------------------------------------------------ the benchmark


def run(work: Path, entries: int, batches: int, min_time: float) -> tuple[list[Row], dict]:
    rows: list[Row] = []

    def add(section: str, op: str, fn: Callable[[], Any], note: str = "") -> float:
        ms = measure(fn, batches=batches, min_time=min_time)
        rows.append(Row(section, op, ms, note))
        return ms

    customs_log = AuditLog(work / "customs.sqlite", signing_key=KEYS["customs"], log_id="customs")
    customs_log.extend(message_entry(i) for i in range(100))
    digest = value_digest(FILES)
    entry = release_entry(output_sha256=digest, protocol_spec_sha256=SPEC, decision=DECISION)
    index, _ = customs_log.append(entry)
    audit = audit_section(customs_log, index, log_signer="customs")

    def overhead() -> bytes:
        d = value_digest(FILES)
        release_entry(output_sha256=d, protocol_spec_sha256=SPEC, decision=DECISION)
        body = build_body(
            outputs=value_manifest(FILES),
            protocol_spec_sha256=SPEC,
            packs=[
                ("CN", "2024.2", "ab" * 32),
                ("EU", "2024.1", "cd" * 32),
                ("acro", "1.0", "ef" * 32),
            ],
            facts=FACTS,
            decision=DECISION,
            audit=audit,
            customs=("customs", KEYS["customs"].verify_key),
            sites={
                "beijing": KEYS["beijing"].verify_key,
                "amsterdam": KEYS["amsterdam"].verify_key,
            },
        )
        return hashlib.sha256(canonical_json(body)).digest()

    sec = "certification (no signatures)"
    body = body_for(customs_log, index)
    value_bytes = sum(len(v) for v in FILES.values())
    add(
        sec,
        "value_digest of the value files",
        lambda: value_digest(FILES),
        f"{len(FILES)} files, {value_bytes:,} bytes",
    )
    add(
        sec,
        "build_body (incl. checks)",
        lambda: build_body(
            outputs=value_manifest(FILES),
            protocol_spec_sha256=SPEC,
            packs=[],
            facts=FACTS,
            decision=DECISION,
            audit=audit,
            customs=("customs", KEYS["customs"].verify_key),
            sites={
                "beijing": KEYS["beijing"].verify_key,
                "amsterdam": KEYS["amsterdam"].verify_key,
            },
        ),
    )
    body_bytes = canonical_json(body)
    add(
        sec,
        "canonical JSON (RFC 8785) of the body + SHA-256",
        lambda: hashlib.sha256(canonical_json(body)).digest(),
        f"body {len(body_bytes):,} bytes",
    )
    total = add(sec, "total: digest + entry + body + canonical JSON + hash", overhead)
    rows[-1].note = f"target < {TARGET_MS:g} ms ({'met' if total < TARGET_MS else 'MISSED'})"

    sec = "audit (certification)"
    add(
        sec,
        "append release entry, durable (WAL + synchronous=FULL)",
        lambda: customs_log.append(entry),
        "one transaction, fsync",
    )
    add(sec, "checkpoint (sign + durable insert)", customs_log.checkpoint)
    add(
        sec,
        "audit_section (checkpoint + inclusion proof + entry)",
        lambda: audit_section(customs_log, index, log_signer="customs"),
    )
    customs_log._conn.execute("PRAGMA synchronous = OFF")  # comparison only
    add(
        sec,
        "append release entry, synchronous=OFF (no fsync; comparison only)",
        lambda: customs_log.append(entry),
        "not used by safeflow",
    )
    customs_log._conn.execute("PRAGMA synchronous = FULL")

    sec = "signatures"
    message = body_bytes
    signature = KEYS["customs"].sign(message)
    vk = KEYS["customs"].verify_key
    add(sec, "Ed25519 sign (body)", lambda: KEYS["customs"].sign(message))
    add(sec, "Ed25519 verify (body)", lambda: vk.verify(message, signature))
    issued = Certificate.issue(body, "customs", KEYS["customs"])
    add(
        sec,
        "Certificate.issue (checks + proof + 1 signature)",
        lambda: Certificate.issue(body, "customs", KEYS["customs"]),
    )
    add(
        sec,
        "Certificate.cosign (checks customs + proof, signs)",
        lambda: issued.cosign("beijing", KEYS["beijing"]),
    )
    cert = issued.cosign("beijing", KEYS["beijing"]).cosign("amsterdam", KEYS["amsterdam"])
    raw = cert.to_json()
    trusted = {n: k.verify_key for n, k in KEYS.items()}
    add(
        sec,
        "Certificate.from_json (strict parse)",
        lambda: Certificate.from_json(raw),
        f"{len(raw):,} bytes",
    )
    add(
        sec,
        "from_json + verify(trusted=...) (3 sig + checkpoint + proof)",
        lambda: Certificate.from_json(raw).verify(trusted=trusted),
    )
    customs_log.close()

    sec = "audit log throughput"
    with AuditLog(work / "throughput.sqlite", signing_key=KEYS["beijing"], log_id="beijing") as log:
        counter = iter(range(10**9))
        add(
            sec,
            "append, durable, one transaction each",
            lambda: log.append(message_entry(next(counter))),
            "WAL + synchronous=FULL",
        )
        batch = [message_entry(i) for i in range(100)]
        ms = add(sec, "extend: batch of 100, durable (per batch)", lambda: log.extend(batch))
        rows[-1].note = f"{100_000 / ms:,.0f} entries/s"

    sec = f"proofs (log of {entries:,} entries)"
    with AuditLog(work / "big.sqlite", signing_key=KEYS["amsterdam"], log_id="big") as log:
        t0 = time.perf_counter()
        for start in range(0, entries, 10_000):
            log.extend(message_entry(i) for i in range(start, min(entries, start + 10_000)))
        fill = time.perf_counter() - t0
        cp = log.checkpoint()
        n = cp.size
        old = n // 3 + 1
        old_root = log.root(old)
        i = n // 2 + 7
        leaf = hashlib.sha256(b"\x00" + log.entry_bytes(i)).digest()
        proof = log.inclusion_proof(i, n)
        cproof = log.consistency_proof(old, n)
        add(sec, "root(size) from stored subtree hashes", lambda: log.root(n))
        add(
            sec,
            "inclusion proof generation",
            lambda: log.inclusion_proof(i, n),
            f"{len(proof)} hashes",
        )
        add(
            sec,
            "inclusion proof verification",
            lambda: verify_inclusion(leaf, i, n, proof, cp.root),
        )
        add(
            sec,
            "consistency proof generation",
            lambda: log.consistency_proof(old, n),
            f"{len(cproof)} hashes",
        )
        add(
            sec,
            "consistency proof verification",
            lambda: verify_consistency(old, n, old_root, cp.root, cproof),
        )
    t0 = time.perf_counter()
    report = verify_log(work / "big.sqlite", KEYS["amsterdam"].verify_key)
    vl = time.perf_counter() - t0
    assert report.size == entries
    rows.append(
        Row(sec, "verify_log: whole file from scratch", vl * 1000, f"{entries / vl:,.0f} entries/s")
    )
    rows.append(
        Row(
            sec,
            "filling the log with extend (batches of 10,000)",
            fill * 1000,
            f"{entries / fill:,.0f} entries/s",
        )
    )
    extra = {
        "body_bytes": len(body_bytes),
        "cert_bytes": len(raw),
        "overhead_ms": total,
        "db_bytes": (work / "big.sqlite").stat().st_size,
    }
    return rows, extra


# ------------------------------------------------------------------ the report


def machine() -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        ram = f"{kib / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        ram = "unknown"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    return [
        f"- CPU: {cpu}",
        f"- cores available: {cores} (os.cpu_count() = {os.cpu_count()})",
        f"- RAM: {ram}",
        f"- OS: {platform.system()} {platform.release()}",
        f"- Python: {platform.python_version()}",
        f"- numpy: {version('numpy')}",
        f"- libraries: pycryptodome {version('pycryptodome')}, rfc8785 "
        f"{version('rfc8785')}, SQLite {sqlite3.sqlite_version}",
    ]


def storage(path: Path) -> str:
    """The mount (device, file system type) holding ``path``, from /proc/mounts."""
    best = ("?", "?", "")
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            dev, mnt, fstype = line.split()[:3]
            if str(path.resolve()).startswith(mnt) and len(mnt) >= len(best[2]):
                best = (dev, fstype, mnt)
    except OSError:
        pass
    return f"{path} on {best[0]} ({best[1]}, mounted at {best[2] or '?'})"


def report(
    rows: list[Row], extra: dict, args: argparse.Namespace, work: Path, seconds: float, command: str
) -> str:
    lines = [
        "# Policy layer benchmark: certificates, signatures, audit log, proofs",
        "",
        "Generated by `benchmarks/policy.py` (see its docstring); do not edit by hand.",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- command: `{command}`",
        f"- run time: {seconds:.0f} s; load average at end "
        f"{'/'.join(f'{x:.2f}' for x in os.getloadavg())}",
        *machine(),
        f"- audit files: {storage(work)}",
        f"- parameters: {args.entries:,} log entries for the proof rows; medians of "
        f"{args.batches} batches of >= {args.min_time:g} s",
        f"- sizes: certificate body {extra['body_bytes']:,} bytes, signed certificate "
        f"{extra['cert_bytes']:,} bytes (2 sites), big log file {extra['db_bytes']:,} bytes",
        "",
        f"Certification overhead per release without signatures: **{extra['overhead_ms']:.3f} "
        f"ms** (target < {TARGET_MS:g} ms: "
        f"{'met' if extra['overhead_ms'] < TARGET_MS else 'MISSED'}). A durable audit append "
        "costs one fsync (see the synchronous=OFF row for the cost without it).",
        "",
        "| section | operation | per op (ms) | per second | note |",
        "|---|---|---:|---:|---|",
    ]
    for r in rows:
        rate = f"{r.per_second:,.0f}" if r.per_second >= 10 else f"{r.per_second:.2f}"
        lines.append(f"| {r.section} | {r.operation} | {r.ms:,.4f} | {rate} | {r.note} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--quick", action="store_true", help="small log and short timings (seconds; CI smoke)"
    )
    parser.add_argument(
        "--entries",
        type=int,
        default=None,
        help="log size for the proof rows (default 100,000; quick: 1,000)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "policy.md")
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="directory for the audit files (default: a temporary directory)",
    )
    args = parser.parse_args(argv)
    if args.entries is None:
        args.entries = 1_000 if args.quick else 100_000
    if args.entries < 3:
        parser.error("--entries must be at least 3")
    args.batches, args.min_time = (3, 0.02) if args.quick else (7, 0.2)
    command = ".venv/bin/python benchmarks/policy.py" + "".join(
        f" {shlex.quote(a)}" for a in (sys.argv[1:] if argv is None else argv)
    )
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="safeflow-policy-bench-") as tmp:
        rows, extra = run(Path(tmp), args.entries, args.batches, args.min_time)
        text = report(rows, extra, args, Path(tmp).parent, time.perf_counter() - t0, command)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

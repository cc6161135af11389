"""Processes: concurrent appends from several processes, and kill -9 in the middle of an
append loop (each committed index is printed; none may be lost, the store must verify)."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import safeflow
from safeflow.crypto.keys import SigningKey
from safeflow.policy.audit import AuditLog, verify_log

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")

SEED = hashlib.sha256(b"crash test key").digest()
KEY = SigningKey.from_bytes(SEED)

# Appends `count` entries (forever if 0), checkpointing every 7th; prints "index tag" after
# each append returned (i.e. after the commit).
CHILD = r"""
import sys, types
# Only the audit log is needed: skip safeflow/__init__ (pandas, scipy: ~1 s per child).
pkg = types.ModuleType("safeflow")
pkg.__path__ = [SRC]
sys.modules["safeflow"] = pkg
from safeflow.crypto.keys import SigningKey
from safeflow.policy.audit import AuditLog
path, tag, count, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), bytes.fromhex(sys.argv[4])
log = AuditLog(path, signing_key=SigningKey.from_bytes(seed), log_id="crash")
print("ready", flush=True)
i = 0
while count == 0 or i < count:
    index, _ = log.append({"kind": "message", "time": "2026-01-05T09:00:00Z",
                           "hash": f"{i:064x}", "size": i, "protocol": "masking",
                           "stage": "masked_input", "sender": "a", "receiver": "b",
                           "tag": f"{tag}-{i}"})
    print(index, f"{tag}-{i}", flush=True)
    if i % 7 == 6:
        log.checkpoint()
    i += 1
log.close()
"""


def start(path: Path, tag: str, count: int) -> subprocess.Popen[str]:
    code = CHILD.replace("SRC", repr(str(Path(safeflow.__file__).parent)))
    return subprocess.Popen(
        [sys.executable, "-c", code, str(path), tag, str(count), SEED.hex()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def committed(lines: str) -> dict[int, str]:
    out = {}
    for line in lines.splitlines():
        parts = line.split()
        if len(parts) == 2:  # a line cut by the kill has no tag yet: not reported committed
            out[int(parts[0])] = parts[1]
    return out


def check(path: Path, expected: dict[int, str]) -> int:
    report = verify_log(path, KEY.verify_key)
    with AuditLog(path, signing_key=KEY, log_id="crash") as log:
        for index, tag in expected.items():
            assert log.entry(index)["tag"] == tag, index
    return report.size


def test_kill_9_during_appends_loses_no_committed_entry(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    rng = random.Random(2024)
    expected: dict[int, str] = {}
    for run in range(4):
        proc = start(path, f"run{run}", 0)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
        time.sleep(rng.uniform(0.05, 0.4))
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        done = committed(out)
        assert done, "the child committed nothing before it was killed"
        assert not set(done) & set(expected)
        expected.update(done)
        size = check(path, expected)
        # Everything printed is there; at most the one append in flight beyond it.
        assert max(expected) + 1 <= size <= max(expected) + 2
        # Only an append committed but killed before its print may be unreported.
        assert size <= len(expected) + run + 1


def test_processes_append_concurrently(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    procs = [start(path, f"p{p}", 40) for p in range(3)]
    expected: dict[int, str] = {}
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        expected.update(committed(out))
    assert sorted(expected) == list(range(120))
    assert check(path, expected) == 120

"""Release ledger: differencing refusals, atomicity, and survival of kill -9."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from safeflow.errors import ExportDenied, InvalidParameter
from safeflow.policy import Population, ReleaseLedger

DIABETICS = Population({"beijing"}, {"diabetes == 1"})
UNDER_90 = Population({"beijing"}, {"diabetes == 1", "age < 90"})


@pytest.fixture
def ledger(tmp_path: Path) -> ReleaseLedger:
    with ReleaseLedger(tmp_path / "ledger.sqlite") as led:
        yield led


def test_policy_example_120_then_117_diabetics_is_denied(ledger: ReleaseLedger) -> None:
    ledger.check_and_record("r1", "count", DIABETICS, 120, threshold=10)
    with pytest.raises(ExportDenied, match="SDC-differencing") as e:
        ledger.check_and_record("r2", "count", UNDER_90, 117, threshold=10)
    msg = str(e.value)
    assert e.value.rule == "SDC-differencing" and e.value.fix in msg  # type: ignore[attr-defined]
    assert "'r1'" in msg and not any(n in msg for n in ("117", "120", " 3 "))
    assert [x.release_id for x in ledger.entries()] == ["r1"]  # nothing recorded


def test_symmetric_case_superset_after_subset(ledger: ReleaseLedger) -> None:
    ledger.check_and_record("r1", "count", UNDER_90, 117, threshold=10)
    with pytest.raises(ExportDenied, match="SDC-differencing"):
        ledger.check_and_record("r2", "mean:age", DIABETICS, 120, threshold=10)


@pytest.mark.parametrize(
    "n_new,denied", [(111, True), (110, False), (109, False), (120, False), (119, True)]
)
def test_threshold_boundary(ledger: ReleaseLedger, n_new: int, denied: bool) -> None:
    ledger.check_and_record("r1", "count", DIABETICS, 120, threshold=10)
    if denied:
        with pytest.raises(ExportDenied):
            ledger.check_and_record("r2", "count", UNDER_90, n_new, threshold=10)
    else:
        assert ledger.check_and_record("r2", "count", UNDER_90, n_new, threshold=10).seq == 2


def test_same_definition_with_changed_data_is_compared(ledger: ReleaseLedger) -> None:
    ledger.check_and_record("r1", "count", DIABETICS, 120, threshold=10)
    with pytest.raises(ExportDenied):  # two new patients since the first release
        ledger.check_and_record("r2", "count", DIABETICS, 122, threshold=10)


def test_fewer_sites_is_a_subset(ledger: ReleaseLedger) -> None:
    both = Population({"beijing", "amsterdam"}, {"diabetes == 1"})
    ledger.check_and_record("r1", "count", both, 200, threshold=10)
    with pytest.raises(ExportDenied):
        ledger.check_and_record(
            "r2", "count", Population({"beijing"}, {"diabetes == 1"}), 195, threshold=10
        )


def test_incomparable_or_disjoint_populations_pass(ledger: ReleaseLedger) -> None:
    ledger.check_and_record("r1", "count", DIABETICS, 120, threshold=10)
    ledger.check_and_record("r2", "count", Population({"beijing"}, {"age < 90"}), 118, threshold=10)
    ledger.check_and_record(
        "r3", "count", Population({"amsterdam"}, {"diabetes == 1"}), 119, threshold=10
    )
    grouped = Population({"beijing"}, {"diabetes == 1", "sex == 'F'"}, group="arm")
    ledger.check_and_record("r4", "count", grouped, 60, threshold=10)
    assert [e.seq for e in ledger.entries()] == [1, 2, 3, 4]


def test_filters_are_canonical_and_populations_persist(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    with ReleaseLedger(path) as led:
        led.check_and_record(
            "r1", "count", Population(["beijing"], ["diabetes  ==  1"]), 120, threshold=10
        )
    with ReleaseLedger(path) as led:
        assert led.entries()[0].population == DIABETICS
        with pytest.raises(ExportDenied):
            led.check_and_record("r2", "count", UNDER_90, 117, threshold=10)
        led.verify()


def test_recording_again_is_idempotent_but_ids_are_unique(ledger: ReleaseLedger) -> None:
    a = ledger.check_and_record("r1", "count", DIABETICS, 120, threshold=10)
    assert ledger.check_and_record("r1", "count", DIABETICS, 120, threshold=10) == a
    with pytest.raises(InvalidParameter, match="already recorded for a different release"):
        ledger.check_and_record("r1", "count", DIABETICS, 121, threshold=10)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"release_id": ""}, "release_id must be"),
        ({"statistic": 3}, "statistic must be"),
        ({"population": {"beijing"}}, "population must be"),
        ({"n": -1}, "n must be an int"),
        ({"threshold": 0}, "threshold must be an int >= 1"),
    ],
)
def test_argument_validation(ledger: ReleaseLedger, kwargs: dict, message: str) -> None:
    args = {
        "release_id": "r",
        "statistic": "count",
        "population": DIABETICS,
        "n": 5,
        "threshold": 10,
        **kwargs,
    }
    with pytest.raises(InvalidParameter, match=message):
        ledger.check_and_record(
            args.pop("release_id"),
            args.pop("statistic"),
            args.pop("population"),
            args.pop("n"),
            **args,
        )


def test_population_validation() -> None:
    with pytest.raises(InvalidParameter, match="at least one site"):
        Population(set())
    with pytest.raises(InvalidParameter, match="set of non-empty strings"):
        Population("beijing")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter, match="set of non-empty strings"):
        Population({"a"}, {""})


def test_store_is_wal_with_full_sync(ledger: ReleaseLedger) -> None:
    db = sqlite3.connect(ledger.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


CHILD = r"""
import importlib.util, os, sys, types
# Import the real ledger module without running the heavy package __init__ files (numpy,
# pandas, TenSEAL ...), so the children start fast: the test is about the store, not imports.
root = importlib.util.find_spec("safeflow").submodule_search_locations[0]
for name, where in (("safeflow", root), ("safeflow.policy", os.path.join(root, "policy"))):
    module = types.ModuleType(name)
    module.__path__ = [where]
    sys.modules[name] = module
import random, time
from safeflow.policy.ledger import Population, ReleaseLedger
led = ReleaseLedger(sys.argv[1])
start = int(sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()  # all writers start together
i = start
while True:
    rid = f"r{i}"
    led.check_and_record(rid, "count", Population({"site"}, {f"cohort == {i}"}), i % 1000,
                         threshold=10)
    print(rid, flush=True)
    i += 1
    time.sleep(random.random() * 0.002)  # a busy but not lock-hogging writer
"""


def test_kill_9_mid_write_loses_no_committed_release(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    rng = random.Random(20240322)
    committed: set[str] = set()
    for phase in range(2):
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", CHILD, str(path), str(1_000_000 * (1 + phase * 3 + k))],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for k in range(3)
        ]  # three writers on one store: locking is exercised too
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            time.sleep(rng.uniform(0.05, 0.4))
            os.kill(p.pid, signal.SIGKILL)
        for p in procs:
            out, _ = p.communicate(timeout=30)
            assert p.returncode == -signal.SIGKILL
            lines = out.split("\n")[:-1]  # a last line without newline was not fully printed
            committed |= {line for line in lines if line.startswith("r")}
        with ReleaseLedger(path) as led:
            led.verify()
            stored = {e.release_id for e in led.entries()}
        assert committed <= stored, f"lost committed releases: {sorted(committed - stored)[:5]}"
    assert len(committed) > 10
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()

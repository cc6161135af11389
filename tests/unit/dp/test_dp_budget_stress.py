"""The ledger under concurrency and crashes.

* 64 threads x 4 processes try to spend 3x a dataset's budget at once: exactly
  ``floor(total / ε)`` spends succeed, never more, in each of 100 repetitions (300 more
  in the slow variant).
* ``kill -9`` at random points while a child debits and releases: every release printed
  by a child has a durable debit with the receipt it printed, no query is charged twice,
  and the totals add up exactly.

Child processes come from a forkserver that has already imported safeflow, so starting
one costs milliseconds, not the 2 s of a fresh interpreter.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from safeflow.dp.budget import BudgetLedger

from . import budget_workers

PROCESSES, THREADS = 4, 64
EPS = Fraction(3, PROCESSES * THREADS)  # every thread asks for this once: 3x the budget
TOTAL = Fraction(1)


@pytest.fixture(scope="module")
def ctx() -> Any:
    c = mp.get_context("forkserver")
    c.set_forkserver_preload(["safeflow.dp.budget", budget_workers.__name__])
    return c


def _storm(ctx: Any, tmp_path: Path, reps: int) -> None:
    path = str(tmp_path / "budget.sqlite")
    ledger = BudgetLedger(path)
    for r in range(reps):
        ledger.set_total(f"ds{r}", TOTAL)
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Array("i", PROCESSES * reps)
    procs = [
        ctx.Process(
            target=budget_workers.spend_storm,
            args=(path, "ds", reps, THREADS, 1, str(EPS), barrier, results, i),
        )
        for i in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=600)
        assert p.exitcode == 0, p.exitcode
    expected = int(TOTAL // EPS)  # 85 of 256 requests fit
    rows = {row["dataset"]: row for row in ledger.show()}
    for r in range(reps):
        granted = sum(results[i * reps + r] for i in range(PROCESSES))
        row = rows[f"ds{r}"]
        assert granted == expected == row["queries"], (r, granted, row)
        assert row["spent"] == expected * EPS <= TOTAL
        assert row["remaining"] == TOTAL - expected * EPS < EPS
    ledger.verify()


def test_64_threads_x_4_processes_never_overspend_100_times(ctx: Any, tmp_path: Path) -> None:
    _storm(ctx, tmp_path, reps=100)


@pytest.mark.slow
def test_storm_300_times(ctx: Any, tmp_path: Path) -> None:
    _storm(ctx, tmp_path, reps=300)


def _lines(out: Path) -> list[list[str]]:
    return [ln.split() for ln in out.read_text().splitlines()] if out.exists() else []


def _kill_test(ctx: Any, tmp_path: Path, kills: int, seed: int) -> None:
    rnd = random.Random(seed)
    path, out = str(tmp_path / "budget.sqlite"), tmp_path / "out.txt"
    ledger = BudgetLedger(path)
    eps = Fraction(1, 7)  # not a binary fraction: exactness matters
    ledger.set_total("lung@beijing", 10**6)
    next_q, killed_mid = 0, 0
    for _ in range(kills):
        # restart a little before the last release: retries of debited and in-flight ids
        start = max(0, next_q - rnd.randint(0, 3))
        p = ctx.Process(
            target=budget_workers.debit_then_release,
            args=(path, "lung@beijing", str(out), start, start + 10_000, str(eps)),
        )
        p.start()
        time.sleep(rnd.uniform(0.0, 0.12))
        os.kill(p.pid, signal.SIGKILL)
        p.join()
        killed_mid += p.exitcode == -signal.SIGKILL
        released = [int(w[1][1:]) for w in _lines(out) if w[0] == "release"]
        next_q = max(released, default=-1) + 1
    assert killed_mid == kills  # every child died by SIGKILL, at a random point
    lines = _lines(out)
    receipts = ledger.receipts("lung@beijing")
    durable = {r.query_id: r for r in receipts}
    printed: dict[str, set[str]] = {}
    for w in lines:
        if w[0] == "receipt":
            printed.setdefault(w[1], set()).add(w[2])
    releases = [w[1] for w in lines if w[0] == "release"]
    assert releases, "no child got as far as a release; lengthen the delays"
    for q in releases:  # never a release without a durable debit
        assert q in durable, q
    for q, rids in printed.items():  # retries got the original receipt, which is on disk
        assert rids == {durable[q].receipt_id}, (q, rids)
    # never a double debit; the totals add up exactly
    assert len(receipts) == len(durable)
    row = ledger.show()[0]
    assert row["queries"] == len(receipts)
    assert row["spent"] == len(receipts) * eps == sum((r.epsilon for r in receipts), Fraction(0))
    assert [r.epsilon_spent for r in receipts] == [eps * (i + 1) for i in range(len(receipts))]
    ledger.verify()


def test_kill_9_never_releases_without_a_durable_debit(ctx: Any, tmp_path: Path) -> None:
    _kill_test(ctx, tmp_path, kills=25, seed=1)


@pytest.mark.slow
def test_kill_9_many_times(ctx: Any, tmp_path: Path) -> None:
    _kill_test(ctx, tmp_path, kills=300, seed=2)

"""Child-process bodies for the ledger's concurrency and crash tests (importable by
multiprocessing's forkserver; nothing here runs on import)."""

from __future__ import annotations

import os
import threading
from fractions import Fraction
from typing import Any

from safeflow.dp.budget import BudgetLedger
from safeflow.errors import BudgetExceeded


def spend_storm(
    path: str,
    prefix: str,
    reps: int,
    n_threads: int,
    per_thread: int,
    epsilon: str,
    barrier: Any,
    results: Any,
    index: int,
) -> None:
    """``reps`` rounds: all processes meet at ``barrier``, then ``n_threads`` threads each
    try ``per_thread`` spends of ``epsilon`` on dataset ``prefix + round``."""
    ledger = BudgetLedger(path)
    eps = Fraction(epsilon)
    pid = os.getpid()
    for r in range(reps):
        ds = f"{prefix}{r}"
        ok = [0] * n_threads
        start = threading.Barrier(n_threads)

        def run(
            t: int, ds: str = ds, ok: list[int] = ok, start: threading.Barrier = start, r: int = r
        ) -> None:
            start.wait()
            for j in range(per_thread):
                try:
                    ledger.spend(ds, f"r{r}-p{pid}-t{t}-j{j}", eps)
                    ok[t] += 1
                except BudgetExceeded:
                    pass

        threads = [threading.Thread(target=run, args=(t,)) for t in range(n_threads)]
        barrier.wait()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        results[index * reps + r] = sum(ok)


def debit_then_release(
    path: str, dataset: str, out_path: str, start: int, stop: int, epsilon: str
) -> None:
    """Spend for queries ``start..stop-1``; after each durable debit print the receipt,
    then "release" (what customs does: release only after ``spend`` returned)."""
    fd = os.open(out_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, b"ready\n")
    ledger = BudgetLedger(path)
    for i in range(start, stop):
        qid = f"q{i:06d}"
        r = ledger.spend(dataset, qid, Fraction(epsilon))
        os.write(fd, f"receipt {qid} {r.receipt_id}\n".encode())
        os.write(fd, f"release {qid}\n".encode())
    os.write(fd, b"done\n")
    os.close(fd)

"""The privacy-budget ledger of a site: debit before release, exactly, durably, once.

One :class:`BudgetLedger` is a SQLite file (WAL journal, ``synchronous=FULL``) holding,
per site dataset (e.g. ``"lung@beijing"``), a total ε (and δ) and every debit made
against it. The rules (POLICY.md, STYLE.md item 3):

* **Exact arithmetic.** ε and δ are :class:`~fractions.Fraction`, stored as ``"num/den"``
  text; no float is ever added. ε spends of 0.1 + 0.2 fit a 0.3 budget exactly.
* **Inclusive limit.** A spend is allowed when ``spent + requested ≤ total`` (for ε and
  for δ); otherwise :class:`~safeflow.errors.BudgetExceeded` names what is left and
  nothing is spent.
* **Debit before release.** :meth:`BudgetLedger.spend` checks and records the debit in
  one ``BEGIN IMMEDIATE`` transaction and returns only after the commit is on disk. The
  caller releases the noised value only after ``spend`` has returned, so a crash at any
  point can lose a release but never leave a release without its debit.
* **Idempotent queries.** A retried query (same ``query_id``, same ε and δ) is not charged
  twice: ``spend`` returns the original receipt (``replayed=True``). The same id with a
  different ε or δ is an error (:class:`~safeflow.errors.InvalidParameter`).
* **Concurrency.** Writing threads of one process take a per-file lock, so SQLite sees
  one writer per process; processes serialise on SQLite's write lock (``BEGIN IMMEDIATE``
  waits up to ``timeout`` seconds). A replay or a refusal is answered from a read
  snapshot first (WAL readers never wait; debits are never removed and spent totals only
  grow, so such an answer is final); every debit is decided and recorded in one write
  transaction. Each thread uses its own connection (re-opened after ``fork``), so a
  ledger may be shared by threads and used in forked children.

Durability covers process crashes (``kill -9``) and, with ``synchronous=FULL`` on a local
disk that honours ``fsync``, power loss. Network file systems may not support WAL: the
constructor refuses a file whose journal cannot be switched to WAL.

Examples
--------
>>> import tempfile, pathlib
>>> from fractions import Fraction
>>> path = pathlib.Path(tempfile.mkdtemp()) / "budget.sqlite"
>>> ledger = BudgetLedger(path)
>>> ledger.set_total("lung@beijing", "0.3")
>>> r1 = ledger.spend("lung@beijing", "q1", 0.1)
>>> r2 = ledger.spend("lung@beijing", "q2", 0.2)
>>> ledger.remaining("lung@beijing").epsilon
Fraction(0, 1)
>>> ledger.spend("lung@beijing", "q1", 0.1).replayed    # a retry is not charged again
True
>>> try:
...     ledger.spend("lung@beijing", "q3", 0.1)
... except BudgetExceeded as e:
...     print(e)
privacy budget exceeded: dataset 'lung@beijing' has 0 ε left of 3/10; requested 1/10. Nothing was spent; ask for at most 0, or raise the dataset's total (a governance decision).
"""  # noqa: E501

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import sqlite3
import threading
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

from safeflow.dp.spec import exact, fraction_str
from safeflow.errors import AuditError, BudgetExceeded, InvalidParameter, SafeflowError

LEDGER_FORMAT = "safeflow.budget/1"
_FRACTION = re.compile(r"^-?\d+/[1-9]\d*$")
_MAX_NAME = 256

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS budgets (
    dataset        TEXT PRIMARY KEY,
    epsilon_total  TEXT NOT NULL,
    delta_total    TEXT NOT NULL,
    epsilon_spent  TEXT NOT NULL,
    delta_spent    TEXT NOT NULL,
    queries        INTEGER NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS debits (
    receipt_id     TEXT PRIMARY KEY,
    dataset        TEXT NOT NULL REFERENCES budgets(dataset),
    query_id       TEXT NOT NULL,
    epsilon        TEXT NOT NULL,
    delta          TEXT NOT NULL,
    epsilon_spent  TEXT NOT NULL,
    delta_spent    TEXT NOT NULL,
    epsilon_total  TEXT NOT NULL,
    delta_total    TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    UNIQUE (dataset, query_id)
);
CREATE TABLE IF NOT EXISTS releases (
    dataset        TEXT NOT NULL,
    query_id       TEXT NOT NULL,
    released_at    TEXT NOT NULL,
    PRIMARY KEY (dataset, query_id)
);
"""

# One lock per ledger file and process: threads of a process write one at a time.
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _reset_locks_after_fork() -> None:  # pragma: no cover - runs in forked children
    global _LOCKS_GUARD
    _LOCKS_GUARD = threading.Lock()
    _LOCKS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_locks_after_fork)


_NO_LOCK = contextlib.nullcontext()
# Connections a child inherited from its parent through fork(): SQLite forbids using them,
# and closing one would drop the child's own POSIX locks on the file, so they are kept here.
_INHERITED: list[Any] = []


class _Holder:
    """One thread's connection; closed when the holder is collected (thread end)."""

    __slots__ = ("__weakref__", "con", "pid")

    def __init__(self, con: sqlite3.Connection, pid: int) -> None:
        self.con, self.pid = con, pid

    def close(self) -> None:
        if self.pid == os.getpid():  # never close a connection inherited through fork
            with contextlib.suppress(sqlite3.Error):
                self.con.close()

    def __del__(self) -> None:
        self.close()


def _close_all(holders: weakref.WeakSet[_Holder]) -> None:
    """Close the connections this process opened (never those inherited through fork)."""
    for h in list(holders):
        h.close()


def _lock_for(path: str) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(path, threading.Lock())


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def _parse(text: str, what: str) -> Fraction:
    if not isinstance(text, str) or not _FRACTION.match(text):
        raise AuditError(f"budget ledger holds a malformed {what} {text!r}; it was edited")
    return Fraction(text)


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > _MAX_NAME or not value.isprintable():
        raise InvalidParameter(
            f"{what} must be a non-empty printable string of at most {_MAX_NAME} characters; "
            f"got {value!r}"
        )
    return value


def _positive(value: Any, what: str) -> Fraction:
    try:
        x = exact(value, what)
    except InvalidParameter:
        x = None
    if x is None or x <= 0:
        raise InvalidParameter(f"{what} must be a finite number > 0; got {value!r}")
    return x


def _non_negative(value: Any, what: str, upper: Fraction | None = None) -> Fraction:
    try:
        x = exact(value, what)
    except InvalidParameter:
        x = None
    if x is None or x < 0 or (upper is not None and x >= upper):
        rng = f"≥ 0 and < {upper}" if upper is not None else "≥ 0"
        raise InvalidParameter(f"{what} must be a finite number {rng}; got {value!r}")
    return x


class Remaining(NamedTuple):
    """What is left of a dataset's budget (exact)."""

    epsilon: Fraction
    delta: Fraction


@dataclass(frozen=True)
class Receipt:
    """Proof that a debit is on disk; release the noised value only after getting one.

    Attributes
    ----------
    receipt_id : str
        Unique id of the debit (stable across retries of the same query).
    dataset, query_id : str
    epsilon, delta : Fraction
        What this query spent.
    epsilon_spent, delta_spent : Fraction
        The dataset's spent totals right after this debit.
    epsilon_total, delta_total : Fraction
        The dataset's totals when the debit was made.
    created_at : str
        ISO 8601 UTC time of the debit.
    replayed : bool
        True when the query id had already been charged and this is the original receipt.
    """

    receipt_id: str
    dataset: str
    query_id: str
    epsilon: Fraction
    delta: Fraction
    epsilon_spent: Fraction
    delta_spent: Fraction
    epsilon_total: Fraction
    delta_total: Fraction
    created_at: str
    replayed: bool = False

    @property
    def remaining(self) -> Remaining:
        """What was left right after this debit."""
        return Remaining(
            self.epsilon_total - self.epsilon_spent, self.delta_total - self.delta_spent
        )

    def to_facts(self) -> dict[str, Any]:
        """JSON-able form (exact values as ``"num/den"`` strings) for facts and audit logs."""
        return {
            "receipt_id": self.receipt_id,
            "dataset": self.dataset,
            "query_id": self.query_id,
            "epsilon": fraction_str(self.epsilon),
            "delta": fraction_str(self.delta),
            "epsilon_spent": fraction_str(self.epsilon_spent),
            "delta_spent": fraction_str(self.delta_spent),
            "epsilon_total": fraction_str(self.epsilon_total),
            "delta_total": fraction_str(self.delta_total),
            "created_at": self.created_at,
            "replayed": self.replayed,
        }


def _receipt(row: sqlite3.Row, replayed: bool) -> Receipt:
    return Receipt(
        row["receipt_id"],
        row["dataset"],
        row["query_id"],
        _parse(row["epsilon"], "epsilon"),
        _parse(row["delta"], "delta"),
        _parse(row["epsilon_spent"], "epsilon"),
        _parse(row["delta_spent"], "delta"),
        _parse(row["epsilon_total"], "epsilon"),
        _parse(row["delta_total"], "delta"),
        row["created_at"],
        replayed,
    )


class BudgetLedger:
    """Persistent, exact, crash- and concurrency-safe privacy budgets of site datasets.

    Parameters
    ----------
    path : str or PathLike
        The SQLite file (created if missing).
    timeout : float
        Seconds to wait for another process's write lock before giving up (nothing is
        spent then).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> ledger = BudgetLedger(pathlib.Path(tempfile.mkdtemp()) / "b.sqlite")
    >>> ledger.set_total("lung@amsterdam", 1)
    >>> r = ledger.spend("lung@amsterdam", "table1-age", "0.25")
    >>> str(r.epsilon), str(r.remaining.epsilon)
    ('1/4', '3/4')
    >>> [(row["dataset"], str(row["spent"]), row["queries"]) for row in ledger.show()]
    [('lung@amsterdam', '1/4', 1)]
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 60.0) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise InvalidParameter(f"timeout must be a number of seconds > 0; got {timeout!r}")
        self.path = Path(path).expanduser().resolve()
        self.timeout = float(timeout)
        self._lock, self._lock_pid = _lock_for(str(self.path)), os.getpid()
        self._local = threading.local()
        self._open: weakref.WeakSet[_Holder] = weakref.WeakSet()
        weakref.finalize(self, _close_all, self._open)
        with self._lock:
            con = self._connect()
            try:
                mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise SafeflowError(
                        f"budget ledger {self.path} cannot use a WAL journal (got {mode!r}); "
                        "keep it on a local disk"
                    )
                con.execute("BEGIN IMMEDIATE")
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        con.execute(stmt)
                fmt = con.execute("SELECT value FROM meta WHERE key='format'").fetchone()
                if fmt is None:
                    con.execute("INSERT INTO meta VALUES ('format', ?)", (LEDGER_FORMAT,))
                elif fmt[0] != LEDGER_FORMAT:
                    raise SafeflowError(
                        f"{self.path} is not a {LEDGER_FORMAT} budget ledger (format {fmt[0]!r})"
                    )
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
            finally:
                con.close()

    def _connect(self) -> sqlite3.Connection:
        try:
            # one thread uses a connection at a time; close() may come from another thread
            con = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as e:
            raise SafeflowError(f"cannot open the budget ledger {self.path}: {e}") from e
        con.row_factory = sqlite3.Row
        con.execute("PRAGMA synchronous=FULL")
        con.execute("PRAGMA foreign_keys=ON")
        return con

    def _process_lock(self) -> threading.Lock:
        """The per-file lock of *this* process (a lock copied by fork() may be held)."""
        if self._lock_pid != os.getpid():
            self._lock, self._lock_pid = _lock_for(str(self.path)), os.getpid()
        return self._lock

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection (kept open: closing the last connection of a WAL file
        checkpoints it, which would cost an fsync of the database on every call). It is
        closed when the thread ends, on :meth:`close`, or when the ledger is collected."""
        pid = os.getpid()
        holder = getattr(self._local, "holder", None)
        if holder is not None and holder.pid == pid:
            return holder.con
        if holder is not None:  # inherited across fork(): never use nor close it here
            _INHERITED.append(holder)
        holder = _Holder(self._connect(), pid)
        self._local.holder = holder
        self._open.add(holder)
        return holder.con

    def close(self) -> None:
        """Close this process's connections to the ledger (it reopens them if used again).

        Examples
        --------
        >>> import tempfile, pathlib
        >>> with BudgetLedger(pathlib.Path(tempfile.mkdtemp()) / "b.sqlite") as ledger:
        ...     ledger.set_total("d", 1)
        """
        _close_all(self._open)
        self._local = threading.local()

    def __enter__(self) -> BudgetLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction: BEGIN IMMEDIATE (write) or DEFERRED (read); commit on success."""
        with self._process_lock() if write else _NO_LOCK:
            con = self._connection()
            try:
                con.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            except sqlite3.OperationalError as e:
                raise SafeflowError(
                    f"the budget ledger {self.path} is busy or unavailable ({e}); nothing "
                    "was spent. Retry the query with the same query_id"
                ) from e
            try:
                yield con
                con.execute("COMMIT")  # returns once the WAL is fsync'ed (FULL)
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise

    def set_total(self, dataset: str, epsilon_total: Any, delta_total: Any = 0) -> None:
        """Set (or raise) a dataset's total budget; it may not go below what is spent.

        Parameters
        ----------
        dataset : str
            The site dataset, e.g. ``"lung@beijing"``.
        epsilon_total : number
            Total ε, > 0 (exact: see :func:`safeflow.dp.spec.exact`).
        delta_total : number
            Total δ, ``0 ≤ δ < 1``.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> ledger = BudgetLedger(pathlib.Path(tempfile.mkdtemp()) / "b.sqlite")
        >>> ledger.set_total("d", "1/2", delta_total=1e-6)
        >>> ledger.remaining("d")
        Remaining(epsilon=Fraction(1, 2), delta=Fraction(1, 1000000))
        """
        ds = _name(dataset, "dataset")
        eps = _positive(epsilon_total, "epsilon_total")
        delta = _non_negative(delta_total, "delta_total", Fraction(1))
        now = _now()
        with self._transaction() as con:
            row = con.execute("SELECT * FROM budgets WHERE dataset=?", (ds,)).fetchone()
            if row is None:
                con.execute(
                    "INSERT INTO budgets VALUES (?, ?, ?, '0/1', '0/1', 0, ?, ?)",
                    (ds, fraction_str(eps), fraction_str(delta), now, now),
                )
                return
            spent_e = _parse(row["epsilon_spent"], "epsilon")
            spent_d = _parse(row["delta_spent"], "delta")
            if eps < spent_e or delta < spent_d:
                raise InvalidParameter(
                    f"dataset {ds!r} has already spent ε {spent_e} and δ {spent_d}; the total "
                    f"cannot be set below that (asked ε {eps}, δ {delta})"
                )
            con.execute(
                "UPDATE budgets SET epsilon_total=?, delta_total=?, updated_at=? WHERE dataset=?",
                (fraction_str(eps), fraction_str(delta), now, ds),
            )

    def spend(self, dataset: str, query_id: str, epsilon: Any, delta: Any = 0) -> Receipt:
        """Debit ``epsilon`` (and ``delta``) for ``query_id``, durably, or refuse.

        In one ``BEGIN IMMEDIATE`` transaction: a query id seen before returns its original
        receipt (same ε and δ) or is refused (different ones); otherwise the debit is made
        when ``spent + requested ≤ total`` for ε and δ, and committed to disk before this
        returns. Release the noised value only after this returns.

        Parameters
        ----------
        dataset : str
        query_id : str
            Identifies the query across retries (e.g. the release's hash).
        epsilon : number
            > 0, exact.
        delta : number
            ≥ 0, exact.

        Returns
        -------
        Receipt

        Raises
        ------
        BudgetExceeded
            The request does not fit; nothing was spent. The message names what is left.
        InvalidParameter
            Bad values, unknown dataset, or a known query id with a different ε or δ.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> ledger = BudgetLedger(pathlib.Path(tempfile.mkdtemp()) / "b.sqlite")
        >>> ledger.set_total("lung@beijing", 1)
        >>> _ = ledger.spend("lung@beijing", "q1", "4/5")
        >>> ledger.spend("lung@beijing", "q2", 0.3)
        Traceback (most recent call last):
        ...
        safeflow.errors.BudgetExceeded: privacy budget exceeded: dataset 'lung@beijing' has 1/5 ε left of 1; requested 3/10. Nothing was spent; ask for at most 1/5, or raise the dataset's total (a governance decision).
        """  # noqa: E501
        ds = _name(dataset, "dataset")
        qid = _name(query_id, "query_id")
        eps = _positive(epsilon, "epsilon")
        delta = _non_negative(delta, "delta", Fraction(1))
        # Fast path on a read snapshot (no lock; WAL readers never wait): a replay or a
        # refusal seen there is final, because debits are never removed and the spent
        # totals only grow. Everything else is decided in the write transaction below.
        with self._transaction(write=False) as con:
            found = self._check(con, ds, qid, eps, delta)
        if found is not None:
            return found
        with self._transaction() as con:
            found = self._check(con, ds, qid, eps, delta)
            if found is not None:
                return found
            row = con.execute("SELECT * FROM budgets WHERE dataset=?", (ds,)).fetchone()
            total_e = _parse(row["epsilon_total"], "epsilon")
            total_d = _parse(row["delta_total"], "delta")
            new_e = _parse(row["epsilon_spent"], "epsilon") + eps
            new_d = _parse(row["delta_spent"], "delta") + delta
            rid, now = uuid.uuid4().hex, _now()
            con.execute(
                "INSERT INTO debits VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    rid,
                    ds,
                    qid,
                    fraction_str(eps),
                    fraction_str(delta),
                    fraction_str(new_e),
                    fraction_str(new_d),
                    fraction_str(total_e),
                    fraction_str(total_d),
                    now,
                ),
            )
            con.execute(
                "UPDATE budgets SET epsilon_spent=?, delta_spent=?, "
                "queries=queries+1, updated_at=? WHERE dataset=?",
                (fraction_str(new_e), fraction_str(new_d), now, ds),
            )
        return Receipt(rid, ds, qid, eps, delta, new_e, new_d, total_e, total_d, now, False)

    def mark_released(self, dataset: str, query_id: str) -> None:
        """Record that the noised value of a debited query has been released.

        A retry of a released query must not draw fresh noise for free (two draws of the
        same statistic average the noise away): :meth:`released` lets the caller refuse it.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> ledger = BudgetLedger(pathlib.Path(tempfile.mkdtemp()) / "b.sqlite")
        >>> ledger.set_total("d", 1)
        >>> _ = ledger.spend("d", "q1", "1/2")
        >>> ledger.mark_released("d", "q1")
        >>> ledger.released("d", "q1"), ledger.released("d", "q2")
        (True, False)
        """
        ds, qid = _name(dataset, "dataset"), _name(query_id, "query_id")
        with self._transaction() as con:
            if con.execute("SELECT 1 FROM debits WHERE dataset=? AND query_id=?",
                           (ds, qid)).fetchone() is None:
                raise InvalidParameter(
                    f"query {qid!r} was never debited on dataset {ds!r}; debit before release")
            con.execute("INSERT OR IGNORE INTO releases VALUES (?, ?, ?)", (ds, qid, _now()))

    def released(self, dataset: str, query_id: str) -> bool:
        """True when :meth:`mark_released` was called for this query."""
        ds, qid = _name(dataset, "dataset"), _name(query_id, "query_id")
        with self._transaction(write=False) as con:
            return con.execute("SELECT 1 FROM releases WHERE dataset=? AND query_id=?",
                               (ds, qid)).fetchone() is not None

    def _check(
        self, con: sqlite3.Connection, ds: str, qid: str, eps: Fraction, delta: Fraction
    ) -> Receipt | None:
        """The earlier receipt of ``qid``, or None when the debit fits; raise otherwise."""
        row = con.execute("SELECT * FROM budgets WHERE dataset=?", (ds,)).fetchone()
        if row is None:
            raise InvalidParameter(
                f"dataset {ds!r} has no privacy budget in {self.path.name}; set one with "
                "BudgetLedger.set_total (or `safeflow budget set`) first"
            )
        prev = con.execute(
            "SELECT * FROM debits WHERE dataset=? AND query_id=?", (ds, qid)
        ).fetchone()
        if prev is not None:
            old = _receipt(prev, replayed=True)
            if old.epsilon != eps or old.delta != delta:
                raise InvalidParameter(
                    f"query {qid!r} on dataset {ds!r} was already charged ε {old.epsilon}, "
                    f"δ {old.delta}; a retry must ask for the same values (asked ε {eps}, "
                    f"δ {delta}). Use a new query_id for a different query"
                )
            return old
        total_e = _parse(row["epsilon_total"], "epsilon")
        total_d = _parse(row["delta_total"], "delta")
        spent_e = _parse(row["epsilon_spent"], "epsilon")
        spent_d = _parse(row["delta_spent"], "delta")
        if spent_e + eps > total_e:
            raise _exceeded(ds, "ε", total_e - spent_e, total_e, eps)
        if spent_d + delta > total_d:
            raise _exceeded(ds, "δ", total_d - spent_d, total_d, delta)
        return None

    def remaining(self, dataset: str) -> Remaining:
        """What is left of ``dataset``'s budget (exact ε and δ).

        Examples
        --------
        >>> import tempfile, pathlib
        >>> ledger = BudgetLedger(pathlib.Path(tempfile.mkdtemp()) / "b.sqlite")
        >>> ledger.set_total("d", 1)
        >>> ledger.remaining("d").epsilon
        Fraction(1, 1)
        """
        ds = _name(dataset, "dataset")
        with self._transaction(write=False) as con:
            row = con.execute("SELECT * FROM budgets WHERE dataset=?", (ds,)).fetchone()
        if row is None:
            raise InvalidParameter(f"dataset {ds!r} has no privacy budget in {self.path.name}")
        return Remaining(
            _parse(row["epsilon_total"], "epsilon") - _parse(row["epsilon_spent"], "epsilon"),
            _parse(row["delta_total"], "delta") - _parse(row["delta_spent"], "delta"),
        )

    def receipts(self, dataset: str) -> list[Receipt]:
        """Every debit of ``dataset``, in the order they were made.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> ledger = BudgetLedger(pathlib.Path(tempfile.mkdtemp()) / "b.sqlite")
        >>> ledger.set_total("d", 1)
        >>> _ = ledger.spend("d", "a", "1/3")
        >>> [r.query_id for r in ledger.receipts("d")]
        ['a']
        """
        ds = _name(dataset, "dataset")
        with self._transaction(write=False) as con:
            rows = con.execute(
                "SELECT * FROM debits WHERE dataset=? ORDER BY rowid", (ds,)
            ).fetchall()
        return [_receipt(r, replayed=False) for r in rows]

    def show(self) -> list[dict[str, Any]]:
        """One row per dataset, for ``safeflow budget show``.

        Returns
        -------
        list of dict
            Keys ``dataset``, ``total``, ``spent``, ``remaining`` (ε, Fractions),
            ``delta_total``, ``delta_spent``, ``delta_remaining`` and ``queries``.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> ledger = BudgetLedger(pathlib.Path(tempfile.mkdtemp()) / "b.sqlite")
        >>> ledger.set_total("d", 2)
        >>> row = ledger.show()[0]
        >>> row["dataset"], row["remaining"], row["queries"]
        ('d', Fraction(2, 1), 0)
        """
        with self._transaction(write=False) as con:
            rows = con.execute("SELECT * FROM budgets ORDER BY dataset").fetchall()
        out = []
        for r in rows:
            te, se = _parse(r["epsilon_total"], "epsilon"), _parse(r["epsilon_spent"], "epsilon")
            td, sd = _parse(r["delta_total"], "delta"), _parse(r["delta_spent"], "delta")
            out.append(
                {
                    "dataset": r["dataset"],
                    "total": te,
                    "spent": se,
                    "remaining": te - se,
                    "delta_total": td,
                    "delta_spent": sd,
                    "delta_remaining": td - sd,
                    "queries": int(r["queries"]),
                }
            )
        return out

    def verify(self) -> None:
        """Re-add every debit exactly and check it against the stored totals.

        Raises
        ------
        AuditError
            When a dataset's spent ε/δ or query count differs from the sum of its debits,
            or exceeds its total.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> ledger = BudgetLedger(pathlib.Path(tempfile.mkdtemp()) / "b.sqlite")
        >>> ledger.set_total("d", 1)
        >>> _ = ledger.spend("d", "a", 0.5)
        >>> ledger.verify()
        """
        with self._transaction(write=False) as con:
            budgets = con.execute("SELECT * FROM budgets").fetchall()
            debits = con.execute("SELECT dataset, epsilon, delta FROM debits").fetchall()
        sums: dict[str, list[Any]] = {}
        for d in debits:
            acc = sums.setdefault(d["dataset"], [Fraction(0), Fraction(0), 0])
            acc[0] += _parse(d["epsilon"], "epsilon")
            acc[1] += _parse(d["delta"], "delta")
            acc[2] += 1
        for b in budgets:
            se, sd, n = sums.pop(b["dataset"], [Fraction(0), Fraction(0), 0])
            stored = (
                _parse(b["epsilon_spent"], "epsilon"),
                _parse(b["delta_spent"], "delta"),
                int(b["queries"]),
            )
            if stored != (se, sd, n):
                raise AuditError(
                    f"budget ledger {self.path.name}: dataset {b['dataset']!r} records spent "
                    f"ε {stored[0]}, δ {stored[1]} over {stored[2]} queries, but its debits "
                    f"add up to ε {se}, δ {sd} over {n}"
                )
            if se > _parse(b["epsilon_total"], "epsilon") or sd > _parse(b["delta_total"], "delta"):
                raise AuditError(
                    f"budget ledger {self.path.name}: dataset {b['dataset']!r} "
                    "has spent more than its total"
                )
        if sums:
            raise AuditError(
                f"budget ledger {self.path.name} has debits for unknown datasets {sorted(sums)}"
            )

    def __repr__(self) -> str:
        return f"<BudgetLedger {self.path}>"


def _exceeded(
    ds: str, sym: str, left: Fraction, total: Fraction, requested: Fraction
) -> BudgetExceeded:
    err = BudgetExceeded(
        f"privacy budget exceeded: dataset {ds!r} has {left} {sym} left of {total}; requested "
        f"{requested}. Nothing was spent; ask for at most {left}, or raise the dataset's "
        "total (a governance decision)."
    )
    err.dataset, err.remaining, err.total, err.requested = ds, left, total, requested  # type: ignore[attr-defined]
    return err


__all__ = ["LEDGER_FORMAT", "BudgetLedger", "Receipt", "Remaining"]

"""The release ledger: refuse releases that could be differenced against earlier ones.

Every released statistic is recorded with the definition of the set of persons it covers
(:class:`Population`: the sites, the filter conditions and the grouping) and its size ``n``.
A new release whose population *contains* or *is contained in* an earlier one's, and differs
from it by a non-empty set smaller than the threshold, is refused: subtracting the two would
describe that small group (POLICY.md: "120 diabetics" then "117 diabetics aged under 90"
describes 3 persons). The refusal is :class:`~safeflow.errors.ExportDenied` naming the rule
``SDC-differencing`` and the fix, never the counts.

Containment is decided from the definitions: ``B`` is a subset of ``A`` when B's sites are
among A's and B's filters include all of A's (more conditions, fewer persons). Equal
definitions are compared too (the data may have changed between releases). The difference
is ``|n_A - n_B|``; every earlier release is compared, whatever its statistic, and the
grouping is recorded but does not make populations incomparable (a grouped release's cells
sum to its population). Not covered: overlapping populations neither of which contains the
other, which need three or more releases to difference.

Storage is SQLite in WAL mode with ``synchronous=FULL``; the check and the record happen in
one ``BEGIN IMMEDIATE`` transaction, so two processes cannot both pass the check, and a
process killed mid-write leaves a store that opens and keeps every committed release.

Examples
--------
>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "ledger.sqlite")
>>> with ReleaseLedger(path) as ledger:
...     diabetics = Population({"beijing"}, {"diabetes == 1"})
...     _ = ledger.check_and_record("r1", "count", diabetics, 120, threshold=10)
...     under90 = Population({"beijing"}, {"diabetes == 1", "age < 90"})
...     ledger.check_and_record("r2", "count", under90, 117, threshold=10)
Traceback (most recent call last):
...
safeflow.errors.ExportDenied: release 'r2' refused by SDC-differencing: ...
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safeflow.errors import AuditError, ExportDenied, InvalidParameter
from safeflow.policy._exact import is_int

RULE = "SDC-differencing"
FIX = (
    "change the population so that it differs from every earlier release's population by "
    "at least the threshold (drop or widen a filter, add sites), or do not release it"
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS releases (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    release_id TEXT NOT NULL UNIQUE,
    statistic TEXT NOT NULL,
    sites TEXT NOT NULL,
    filters TEXT NOT NULL,
    grp TEXT,
    n INTEGER NOT NULL CHECK (n >= 0),
    threshold INTEGER NOT NULL CHECK (threshold >= 1)
)
"""


def _canon(text: str) -> str:
    return " ".join(text.split())


def _strings(values: Any, what: str) -> frozenset[str]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise InvalidParameter(f"{what} must be a set of non-empty strings; got {values!r}")
    out = set()
    for v in values:
        if not isinstance(v, str) or not v.strip():
            raise InvalidParameter(f"{what} must be a set of non-empty strings; got {v!r}")
        out.add(_canon(v))
    return frozenset(out)


@dataclass(frozen=True)
class Population:
    """The definition of a released statistic's set of persons.

    Parameters
    ----------
    sites : iterable of str
        The sites whose persons are covered (at least one).
    filters : iterable of str
        Canonical condition strings, e.g. ``"diabetes == 1"``, ``"age < 90"`` (whitespace
        is normalised); more filters means fewer persons.
    group : str, optional
        The grouping variable of the release, if any (recorded, not compared).

    Examples
    --------
    >>> a = Population({"bj"}, {"diabetes == 1"})
    >>> Population({"bj"}, {"diabetes == 1", "age  <  90"}).subset_of(a)
    True
    """

    sites: frozenset[str]
    filters: frozenset[str] = frozenset()
    group: str | None = None

    def __post_init__(self) -> None:
        sites = _strings(self.sites, "Population sites")
        if not sites:
            raise InvalidParameter("Population sites must name at least one site")
        object.__setattr__(self, "sites", sites)
        object.__setattr__(self, "filters", _strings(self.filters, "Population filters"))
        if self.group is not None and (not isinstance(self.group, str) or not self.group):
            raise InvalidParameter(
                f"Population group must be a non-empty string or None; got {self.group!r}"
            )

    def subset_of(self, other: Population) -> bool:
        """True when every person covered by this definition is covered by ``other``."""
        return self.sites <= other.sites and self.filters >= other.filters

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, sorted."""
        return {"sites": sorted(self.sites), "filters": sorted(self.filters), "group": self.group}


@dataclass(frozen=True)
class LedgerEntry:
    """One recorded release."""

    seq: int
    release_id: str
    statistic: str
    population: Population
    n: int
    threshold: int


class ReleaseLedger:
    """A persistent, crash-safe record of releases that refuses differencing.

    Parameters
    ----------
    path : str or Path
        The SQLite file (created if absent).
    timeout : float
        Seconds to wait for another process holding the write lock.

    Examples
    --------
    >>> import tempfile, os
    >>> with ReleaseLedger(os.path.join(tempfile.mkdtemp(), "l.sqlite")) as led:
    ...     _ = led.check_and_record("t1", "count", Population({"bj"}), 50, threshold=10)
    ...     led.verify()
    ...     [(e.release_id, e.n) for e in led.entries()]
    [('t1', 50)]
    """

    def __init__(self, path: str | Path, *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self._timeout = timeout
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        self._db.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        with self._lock:
            # Switching a new file to WAL needs an exclusive lock that SQLite does not wait
            # for; concurrent openers retry until the timeout (journal_mode persists).
            self._retry(lambda: self._db.execute("PRAGMA journal_mode=WAL"))
            self._db.execute("PRAGMA synchronous=FULL")
            exists = self._db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'releases'"
            ).fetchone()
            if exists is None:  # only a new store needs the write lock to open
                self._begin()
                try:
                    self._db.execute(_SCHEMA)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise

    def _retry(self, step: Any) -> Any:
        deadline = time.monotonic() + self._timeout
        delay = 0.001
        while True:
            try:
                return step()
            except sqlite3.OperationalError as e:
                busy = "locked" in str(e) or "busy" in str(e)
                if not busy or time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _begin(self) -> None:
        """``BEGIN IMMEDIATE``: take the write lock before reading, so check+record is atomic."""
        self._retry(lambda: self._db.execute("BEGIN IMMEDIATE"))

    def check_and_record(
        self, release_id: str, statistic: str, population: Population, n: int, *, threshold: int
    ) -> LedgerEntry:
        """Refuse a differencing release, or record it; both in one transaction.

        Parameters
        ----------
        release_id : str
            Unique id of the release. Recording the same release again is a no-op that
            returns the existing entry (safe to retry after a crash).
        statistic : str
            What is released (e.g. ``"count"``, ``"mean:age"``), for the audit trail.
        population : Population
            The set of persons the statistic covers.
        n : int
            Number of persons in it.
        threshold : int
            Smallest allowed non-empty difference (e.g. the SDC profile's min cell).

        Returns
        -------
        LedgerEntry

        Raises
        ------
        ExportDenied
            With ``rule == "SDC-differencing"`` and ``fix``; nothing is recorded.
        InvalidParameter
            Malformed arguments, or a release id reused for a different release.

        Examples
        --------
        >>> import tempfile, os
        >>> led = ReleaseLedger(os.path.join(tempfile.mkdtemp(), "l.sqlite"))
        >>> led.check_and_record("r1", "count", Population({"a"}), 120, threshold=10).seq
        1
        >>> led.check_and_record("r2", "count", Population({"a"}, {"x == 1"}), 110,
        ...                      threshold=10).seq
        2
        >>> led.close()
        """
        if not isinstance(release_id, str) or not release_id:
            raise InvalidParameter(f"release_id must be a non-empty string; got {release_id!r}")
        if not isinstance(statistic, str) or not statistic:
            raise InvalidParameter(f"statistic must be a non-empty string; got {statistic!r}")
        if not isinstance(population, Population):
            raise InvalidParameter("population must be a safeflow.policy.Population")
        if not is_int(n) or n < 0:
            raise InvalidParameter(f"n must be an int >= 0; got {n!r}")
        if not is_int(threshold) or threshold < 1:
            raise InvalidParameter(f"threshold must be an int >= 1; got {threshold!r}")
        n, threshold = int(n), int(threshold)
        row = (
            release_id,
            statistic,
            json.dumps(sorted(population.sites)),
            json.dumps(sorted(population.filters)),
            population.group,
            n,
            threshold,
        )
        with self._lock:
            self._begin()
            try:
                entry = self._check(release_id, population, n, threshold, row)
                if entry is None:
                    cur = self._db.execute(
                        "INSERT INTO releases (release_id, statistic, sites, filters, grp, n, "
                        "threshold) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        row,
                    )
                    entry = LedgerEntry(
                        int(cur.lastrowid or 0), release_id, statistic, population, n, threshold
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return entry

    def _check(
        self, release_id: str, population: Population, n: int, threshold: int, row: tuple[Any, ...]
    ) -> LedgerEntry | None:
        same = self._db.execute(
            "SELECT seq, release_id, statistic, sites, filters, grp, n, threshold FROM releases "
            "WHERE release_id = ?",
            (release_id,),
        ).fetchone()
        if same is not None:
            if tuple(same[1:]) != row:
                raise InvalidParameter(
                    f"release id {release_id!r} is already recorded for a different release; "
                    "use a new id"
                )
            return _entry(same)
        for earlier in self._db.execute(
            "SELECT seq, release_id, statistic, sites, filters, grp, n, threshold "
            "FROM releases ORDER BY seq"
        ):
            old = _entry(earlier)
            comparable = population.subset_of(old.population) or old.population.subset_of(
                population
            )
            if comparable and 0 < abs(old.n - n) < threshold:
                raise ExportDenied(
                    f"release {release_id!r} refused by {RULE}: its population differs from "
                    f"that of earlier release {old.release_id!r} by a non-empty group smaller "
                    f"than the threshold ({threshold}), so subtracting the two would describe "
                    f"that group. Fix: {FIX}",
                    rule=RULE, fix=FIX,
                )
        return None

    def entries(self) -> list[LedgerEntry]:
        """Every recorded release, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, release_id, statistic, sites, filters, grp, n, threshold "
                "FROM releases ORDER BY seq"
            ).fetchall()
        return [_entry(r) for r in rows]

    def verify(self) -> None:
        """Run SQLite's integrity check; raise :class:`~safeflow.errors.AuditError` if bad."""
        with self._lock:
            result = [r[0] for r in self._db.execute("PRAGMA integrity_check").fetchall()]
        if result != ["ok"]:
            raise AuditError(
                f"release ledger {self.path} failed its integrity check: "
                f"{'; '.join(map(str, result[:3]))}"
            )

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> ReleaseLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ReleaseLedger {self.path}>"


def _entry(row: tuple[Any, ...]) -> LedgerEntry:
    seq, rid, stat, sites, filters, grp, n, threshold = row
    return LedgerEntry(
        int(seq),
        rid,
        stat,
        Population(frozenset(json.loads(sites)), frozenset(json.loads(filters)), grp),
        int(n),
        int(threshold),
    )


__all__ = ["FIX", "RULE", "LedgerEntry", "Population", "ReleaseLedger"]

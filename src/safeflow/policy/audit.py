"""Append-only Merkle audit log (RFC 6962 hashing) in SQLite, with signed checkpoints.

Every site and the coordinator keep one. It records the study registration (before a run),
every message that crossed a border (during) and every decision and release (after).
Each entry is a JSON object with at least ``kind`` and ``time``, stored in its canonical
form (RFC 8785); the log is the Merkle tree of RFC 6962 over those bytes:

* leaf hash ``SHA-256(0x00 || entry)``, node hash ``SHA-256(0x01 || left || right)``;
* the root of ``n`` leaves is the RFC's MTH (left subtree = the largest power of two
  smaller than ``n``), so a log of any size has one well-defined root (the hashing and
  proof functions are in :mod:`safeflow.policy.merkle`, the canonical JSON in
  :mod:`safeflow.policy.canonical`);
* a :class:`SignedCheckpoint` is an Ed25519 signature by the log's key over
  ``(log_id, size, root, timestamp)``; an auditor holding one can later ask for an
  inclusion proof (entry ``i`` is in the tree of that size) or a consistency proof (the
  tree of that size is a prefix of today's tree), both as in RFC 9162 section 2.1.

The SQLite file holds only entries and hashes, never key material: the entries, their leaf
hashes, the hash of every complete (power-of-two, aligned) subtree (so roots and proofs
cost O(log n) lookups) and the signed checkpoints. The database runs in WAL mode with
``synchronous=FULL``: an ``append`` that returned is on disk. Appends take the write lock
first (``BEGIN IMMEDIATE``), so threads and processes may append to one file at once.
SQLite triggers refuse updates and deletes; :func:`verify_log` detects what a person with
write access to the file could still do (edit, delete, reorder or truncate rows, drop the
triggers) by recomputing every hash from the entries and checking the signed checkpoints.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from safeflow.crypto.keys import SigningKey
>>> from safeflow.policy.merkle import verify_inclusion
>>> tmp = tempfile.TemporaryDirectory()
>>> key = SigningKey.from_bytes(bytes(32))
>>> log = AuditLog(Path(tmp.name) / "audit.sqlite", signing_key=key, log_id="beijing")
>>> index, leaf = log.append({"kind": "study_registration", "time": "2026-01-05T09:00:00Z",
...                           "study": "color-iv"})
>>> index, log.size
(0, 1)
>>> cp = log.checkpoint()
>>> verify_inclusion(leaf, index, cp.size, log.inclusion_proof(index, cp.size), cp.root)
True
>>> verify_log(log.path, key.verify_key).size
1
>>> log.close(); tmp.cleanup()
"""

from __future__ import annotations

import hmac
import json
import re
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import rfc8785

from safeflow.crypto.keys import SigningKey, VerifyKey
from safeflow.errors import AuditError, CryptoError, InvalidParameter, VerificationError
from safeflow.policy.canonical import Clock, canonical_json, check_timestamp, utc_timestamp
from safeflow.policy.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    SubtreeGetter,
    _as_size,
    _complete_subtrees,
    _path,
    _range_root,
    _subproof,
    leaf_hash,
    node_hash,
)

#: The ``format`` recorded in a log file; it changes only with an incompatible layout.
LOG_FORMAT: Final = "safeflow/audit-log/v1"

#: The ``type`` field of the canonical checkpoint statement that is signed.
CHECKPOINT_TYPE: Final = "safeflow/audit-checkpoint/v1"

#: Fields an entry of each known kind must carry (other kinds need only kind and time).
ENTRY_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "study_registration": (),
    "message": ("hash", "size", "protocol", "stage", "sender", "receiver"),
    "decision": ("outcome",),
    "release": ("output_sha256",),
}

_KIND = re.compile(r"[a-z][a-z0-9_]{0,63}")
_LOG_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}")
_TABLES: Final = ("meta", "entries", "nodes", "checkpoints")
_BUSY_TIMEOUT_S: Final = 60.0
_MAX_PROBLEMS: Final = 20

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS entries ("
    " idx INTEGER PRIMARY KEY, entry BLOB NOT NULL, leaf_hash BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS nodes ("
    " level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,"
    " PRIMARY KEY (level, idx)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS checkpoints ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, log_id TEXT NOT NULL, size INTEGER NOT NULL,"
    " root BLOB NOT NULL, timestamp TEXT NOT NULL, signature BLOB NOT NULL)",
    *(
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op} BEFORE {op.upper()} ON {table} "
        "BEGIN SELECT RAISE(ABORT, 'the safeflow audit log is append-only'); END"
        for table in _TABLES
        for op in ("update", "delete")
    ),
)
_TRIGGERS: Final = frozenset(f"{t}_no_{op}" for t in _TABLES for op in ("update", "delete"))


# --------------------------------------------------------------------------------------------
# Audit entries
# --------------------------------------------------------------------------------------------


def canonical_entry(entry: Mapping[str, Any], clock: Clock | None = None) -> bytes:
    """Check an audit entry and return its canonical bytes (``time`` filled in if absent).

    Parameters
    ----------
    entry : Mapping
        A JSON object with a ``kind`` (lower-case identifier) and an optional ``time`` (ISO
        8601 UTC; default now). Entries of the kinds in :data:`ENTRY_FIELDS` must carry
        the fields listed there.
    clock : callable, optional
        Clock for the default ``time``.

    Returns
    -------
    bytes

    Raises
    ------
    InvalidParameter
        If the entry is not a JSON object with those fields.

    Examples
    --------
    >>> canonical_entry({"kind": "decision", "time": "2026-01-05T09:00:00Z",
    ...                  "outcome": "ALLOW"})
    b'{"kind":"decision","outcome":"ALLOW","time":"2026-01-05T09:00:00Z"}'
    >>> canonical_entry({"kind": "message", "time": "2026-01-05T09:00:00Z"})
    Traceback (most recent call last):
    ...
    safeflow.errors.InvalidParameter: a 'message' audit entry must carry the fields ...
    """
    if not isinstance(entry, Mapping):
        raise InvalidParameter(f"an audit entry must be a dict; got {type(entry).__name__}")
    data = dict(entry)
    kind = data.get("kind")
    if not isinstance(kind, str) or _KIND.fullmatch(kind) is None:
        raise InvalidParameter(
            f"an audit entry needs a 'kind' (lower-case identifier such as "
            f"{', '.join(ENTRY_FIELDS)}); got {kind!r:.40}"
        )
    missing = [f for f in ENTRY_FIELDS.get(kind, ()) if f not in data]
    if missing:
        raise InvalidParameter(
            f"a {kind!r} audit entry must carry the fields "
            f"{', '.join(ENTRY_FIELDS[kind])}; missing: {', '.join(missing)}"
        )
    if "time" not in data:
        data["time"] = utc_timestamp(clock)
    check_timestamp(data["time"], "the entry's 'time'")
    return canonical_json(data, f"the {kind!r} audit entry")


# --------------------------------------------------------------------------------------------
# Signed checkpoints
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedCheckpoint:
    """A log's signed statement: "my tree of ``size`` entries has root ``root``".

    The signature is Ed25519 over :attr:`message`, the canonical JSON of
    ``{"type": CHECKPOINT_TYPE, "log_id", "size", "root" (hex), "timestamp"}``.

    Examples
    --------
    >>> from safeflow.crypto.keys import SigningKey
    >>> key = SigningKey.from_bytes(bytes(32))
    >>> cp = SignedCheckpoint.sign(key, log_id="nl", size=0, root=EMPTY_ROOT,
    ...                            timestamp="2026-01-05T09:00:00Z")
    >>> cp.verify(key.verify_key)
    True
    >>> SignedCheckpoint.from_dict(cp.to_dict()) == cp
    True
    """

    log_id: str
    size: int
    root: bytes
    timestamp: str
    signature: bytes

    @staticmethod
    def statement(log_id: str, size: int, root: bytes, timestamp: str) -> bytes:
        """The canonical bytes a checkpoint signature covers.

        Examples
        --------
        >>> SignedCheckpoint.statement("nl", 0, EMPTY_ROOT, "2026-01-05T09:00:00Z")[:40]
        b'{"log_id":"nl","root":"e3b0c44298fc1c149'
        """
        return canonical_json(
            {
                "type": CHECKPOINT_TYPE,
                "log_id": log_id,
                "size": size,
                "root": root.hex(),
                "timestamp": timestamp,
            }
        )

    @classmethod
    def sign(
        cls, key: SigningKey, *, log_id: str, size: int, root: bytes, timestamp: str
    ) -> SignedCheckpoint:
        """Sign a checkpoint statement with the log's key.

        Examples
        --------
        >>> from safeflow.crypto.keys import SigningKey
        >>> cp = SignedCheckpoint.sign(SigningKey.from_bytes(bytes(32)), log_id="nl", size=0,
        ...                            root=EMPTY_ROOT, timestamp="2026-01-05T09:00:00Z")
        >>> len(cp.signature)
        64
        """
        cls(log_id, size, root, timestamp, bytes(64))._checked()
        signature = key.sign(cls.statement(log_id, size, root, timestamp))
        return cls(log_id, size, root, timestamp, signature)

    @property
    def message(self) -> bytes:
        """The canonical statement :attr:`signature` signs.

        Examples
        --------
        >>> from safeflow.crypto.keys import SigningKey
        >>> cp = SignedCheckpoint.sign(SigningKey.from_bytes(bytes(32)), log_id="nl", size=0,
        ...                            root=EMPTY_ROOT, timestamp="2026-01-05T09:00:00Z")
        >>> b'"size":0' in cp.message
        True
        """
        return self.statement(self.log_id, self.size, self.root, self.timestamp)

    def verify(self, verify_key: VerifyKey) -> bool:
        """Check the signature with the log's public key; True or VerificationError.

        Examples
        --------
        >>> from safeflow.crypto.keys import SigningKey
        >>> cp = SignedCheckpoint.sign(SigningKey.from_bytes(bytes(32)), log_id="nl", size=0,
        ...                            root=EMPTY_ROOT, timestamp="2026-01-05T09:00:00Z")
        >>> cp.verify(SigningKey.from_bytes(bytes([1]) * 32).verify_key)
        Traceback (most recent call last):
        ...
        safeflow.errors.VerificationError: checkpoint of log 'nl' at size 0 ...
        """
        self._checked()
        try:
            verify_key.verify(self.message, self.signature)
        except CryptoError:
            raise VerificationError(
                f"checkpoint of log {self.log_id!r} at size {self.size} has an invalid "
                "signature: it was not signed by this log's key, or it was altered"
            ) from None
        return True

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (hex for bytes).

        Examples
        --------
        >>> from safeflow.crypto.keys import SigningKey
        >>> cp = SignedCheckpoint.sign(SigningKey.from_bytes(bytes(32)), log_id="nl", size=0,
        ...                            root=EMPTY_ROOT, timestamp="2026-01-05T09:00:00Z")
        >>> sorted(cp.to_dict())
        ['log_id', 'root', 'signature', 'size', 'timestamp']
        """
        return {
            "log_id": self.log_id,
            "size": self.size,
            "root": self.root.hex(),
            "timestamp": self.timestamp,
            "signature": self.signature.hex(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SignedCheckpoint:
        """Parse :meth:`to_dict` output strictly (VerificationError on any deviation).

        Examples
        --------
        >>> SignedCheckpoint.from_dict({"log_id": "nl"})
        Traceback (most recent call last):
        ...
        safeflow.errors.VerificationError: a checkpoint needs exactly the fields ...
        """
        fields = {"log_id", "size", "root", "timestamp", "signature"}
        if not isinstance(data, Mapping) or set(data) != fields:
            raise VerificationError(f"a checkpoint needs exactly the fields {sorted(fields)}")
        try:
            root = _hex_bytes(data["root"], HASH_SIZE)
            signature = _hex_bytes(data["signature"], 64)
        except ValueError:
            raise VerificationError(
                "a checkpoint's root and signature must be lower-case hex of 32 and 64 bytes"
            ) from None
        return cls(data["log_id"], data["size"], root, data["timestamp"], signature)._checked()

    def _checked(self) -> SignedCheckpoint:
        ok = (
            isinstance(self.log_id, str)
            and _LOG_ID.fullmatch(self.log_id) is not None
            and type(self.size) is int
            and self.size >= 0
            and isinstance(self.root, bytes)
            and len(self.root) == HASH_SIZE
            and isinstance(self.signature, bytes)
            and len(self.signature) == 64
        )
        try:
            check_timestamp(self.timestamp, "timestamp")
        except InvalidParameter:
            ok = False
        if not ok:
            raise VerificationError(
                "malformed checkpoint: needs a log_id, a size >= 0, a 32-byte root, an ISO "
                "8601 UTC timestamp and a 64-byte signature"
            )
        return self

    def __repr__(self) -> str:
        return (
            f"SignedCheckpoint(log_id={self.log_id!r}, size={self.size}, "
            f"root={self.root.hex()[:16]}..., timestamp={self.timestamp!r})"
        )


_HEX = re.compile(r"(?:[0-9a-f]{2})*")


def _hex_bytes(value: object, size: int | None = None) -> bytes:
    """Strict lower-case hex (one canonical spelling per byte string); ValueError if not."""
    if not isinstance(value, str) or _HEX.fullmatch(value) is None:
        raise ValueError("not lower-case hex")
    data = bytes.fromhex(value)
    if size is not None and len(data) != size:
        raise ValueError(f"expected {size} bytes")
    return data


# --------------------------------------------------------------------------------------------
# The log
# --------------------------------------------------------------------------------------------


def _connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    if read_only:
        uri = f"{path.resolve().as_uri()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=_BUSY_TIMEOUT_S)
    else:
        conn = sqlite3.connect(
            path, isolation_level=None, timeout=_BUSY_TIMEOUT_S, check_same_thread=False
        )
    return conn


class AuditLog:
    """An append-only Merkle log in one SQLite file, signed by one key.

    Parameters
    ----------
    path : str or Path
        The SQLite file; created (with its parent directory) if missing.
    signing_key : SigningKey
        The log's key: it signs checkpoints. Only its public half is ever compared; nothing
        of it is stored.
    log_id : str
        Names the log (e.g. the site or ``"customs"``); recorded in the file on creation and
        checked on every later open, and part of every signed checkpoint.
    clock : callable, optional
        Returns an aware datetime; used for entries without ``time`` and for checkpoints.

    Raises
    ------
    AuditError
        If the file belongs to another log id or another key, or is not a safeflow log.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from safeflow.crypto.keys import SigningKey
    >>> from safeflow.policy.merkle import verify_consistency
    >>> tmp = tempfile.TemporaryDirectory()
    >>> key = SigningKey.from_bytes(bytes(32))
    >>> with AuditLog(Path(tmp.name) / "a.sqlite", signing_key=key, log_id="nl") as log:
    ...     for i in range(5):
    ...         _ = log.append({"kind": "decision", "time": "2026-01-05T09:00:00Z",
    ...                         "outcome": "ALLOW", "n": i})
    ...     old = log.checkpoint()
    ...     _ = log.append({"kind": "release", "time": "2026-01-05T09:01:00Z",
    ...                     "output_sha256": "00" * 32})
    ...     new = log.checkpoint()
    ...     verify_consistency(old.size, new.size, old.root, new.root,
    ...                        log.consistency_proof(old.size, new.size))
    True
    >>> AuditLog(Path(tmp.name) / "a.sqlite", signing_key=key, log_id="cn")
    Traceback (most recent call last):
    ...
    safeflow.errors.AuditError: the audit log ... belongs to log 'nl', not 'cn'; ...
    >>> tmp.cleanup()
    """

    def __init__(
        self,
        path: str | Path,
        *,
        signing_key: SigningKey,
        log_id: str,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(signing_key, SigningKey):
            raise InvalidParameter(
                f"signing_key must be a safeflow.crypto.SigningKey; got "
                f"{type(signing_key).__name__}. Load one with "
                "safeflow.policy.keystore.load_or_create_signing_key"
            )
        if not isinstance(log_id, str) or _LOG_ID.fullmatch(log_id) is None:
            raise InvalidParameter(
                f"log_id must be 1-128 characters of letters, digits and _.:/- starting with "
                f"a letter or digit; got {log_id!r:.60}"
            )
        self._path = Path(path)
        self._key = signing_key
        self._log_id = log_id
        self._clock = clock
        self._lock = threading.Lock()
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = _connect(self._path)
        try:
            self._open()
        except sqlite3.DatabaseError as e:
            self._conn.close()
            raise AuditError(
                f"cannot open the audit log {self._path}: {e}. Pass the path of a safeflow "
                "audit log, or a new file name"
            ) from None
        except BaseException:
            self._conn.close()
            raise

    def _open(self) -> None:
        conn = self._conn
        conn.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
        # Look before touching anything: another application's database stays as it was.
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables:
            meta = dict(conn.execute("SELECT key, value FROM meta")) if "meta" in tables else {}
            self._check_meta(meta)
        for attempt in range(200):  # switching to WAL needs a moment without other writers
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError:
                if attempt == 199:
                    raise
                time.sleep(0.05)
        if str(mode).lower() != "wal":
            raise AuditError(f"cannot put the audit log {self._path} in WAL mode (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")
        with self._write() as cur:
            for statement in _SCHEMA:
                cur.execute(statement)
            meta = dict(cur.execute("SELECT key, value FROM meta").fetchall())
            if not meta:
                cur.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [
                        ("format", LOG_FORMAT),
                        ("log_id", self._log_id),
                        ("created_at", utc_timestamp(self._clock)),
                    ],
                )
                meta = {"format": LOG_FORMAT, "log_id": self._log_id}
        self._check_meta(meta)
        latest = self.latest_checkpoint()
        if latest is not None:
            try:
                latest.verify(self._key.verify_key)
            except VerificationError:
                raise AuditError(
                    f"the audit log {self._path} was checkpointed with a different key (or its "
                    "latest checkpoint was altered); open it with the key that signs it, and "
                    "run safeflow.policy.audit.verify_log to check it"
                ) from None

    def _check_meta(self, meta: Mapping[str, Any]) -> None:
        if meta.get("format") != LOG_FORMAT:
            raise AuditError(
                f"{self._path} is not a safeflow audit log ({LOG_FORMAT}); "
                "pass the path of a log this version of safeflow created"
            )
        if meta.get("log_id") != self._log_id:
            raise AuditError(
                f"the audit log {self._path} belongs to log {meta.get('log_id')!r}, not "
                f"{self._log_id!r}; open it with its own log_id or use another file"
            )

    # ---------------------------------------------------------------- transactions

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        """A write transaction holding SQLite's write lock from the start (BEGIN IMMEDIATE)."""
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Cursor]:
        """A read transaction: one consistent snapshot of the log."""
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN")
            try:
                yield cur
            finally:
                cur.execute("COMMIT")

    @staticmethod
    def _size_of(cur: sqlite3.Cursor) -> int:
        return int(cur.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM entries").fetchone()[0])

    @staticmethod
    def _getter(cur: sqlite3.Cursor) -> SubtreeGetter:
        cache: dict[tuple[int, int], bytes] = {}

        def get(level: int, index: int) -> bytes:
            found = cache.get((level, index))
            if found is None:
                if level == 0:
                    row = cur.execute(
                        "SELECT leaf_hash FROM entries WHERE idx = ?", (index,)
                    ).fetchone()
                else:
                    row = cur.execute(
                        "SELECT hash FROM nodes WHERE level = ? AND idx = ?", (level, index)
                    ).fetchone()
                if row is None:
                    raise AuditError(
                        f"the audit log lacks the hash of subtree (level {level}, index "
                        f"{index}); rows were deleted. Run verify_log to see what is wrong"
                    )
                found = cache[(level, index)] = bytes(row[0])
            return found

        return get

    # ---------------------------------------------------------------- public API

    @property
    def path(self) -> Path:
        """The SQLite file.

        Examples
        --------
        >>> with _example_log() as log:
        ...     log.path.name
        'example.sqlite'
        """
        return self._path

    @property
    def log_id(self) -> str:
        """The log's identifier (part of every checkpoint)."""
        return self._log_id

    @property
    def verify_key(self) -> VerifyKey:
        """The public key that verifies this log's checkpoints."""
        return self._key.verify_key

    @property
    def size(self) -> int:
        """Number of entries in the log (read from the file, so other writers count).

        Examples
        --------
        >>> with _example_log() as log:
        ...     log.size
        0
        """
        with self._read() as cur:
            return self._size_of(cur)

    def append(self, entry: Mapping[str, Any]) -> tuple[int, bytes]:
        """Append one entry durably; return its index and leaf hash.

        Parameters
        ----------
        entry : Mapping
            See :func:`canonical_entry`: a JSON object with ``kind`` (and ``time``, filled
            in with the current UTC time when absent).

        Returns
        -------
        (int, bytes)
            The entry's index and its RFC 6962 leaf hash ``SHA-256(0x00 || entry)``.

        Raises
        ------
        InvalidParameter
            If the entry is not a valid audit entry.

        Examples
        --------
        >>> with _example_log() as log:
        ...     index, leaf = log.append({"kind": "message", "time": "2026-01-05T09:00:00Z",
        ...         "hash": "ab" * 32, "size": 1024, "protocol": "masking",
        ...         "stage": "masked_input", "sender": "beijing", "receiver": "aggregator"})
        ...     index, leaf == leaf_hash(log.entry_bytes(0))
        (0, True)
        """
        return self.extend([entry])[0]

    def extend(self, entries: Iterable[Mapping[str, Any]]) -> list[tuple[int, bytes]]:
        """Append several entries in one durable transaction (all or none).

        Parameters
        ----------
        entries : iterable of Mapping
            Each as for :meth:`append`; all are checked before anything is written.

        Returns
        -------
        list of (int, bytes)
            Index and leaf hash of each entry, in order (consecutive indices).

        Examples
        --------
        >>> with _example_log() as log:
        ...     done = log.extend({"kind": "decision", "time": "2026-01-05T09:00:00Z",
        ...                        "outcome": "ALLOW", "i": i} for i in range(3))
        ...     [index for index, _ in done], log.size
        ([0, 1, 2], 3)
        """
        data = [canonical_entry(entry, self._clock) for entry in entries]
        leaves = [leaf_hash(d) for d in data]
        with self._write() as cur:
            first = self._size_of(cur)
            stored = self._getter(cur)
            fresh: dict[tuple[int, int], bytes] = {}  # written in this transaction
            for index, (entry, leaf) in enumerate(zip(data, leaves, strict=True), first):
                cur.execute(
                    "INSERT INTO entries (idx, entry, leaf_hash) VALUES (?, ?, ?)",
                    (index, entry, leaf),
                )
                # Store every complete subtree this leaf closes: at most log2(n), one on
                # average.
                h, level, j = leaf, 0, index
                fresh[(0, j)] = h
                while j & 1:
                    left = fresh.get((level, j - 1)) or stored(level, j - 1)
                    h = node_hash(left, h)
                    level, j = level + 1, j >> 1
                    fresh[(level, j)] = h
                    cur.execute(
                        "INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)", (level, j, h)
                    )
        return [(first + i, leaf) for i, leaf in enumerate(leaves)]

    def entry(self, index: int) -> dict[str, Any]:
        """The entry at ``index`` as a dict.

        Examples
        --------
        >>> with _example_log() as log:
        ...     _ = log.append({"kind": "decision", "time": "2026-01-05T09:00:00Z",
        ...                     "outcome": "EXEMPT"})
        ...     log.entry(0)["outcome"]
        'EXEMPT'
        """
        parsed: dict[str, Any] = json.loads(self.entry_bytes(index))
        return parsed

    def entry_bytes(self, index: int) -> bytes:
        """The canonical bytes stored for the entry at ``index`` (what the leaf hashes).

        Examples
        --------
        >>> with _example_log() as log:
        ...     log.entry_bytes(0)
        Traceback (most recent call last):
        ...
        safeflow.errors.InvalidParameter: index must be below the log's size 0; got 0. ...
        """
        index = _as_size(index, "index")
        with self._read() as cur:
            size = self._size_of(cur)
            self._check_range(index, 0, size - 1, "index", f"below the log's size {size}")
            row = cur.execute("SELECT entry FROM entries WHERE idx = ?", (index,)).fetchone()
        if row is None:
            raise AuditError(f"entry {index} is missing from {self._path}; run verify_log")
        return bytes(row[0])

    def root(self, size: int | None = None) -> bytes:
        """RFC 6962 root of the first ``size`` entries (default: all).

        Examples
        --------
        >>> with _example_log() as log:
        ...     log.root() == EMPTY_ROOT
        True
        """
        with self._read() as cur:
            current = self._size_of(cur)
            size = current if size is None else _as_size(size, "size")
            self._check_range(size, 0, current, "size", f"in 0..{current} (the log's size)")
            return self._root(cur, size)

    def _root(self, cur: sqlite3.Cursor, size: int) -> bytes:
        return EMPTY_ROOT if size == 0 else _range_root(self._getter(cur), 0, size)

    @staticmethod
    def _check_range(value: int, low: int, high: int, name: str, bound: str) -> None:
        if not low <= value <= high:
            raise InvalidParameter(
                f"{name} must be {bound}; got {value}. Take sizes and indices from this log "
                "(its size, a checkpoint, or the index append returned)"
            )

    def checkpoint(self) -> SignedCheckpoint:
        """Sign and store a checkpoint of the whole log as it is now.

        Returns
        -------
        SignedCheckpoint

        Examples
        --------
        >>> with _example_log() as log:
        ...     cp = log.checkpoint()
        ...     cp.size, cp.verify(log.verify_key), log.latest_checkpoint() == cp
        (0, True, True)
        """
        with self._write() as cur:
            size = self._size_of(cur)
            cp = SignedCheckpoint.sign(
                self._key,
                log_id=self._log_id,
                size=size,
                root=self._root(cur, size),
                timestamp=utc_timestamp(self._clock),
            )
            cur.execute(
                "INSERT INTO checkpoints (log_id, size, root, timestamp, signature) "
                "VALUES (?, ?, ?, ?, ?)",
                (cp.log_id, cp.size, cp.root, cp.timestamp, cp.signature),
            )
        return cp

    def checkpoints(self) -> list[SignedCheckpoint]:
        """Every stored checkpoint, oldest first.

        Examples
        --------
        >>> with _example_log() as log:
        ...     log.checkpoints()
        []
        """
        with self._read() as cur:
            rows = cur.execute(
                "SELECT log_id, size, root, timestamp, signature FROM checkpoints ORDER BY id"
            ).fetchall()
        return [_checkpoint_from_row(row) for row in rows]

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        """The most recent checkpoint, or None.

        Examples
        --------
        >>> with _example_log() as log:
        ...     log.latest_checkpoint() is None
        True
        """
        with self._read() as cur:
            row = cur.execute(
                "SELECT log_id, size, root, timestamp, signature "
                "FROM checkpoints ORDER BY id DESC LIMIT 1"
            ).fetchone()
        return None if row is None else _checkpoint_from_row(row)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 inclusion proof of entry ``index`` in the tree of ``size`` entries.

        Parameters
        ----------
        index : int
            ``0 <= index < size``.
        size : int, optional
            Tree size (usually a checkpoint's); default: the whole log.

        Returns
        -------
        list of bytes
            The audit path, for :func:`~safeflow.policy.merkle.verify_inclusion`.

        Examples
        --------
        >>> from safeflow.policy.merkle import verify_inclusion
        >>> with _example_log() as log:
        ...     leaves = [log.append({"kind": "decision", "time": "2026-01-05T09:00:00Z",
        ...                           "outcome": "ALLOW", "i": i})[1] for i in range(6)]
        ...     proof = log.inclusion_proof(4, 6)
        ...     len(proof), verify_inclusion(leaves[4], 4, 6, proof, log.root(6))
        (2, True)
        """
        index = _as_size(index, "index")
        with self._read() as cur:
            current = self._size_of(cur)
            size = current if size is None else _as_size(size, "size")
            self._check_range(size, 1, current, "size", f"in 1..{current} (the log's size)")
            self._check_range(index, 0, size - 1, "index", f"in 0..{size - 1} (below size)")
            return _path(self._getter(cur), index, 0, size)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 9162 consistency proof that the tree of ``old_size`` is a prefix of ``new_size``.

        Parameters
        ----------
        old_size : int
            ``0 <= old_size <= new_size``.
        new_size : int, optional
            Default: the whole log.

        Returns
        -------
        list of bytes
            For :func:`~safeflow.policy.merkle.verify_consistency` (empty when the sizes
            are equal or old is 0).

        Examples
        --------
        >>> from safeflow.policy.merkle import verify_consistency
        >>> with _example_log() as log:
        ...     for i in range(7):
        ...         _ = log.append({"kind": "decision", "time": "2026-01-05T09:00:00Z",
        ...                         "outcome": "ALLOW", "i": i})
        ...     proof = log.consistency_proof(3, 7)
        ...     verify_consistency(3, 7, log.root(3), log.root(7), proof)
        True
        """
        old_size = _as_size(old_size, "old_size")
        with self._read() as cur:
            current = self._size_of(cur)
            new_size = current if new_size is None else _as_size(new_size, "new_size")
            self._check_range(new_size, 0, current, "new_size", f"in 0..{current} (the log's size)")
            self._check_range(old_size, 0, new_size, "old_size", f"in 0..{new_size} (new_size)")
            if old_size in (0, new_size):
                return []
            return _subproof(self._getter(cur), old_size, 0, new_size, True)

    def backup(self, dest: str | Path) -> Path:
        """Copy the log to ``dest``: a consistent, self-contained file for an auditor.

        The copy is taken from one snapshot (appends may continue meanwhile) and uses a
        rollback journal, so the single file holds everything (no ``-wal`` beside it).

        Parameters
        ----------
        dest : str or Path
            A file that does not exist yet.

        Returns
        -------
        Path

        Raises
        ------
        InvalidParameter
            If ``dest`` exists.

        Examples
        --------
        >>> with _example_log() as log:
        ...     _ = log.append({"kind": "decision", "time": "2026-01-05T09:00:00Z",
        ...                     "outcome": "ALLOW"})
        ...     _ = log.checkpoint()
        ...     copy = log.backup(log.path.with_name("for-the-regulator.sqlite"))
        ...     verify_log(copy, log.verify_key).size
        1
        """
        dest = Path(dest)
        if dest.exists():
            raise InvalidParameter(f"{dest} exists; back the log up to a new file name")
        target = sqlite3.connect(dest, isolation_level=None)
        try:
            with self._lock:
                self._conn.backup(target)
            target.execute("PRAGMA journal_mode = DELETE")
        finally:
            target.close()
        return dest

    def close(self) -> None:
        """Close the database connection (idempotent).

        Examples
        --------
        >>> with _example_log() as log:
        ...     log.close()
        ...     log.close()
        """
        with self._lock:
            self._conn.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AuditLog({str(self._path)!r}, log_id={self._log_id!r})"


@contextmanager
def _example_log() -> Iterator[AuditLog]:
    """An empty log in a temporary directory, removed afterwards (for the examples)."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        AuditLog(
            Path(tmp) / "example.sqlite",
            signing_key=SigningKey.from_bytes(bytes(32)),
            log_id="example",
        ) as log,
    ):
        yield log


def _checkpoint_from_row(row: Sequence[Any]) -> SignedCheckpoint:
    log_id, size, root, timestamp, signature = row
    return SignedCheckpoint(
        log_id=log_id if isinstance(log_id, str) else str(log_id),
        size=size if type(size) is int else -1,
        root=bytes(root) if isinstance(root, bytes | memoryview) else b"",
        timestamp=timestamp if isinstance(timestamp, str) else "",
        signature=bytes(signature) if isinstance(signature, bytes | memoryview) else b"",
    )


# --------------------------------------------------------------------------------------------
# Offline verification of a whole log file
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditReport:
    """What :func:`verify_log` checked.

    Attributes
    ----------
    path : Path
    log_id : str
    size : int
        Number of entries, each re-hashed from its stored bytes.
    root : bytes
        The recomputed root of the whole log.
    checkpoints : int
        Stored checkpoints whose signature and root were checked.
    external_checkpoints : int
        Checkpoints passed by the caller (kept outside the file) that were checked.
    latest : SignedCheckpoint or None
        The newest stored checkpoint.
    unsigned_tail : int
        Entries appended after the newest checkpoint: not yet covered by a signature.
    """

    path: Path
    log_id: str
    size: int
    root: bytes
    checkpoints: int
    external_checkpoints: int
    latest: SignedCheckpoint | None
    unsigned_tail: int


def verify_log(
    path: str | Path,
    verify_key: VerifyKey,
    *,
    checkpoints: Iterable[SignedCheckpoint] = (),
) -> AuditReport:
    """Check an audit log file from scratch, offline; return a report or raise AuditError.

    Every leaf hash is recomputed from the stored entry bytes (which must be canonical JSON
    objects with a ``kind``), the whole tree is recomputed and compared with every stored
    subtree hash, every stored checkpoint's signature is checked with ``verify_key``, and
    each checkpoint's root must equal the recomputed root of that prefix (which is what
    being consistent with the current tree means). Edited, deleted, reordered or truncated
    rows, foreign checkpoints and dropped append-only triggers are each reported.

    A person able to rewrite the file could rebuild a consistent log *after* the newest
    checkpoint they cannot forge; pass checkpoints kept elsewhere (e.g. from certificates)
    as ``checkpoints`` to pin the log to them.

    Parameters
    ----------
    path : str or Path
        The SQLite file; opened read-only.
    verify_key : VerifyKey
        The log's public key, obtained from a trusted source (not from the file).
    checkpoints : iterable of SignedCheckpoint, optional
        Checkpoints of this log kept outside the file; each must verify and match.

    Returns
    -------
    AuditReport

    Raises
    ------
    AuditError
        Naming every problem found (up to 20).

    Examples
    --------
    >>> import sqlite3, tempfile
    >>> from pathlib import Path
    >>> from safeflow.crypto.keys import SigningKey
    >>> tmp = tempfile.TemporaryDirectory()
    >>> key = SigningKey.from_bytes(bytes(32))
    >>> path = Path(tmp.name) / "x.sqlite"
    >>> with AuditLog(path, signing_key=key, log_id="x") as log:
    ...     for i in range(3):
    ...         _ = log.append({"kind": "decision", "time": "2026-01-05T09:00:00Z",
    ...                         "outcome": "ALLOW", "i": i})
    ...     _ = log.checkpoint()
    >>> verify_log(path, key.verify_key).size
    3
    >>> with sqlite3.connect(path) as db:
    ...     _ = db.execute("DROP TRIGGER entries_no_delete")
    ...     _ = db.execute("DELETE FROM entries WHERE idx = 2")
    >>> db.close()
    >>> verify_log(path, key.verify_key)
    Traceback (most recent call last):
    ...
    safeflow.errors.AuditError: audit log ... failed verification: log truncated: ...
    >>> tmp.cleanup()
    """
    path = Path(path)
    if not isinstance(verify_key, VerifyKey):
        raise InvalidParameter(
            f"verify_key must be a safeflow.crypto.VerifyKey; got {type(verify_key).__name__}"
        )
    external = list(checkpoints)
    if not path.is_file():
        raise AuditError(f"no audit log at {path}; pass the path of the log's SQLite file")
    try:
        conn = _connect(path, read_only=True)
    except sqlite3.Error as e:
        raise AuditError(f"cannot open the audit log {path}: {e}") from None
    try:
        return _verify(conn, path, verify_key, external)
    except sqlite3.DatabaseError as e:
        raise AuditError(
            f"audit log {path} failed verification: the file is not a readable safeflow log ({e})"
        ) from None
    finally:
        conn.close()


def _verify(
    conn: sqlite3.Connection, path: Path, verify_key: VerifyKey, external: list[SignedCheckpoint]
) -> AuditReport:
    problems: list[str] = []
    cur = conn.cursor()
    cur.execute("BEGIN")  # one snapshot, even while others append
    try:
        tables = {r[0] for r in cur.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not set(_TABLES) <= tables:
            raise AuditError(
                f"audit log {path} failed verification: tables "
                f"{sorted(set(_TABLES) - tables)} are missing; it is not a complete log"
            )
        meta = dict(cur.execute("SELECT key, value FROM meta").fetchall())
        log_id = meta.get("log_id")
        if meta.get("format") != LOG_FORMAT or not isinstance(log_id, str):
            problems.append(f"the meta table does not describe a {LOG_FORMAT} log")
        leaves = _check_entries(cur, problems)
        levels = _complete_subtrees(leaves) if leaves else [[]]
        _check_nodes(cur, levels, problems)
        size = len(leaves)

        def root_of(n: int) -> bytes:
            return EMPTY_ROOT if n == 0 else _range_root(lambda lv, j: levels[lv][j], 0, n)

        stored = [
            _checkpoint_from_row(r)
            for r in cur.execute(
                "SELECT log_id, size, root, timestamp, signature FROM checkpoints ORDER BY id"
            )
        ]
        previous = 0
        for number, cp in enumerate(stored, 1):
            _check_checkpoint(
                cp, f"checkpoint #{number}", log_id, verify_key, size, root_of, problems
            )
            if cp.size < previous:
                problems.append(
                    f"checkpoint #{number} covers fewer entries ({cp.size}) than "
                    f"an earlier one ({previous}): checkpoint rows were reordered"
                )
            previous = max(previous, cp.size)
        for cp in external:
            _check_checkpoint(
                cp,
                f"external checkpoint at size {cp.size}",
                log_id,
                verify_key,
                size,
                root_of,
                problems,
            )
        triggers = {
            r[0] for r in cur.execute("SELECT name FROM sqlite_master WHERE type='trigger'")
        }
        if not triggers >= _TRIGGERS:
            problems.append(
                f"append-only triggers {sorted(_TRIGGERS - triggers)} were dropped "
                "(someone edited the schema to allow changes)"
            )
        check = cur.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            problems.append(f"SQLite integrity check failed: {check}")
    finally:
        cur.execute("COMMIT")
    if problems:
        shown = problems[:_MAX_PROBLEMS]
        more = len(problems) - len(shown)
        raise AuditError(
            f"audit log {path} failed verification: "
            + "; ".join(shown)
            + (f"; and {more} more problems" if more else "")
            + ". Keep the file as evidence and compare it with a backup or the other "
            "parties' copies of its checkpoints"
        )
    return AuditReport(
        path=path,
        log_id=str(log_id),
        size=size,
        root=root_of(size),
        checkpoints=len(stored),
        external_checkpoints=len(external),
        latest=stored[-1] if stored else None,
        unsigned_tail=size - (stored[-1].size if stored else 0),
    )


def _check_entries(cur: sqlite3.Cursor, problems: list[str]) -> list[bytes]:
    """Recompute every leaf hash from the stored bytes; note gaps and edits."""
    leaves: list[bytes] = []
    for idx, entry, stored_leaf in cur.execute(
        "SELECT idx, entry, leaf_hash FROM entries ORDER BY idx"
    ):
        if idx != len(leaves):
            problems.append(f"entries {len(leaves)}..{idx - 1} are missing (rows deleted)")
        data = bytes(entry) if isinstance(entry, bytes | memoryview) else str(entry).encode()
        leaf = leaf_hash(data)
        if not isinstance(stored_leaf, bytes) or not hmac.compare_digest(leaf, stored_leaf):
            problems.append(
                f"entry {idx}: its content does not hash to its stored leaf hash (entry edited)"
            )
        try:
            parsed = json.loads(data)
            canonical = (
                isinstance(parsed, dict)
                and isinstance(parsed.get("kind"), str)
                and (rfc8785.dumps(parsed) == data)
            )
        except (ValueError, rfc8785.CanonicalizationError):
            canonical = False
        if not canonical:
            problems.append(
                f"entry {idx} is not a canonical JSON object with a kind (entry edited)"
            )
        leaves.append(leaf)
    return leaves


def _check_nodes(cur: sqlite3.Cursor, levels: list[list[bytes]], problems: list[str]) -> None:
    """Every stored subtree hash must equal the recomputed one, and none may be missing."""
    seen = 0
    for level, idx, h in cur.execute("SELECT level, idx, hash FROM nodes"):
        ok = (
            type(level) is int
            and type(idx) is int
            and 1 <= level < len(levels)
            and 0 <= idx < len(levels[level])
            and h == levels[level][idx]
        )
        if ok:
            seen += 1
        else:
            problems.append(
                f"stored subtree hash (level {level}, index {idx}) does not match "
                "the entries (entries or hashes edited)"
            )
    expected = sum(len(level) for level in levels[1:])
    if seen < expected:
        problems.append(f"{expected - seen} subtree hashes are missing (rows deleted)")


def _check_checkpoint(
    cp: SignedCheckpoint,
    name: str,
    log_id: object,
    verify_key: VerifyKey,
    size: int,
    root_of: Callable[[int], bytes],
    problems: list[str],
) -> None:
    if cp.log_id != log_id:
        problems.append(f"{name} is for log {cp.log_id!r}, not {log_id!r}")
        return
    try:
        cp.verify(verify_key)
    except VerificationError:
        problems.append(
            f"{name} (size {cp.size}) has an invalid signature (checkpoint edited "
            "or signed by another key)"
        )
        return
    if cp.size > size:
        problems.append(
            f"log truncated: {name} covers {cp.size} entries but the log holds only {size}"
        )
    elif not hmac.compare_digest(root_of(cp.size), cp.root):
        problems.append(
            f"the first {cp.size} entries no longer hash to the root signed in "
            f"{name} (rows edited, deleted or reordered)"
        )


__all__ = [
    "CHECKPOINT_TYPE",
    "ENTRY_FIELDS",
    "LOG_FORMAT",
    "AuditLog",
    "AuditReport",
    "SignedCheckpoint",
    "canonical_entry",
    "verify_log",
]

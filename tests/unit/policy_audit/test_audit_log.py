"""The SQLite audit log: appends, checkpoints, proofs, and tampering that verify_log detects."""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from safeflow.crypto.keys import SigningKey
from safeflow.errors import AuditError, InvalidParameter, VerificationError
from safeflow.policy.audit import AuditLog, SignedCheckpoint, verify_log
from safeflow.policy.merkle import (
    EMPTY_ROOT,
    leaf_hash,
    merkle_root,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

KEY = SigningKey.from_bytes(hashlib.sha256(b"audit test key").digest())
OTHER = SigningKey.from_bytes(hashlib.sha256(b"another key").digest())


def message(i: int) -> dict[str, object]:
    return {
        "kind": "message",
        "time": "2026-01-05T09:00:00Z",
        "hash": f"{i:064x}",
        "size": 100 + i,
        "protocol": "masking",
        "stage": "masked_input",
        "sender": "beijing",
        "receiver": "aggregator",
    }


def fill(path: Path, n: int, *, checkpoint_every: int = 0) -> list[bytes]:
    leaves = []
    with AuditLog(path, signing_key=KEY, log_id="beijing") as log:
        for i in range(n):
            leaves.append(log.append(message(i))[1])
            if checkpoint_every and (i + 1) % checkpoint_every == 0:
                log.checkpoint()
        log.checkpoint()
    return leaves


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "audit.sqlite"


@pytest.fixture
def db(path: Path) -> Iterator[sqlite3.Connection]:
    """A log of 20 entries with checkpoints at 5, 10, 15, 20; a raw connection with the
    append-only triggers dropped, as a person editing the file would do."""
    fill(path, 20, checkpoint_every=5)
    conn = sqlite3.connect(path, isolation_level=None)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    yield conn
    conn.close()


def restore_triggers(path: Path) -> None:
    """Re-create the triggers (a careful attacker would), so only data checks can fire."""
    AuditLog(path, signing_key=KEY, log_id="beijing").close()


# ------------------------------------------------------------------ normal use


def test_append_returns_index_and_rfc6962_leaf(path: Path) -> None:
    with AuditLog(path, signing_key=KEY, log_id="beijing") as log:
        assert (log.size, log.root()) == (0, EMPTY_ROOT)
        index, leaf = log.append(message(0))
        assert index == 0
        assert leaf == hashlib.sha256(b"\x00" + log.entry_bytes(0)).digest()
        assert log.entry(0) == message(0)
        index, second = log.append(message(1))
        assert (index, log.size) == (1, 2)
        assert log.root() == node_hash(leaf, second) == merkle_root([leaf, second])


def test_entries_are_canonical_and_time_is_filled_in(path: Path) -> None:
    clock = lambda: dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)  # noqa: E731
    with AuditLog(path, signing_key=KEY, log_id="nl", clock=clock) as log:
        log.append({"outcome": "ALLOW", "kind": "decision", "note": "é"})
        assert (
            log.entry_bytes(0)
            == (
                '{"kind":"decision","note":"é","outcome":"ALLOW",'
                '"time":"2026-03-01T12:00:00.000000Z"}'
            ).encode()
        )
        cp = log.checkpoint()
        assert cp.timestamp == "2026-03-01T12:00:00.000000Z"


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ({"time": "2026-01-05T09:00:00Z"}, "needs a 'kind'"),
        ({"kind": "Release!"}, "needs a 'kind'"),
        ({"kind": "message", "hash": "00"}, "must carry the fields"),
        ({"kind": "release"}, "missing: output_sha256"),
        ({"kind": "decision", "outcome": "ALLOW", "time": "yesterday"}, "ISO 8601 UTC"),
        ({"kind": "decision", "outcome": float("nan")}, "canonical JSON"),
        ({"kind": "decision", "outcome": b"ALLOW"}, "canonical JSON"),
        ({"kind": "decision", "outcome": "ALLOW", "n": 2**60}, "canonical JSON"),
        (["kind", "decision"], "must be a dict"),
    ],
)
def test_bad_entries_are_refused(path: Path, entry: object, match: str) -> None:
    with AuditLog(path, signing_key=KEY, log_id="nl") as log:
        with pytest.raises(InvalidParameter, match=match):
            log.append(entry)  # type: ignore[arg-type]
        assert log.size == 0


def test_wal_and_full_synchronous(path: Path) -> None:
    with AuditLog(path, signing_key=KEY, log_id="nl") as log:
        assert log._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert log._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_no_key_material_in_the_file_or_repr(path: Path) -> None:
    fill(path, 3)
    with AuditLog(path, signing_key=KEY, log_id="beijing") as log:
        assert KEY.to_bytes().hex()[:8] not in repr(log)
    raw = b"".join(p.read_bytes() for p in path.parent.iterdir())
    assert KEY.to_bytes() not in raw and KEY.to_bytes().hex().encode() not in raw


def test_reopen_with_other_log_id_or_key_is_refused(path: Path) -> None:
    fill(path, 2)
    with pytest.raises(AuditError, match="belongs to log 'beijing', not 'amsterdam'"):
        AuditLog(path, signing_key=KEY, log_id="amsterdam")
    with pytest.raises(AuditError, match="checkpointed with a different key"):
        AuditLog(path, signing_key=OTHER, log_id="beijing")
    with pytest.raises(InvalidParameter, match="SigningKey"):
        AuditLog(path, signing_key=KEY.verify_key, log_id="beijing")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter, match="log_id"):
        AuditLog(path, signing_key=KEY, log_id="")


def test_not_a_safeflow_log(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('format', 'something/else')")
    conn.close()
    with pytest.raises(AuditError, match="not a safeflow audit log"):
        AuditLog(path, signing_key=KEY, log_id="x")


def test_checkpoints_and_proofs(path: Path) -> None:
    with AuditLog(path, signing_key=KEY, log_id="beijing") as log:
        leaves = [log.append(message(i))[1] for i in range(11)]
        old = log.checkpoint()
        leaves += [log.append(message(i))[1] for i in range(11, 30)]
        new = log.checkpoint()
        assert old.verify(KEY.verify_key) and new.verify(KEY.verify_key)
        assert (old.size, new.size) == (11, 30)
        assert new.root == merkle_root(leaves)
        assert log.checkpoints() == [old, new] and log.latest_checkpoint() == new
        assert verify_consistency(11, 30, old.root, new.root, log.consistency_proof(11, 30))
        assert verify_consistency(11, 30, old.root, new.root, log.consistency_proof(11))
        for i in (0, 7, 10):
            assert verify_inclusion(leaves[i], i, 11, log.inclusion_proof(i, 11), old.root)
        assert verify_inclusion(leaves[29], 29, 30, log.inclusion_proof(29), new.root)
        with pytest.raises(InvalidParameter, match=r"size must be in 1..30"):
            log.inclusion_proof(0, 31)
        with pytest.raises(InvalidParameter, match=r"index must be in 0..10"):
            log.inclusion_proof(11, 11)
        with pytest.raises(InvalidParameter, match=r"old_size must be in 0..11"):
            log.consistency_proof(12, 11)
        with pytest.raises(VerificationError, match="invalid signature"):
            old.verify(OTHER.verify_key)


def test_checkpoint_dict_round_trip_is_strict() -> None:
    cp = SignedCheckpoint.sign(
        KEY, log_id="nl", size=3, root=bytes(32), timestamp="2026-01-05T09:00:00Z"
    )
    assert SignedCheckpoint.from_dict(cp.to_dict()) == cp
    for bad in (
        {**cp.to_dict(), "extra": 1},
        {**cp.to_dict(), "root": "AB" * 32},
        {**cp.to_dict(), "size": "3"},
        {**cp.to_dict(), "size": True},
        {**cp.to_dict(), "timestamp": "2026-01-05"},
    ):
        with pytest.raises(VerificationError):
            SignedCheckpoint.from_dict(bad)


def test_triggers_refuse_updates_and_deletes(path: Path) -> None:
    fill(path, 3)
    with sqlite3.connect(path) as conn:
        for sql in (
            "UPDATE entries SET entry = x'00' WHERE idx = 0",
            "DELETE FROM entries WHERE idx = 2",
            "DELETE FROM checkpoints",
            "UPDATE nodes SET hash = x'00'",
            "DELETE FROM meta",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(sql)
    conn.close()
    assert verify_log(path, KEY.verify_key).size == 3


def test_threads_append_concurrently(path: Path) -> None:
    with AuditLog(path, signing_key=KEY, log_id="beijing") as log:
        results: list[int] = []

        def worker(t: int) -> None:
            for i in range(25):
                results.append(log.append({**message(i), "thread": t})[0])
                if i % 10 == 0:
                    log.checkpoint()

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == list(range(100))
    report = verify_log(path, KEY.verify_key)
    assert report.size == 100 and report.checkpoints == 12


def test_verify_log_report(path: Path) -> None:
    leaves = fill(path, 9, checkpoint_every=4)
    with AuditLog(path, signing_key=KEY, log_id="beijing") as log:
        log.append(message(99))
    report = verify_log(path, KEY.verify_key)
    assert (report.log_id, report.size, report.checkpoints) == ("beijing", 10, 3)
    assert report.latest is not None and report.latest.size == 9
    assert report.unsigned_tail == 1
    assert report.root != merkle_root(leaves)
    with pytest.raises(AuditError, match="no audit log at"):
        verify_log(path.with_name("missing.sqlite"), KEY.verify_key)


def test_wrong_key_is_detected(path: Path) -> None:
    fill(path, 4)
    with pytest.raises(AuditError, match="invalid signature"):
        verify_log(path, OTHER.verify_key)


# ------------------------------------------------------------------ tampering


def test_editing_an_entry_is_detected(path: Path, db: sqlite3.Connection) -> None:
    entry = db.execute("SELECT entry FROM entries WHERE idx = 7").fetchone()[0]
    db.execute(
        "UPDATE entries SET entry = ? WHERE idx = 7", (entry.replace(b'"size":107', b'"size":108'),)
    )
    restore_triggers(path)
    with pytest.raises(AuditError, match=r"entry 7: its content does not hash to its stored"):
        verify_log(path, KEY.verify_key)


def test_editing_an_entry_and_recomputing_every_hash_is_detected(
    path: Path, db: sqlite3.Connection
) -> None:
    """The attacker rewrites entry 3, its leaf hash and every subtree hash consistently:
    only the signed checkpoints can tell, and they do."""
    entry = db.execute("SELECT entry FROM entries WHERE idx = 3").fetchone()[0]
    forged = entry.replace(b'"receiver":"aggregator"', b'"receiver":"elsewhere!"')
    db.execute(
        "UPDATE entries SET entry = ?, leaf_hash = ? WHERE idx = 3", (forged, leaf_hash(forged))
    )
    rebuild_nodes(db)
    restore_triggers(path)
    with pytest.raises(
        AuditError,
        match=r"the first 5 entries no longer hash to the root "
        r"signed in checkpoint #1",
    ) as e:
        verify_log(path, KEY.verify_key)
    assert "checkpoint #4" in str(e.value) and "entry 3" not in str(e.value)


def rebuild_nodes(db: sqlite3.Connection) -> None:
    leaves = [row[0] for row in db.execute("SELECT leaf_hash FROM entries ORDER BY idx")]
    db.execute("DELETE FROM nodes")
    level, nodes = 0, leaves
    while len(nodes) > 1:
        nodes = [node_hash(nodes[i], nodes[i + 1]) for i in range(0, len(nodes) - 1, 2)]
        level += 1
        db.executemany(
            "INSERT INTO nodes VALUES (?, ?, ?)", [(level, j, h) for j, h in enumerate(nodes)]
        )


def test_deleting_a_row_is_detected(path: Path, db: sqlite3.Connection) -> None:
    db.execute("DELETE FROM entries WHERE idx = 12")
    restore_triggers(path)
    with pytest.raises(AuditError, match=r"entries 12..12 are missing \(rows deleted\)"):
        verify_log(path, KEY.verify_key)


def test_deleting_and_renumbering_is_detected(path: Path, db: sqlite3.Connection) -> None:
    """Delete entry 12 and shift later rows down, recomputing all hashes: no gap remains,
    but the checkpoints at 15 and 20 catch it."""
    db.execute("DELETE FROM entries WHERE idx = 12")
    db.execute("UPDATE entries SET idx = idx - 1 WHERE idx > 12")
    rebuild_nodes(db)
    restore_triggers(path)
    with pytest.raises(
        AuditError,
        match=r"log truncated: checkpoint #4 covers 20 entries but "
        r"the log holds only 19",
    ) as e:
        verify_log(path, KEY.verify_key)
    assert "the first 15 entries no longer hash" in str(e.value)


def test_reordering_rows_is_detected(path: Path, db: sqlite3.Connection) -> None:
    db.execute("UPDATE entries SET idx = -1 WHERE idx = 2")
    db.execute("UPDATE entries SET idx = 2 WHERE idx = 3")
    db.execute("UPDATE entries SET idx = 3 WHERE idx = -1")
    restore_triggers(path)
    with pytest.raises(AuditError, match=r"subtree hash \(level 2, index 0\) does not match") as e:
        verify_log(path, KEY.verify_key)
    assert "the first 5 entries no longer hash to the root signed in checkpoint #1" in str(e.value)


def test_reordering_with_rebuilt_hashes_is_detected(path: Path, db: sqlite3.Connection) -> None:
    db.execute("UPDATE entries SET idx = -1 WHERE idx = 16")
    db.execute("UPDATE entries SET idx = 16 WHERE idx = 17")
    db.execute("UPDATE entries SET idx = 17 WHERE idx = -1")
    rebuild_nodes(db)
    restore_triggers(path)
    with pytest.raises(
        AuditError,
        match=r"the first 20 entries no longer hash to the root "
        r"signed in checkpoint #4",
    ):
        verify_log(path, KEY.verify_key)


def test_truncating_is_detected(path: Path, db: sqlite3.Connection) -> None:
    db.execute("DELETE FROM entries WHERE idx >= 16")
    db.execute("DELETE FROM nodes WHERE (idx + 1) * (1 << level) > 16")
    restore_triggers(path)
    with pytest.raises(
        AuditError,
        match=r"log truncated: checkpoint #4 covers 20 entries but "
        r"the log holds only 16",
    ):
        verify_log(path, KEY.verify_key)


def test_truncating_with_the_checkpoints_needs_an_external_checkpoint(
    path: Path, db: sqlite3.Connection
) -> None:
    """Removing the tail *and* the checkpoints that cover it leaves a self-consistent file;
    a checkpoint kept elsewhere (e.g. in a certificate) exposes it."""
    kept = SignedCheckpoint(
        *db.execute(
            "SELECT log_id, size, root, timestamp, signature FROM checkpoints "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()
    )
    db.execute("DELETE FROM entries WHERE idx >= 16")
    db.execute("DELETE FROM nodes WHERE (idx + 1) * (1 << level) > 16")
    db.execute("DELETE FROM checkpoints WHERE size > 15")
    restore_triggers(path)
    assert verify_log(path, KEY.verify_key).size == 16
    with pytest.raises(AuditError, match=r"log truncated: external checkpoint at size 20"):
        verify_log(path, KEY.verify_key, checkpoints=[kept])


def test_editing_a_checkpoint_is_detected(path: Path, db: sqlite3.Connection) -> None:
    db.execute("UPDATE checkpoints SET size = 14 WHERE size = 15")
    restore_triggers(path)
    with pytest.raises(AuditError, match=r"checkpoint #3 \(size 14\) has an invalid signature"):
        verify_log(path, KEY.verify_key)


def test_reordering_checkpoints_is_detected(path: Path, db: sqlite3.Connection) -> None:
    db.execute("UPDATE checkpoints SET id = 100 WHERE id = 1")
    restore_triggers(path)
    with pytest.raises(AuditError, match=r"checkpoint rows were reordered"):
        verify_log(path, KEY.verify_key)


def test_non_canonical_entry_is_detected(path: Path, db: sqlite3.Connection) -> None:
    entry = db.execute("SELECT entry FROM entries WHERE idx = 0").fetchone()[0]
    spaced = entry.replace(b",", b", ")
    db.execute(
        "UPDATE entries SET entry = ?, leaf_hash = ? WHERE idx = 0", (spaced, leaf_hash(spaced))
    )
    restore_triggers(path)
    with pytest.raises(AuditError, match=r"entry 0 is not a canonical JSON object"):
        verify_log(path, KEY.verify_key)


def test_dropped_triggers_are_detected(path: Path, db: sqlite3.Connection) -> None:
    with pytest.raises(AuditError, match=r"append-only triggers .* were dropped"):
        verify_log(path, KEY.verify_key)


def test_garbage_file(path: Path) -> None:
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(AuditError, match="not a readable safeflow log"):
        verify_log(path, KEY.verify_key)


def test_extend_is_all_or_nothing(path: Path) -> None:
    with AuditLog(path, signing_key=KEY, log_id="beijing") as log:
        log.append(message(0))
        with pytest.raises(InvalidParameter, match="must carry the fields"):
            log.extend([message(1), message(2), {"kind": "message"}])
        assert log.size == 1
        done = log.extend(message(i) for i in range(1, 40))
        assert [i for i, _ in done] == list(range(1, 40))
        assert [leaf for _, leaf in done] == [leaf_hash(log.entry_bytes(i)) for i in range(1, 40)]
        log.checkpoint()
    assert verify_log(path, KEY.verify_key).size == 40


def test_backup_is_a_verifiable_single_file(path: Path, tmp_path: Path) -> None:
    fill(path, 12, checkpoint_every=5)
    with AuditLog(path, signing_key=KEY, log_id="beijing") as log:
        log.append(message(12))
        copy = log.backup(tmp_path / "copy.sqlite")
        with pytest.raises(InvalidParameter, match="exists"):
            log.backup(copy)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("copy")) == [
        "copy.sqlite"
    ]
    report = verify_log(copy, KEY.verify_key)
    assert (report.size, report.checkpoints, report.unsigned_tail) == (13, 3, 1)


def test_foreign_database_is_left_untouched(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE patients (id INTEGER)")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(AuditError, match="not a safeflow audit log"):
        AuditLog(path, signing_key=KEY, log_id="x")
    assert path.read_bytes() == before
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(AuditError, match="cannot open the audit log"):
        AuditLog(path, signing_key=KEY, log_id="x")

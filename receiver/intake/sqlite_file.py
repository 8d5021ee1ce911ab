"""The embedded intake's SQLite file: schema, batch transactions, reads, durability.

Every read and write runs on the event loop's thread and waits for no disk:
``synchronous=NORMAL`` and no automatic checkpoints, so a transaction only fills the page
cache. :meth:`IntakeFile.sync` (on a worker thread) then makes the WAL durable, which is
what ``synchronous=FULL`` would do inside the commit; :meth:`IntakeFile.checkpoint` (on
the same thread, with a connection of its own) copies the WAL into the database file
while writers go on.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from receiver.file_access import require_writable
from receiver.intake.base import IntakeRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    received_at REAL NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS replay_windows (
    until REAL NOT NULL,
    event_ids TEXT NOT NULL
);
"""
# Replay markers were once a table keyed by event id.
_MIGRATE_SEEN = """
BEGIN;
INSERT INTO replay_windows(until, event_ids) SELECT until, event_id FROM seen;
DROP TABLE seen;
COMMIT;
"""
_ROWS_PER_INSERT = 150  # x 5 values: well under SQLite's variable limit (999 in old builds)
_ROWS_PER_DELETE = 500
_INSERT_EVENTS = "INSERT INTO events(seq, event_id, room_id, received_at, payload) VALUES "
_INSERT_MARKER = "INSERT INTO replay_windows(rowid, until, event_ids) VALUES (?, ?, ?)"
_DELETE_EVENTS = "DELETE FROM events WHERE seq IN "
_DELETE_RANGE = "DELETE FROM events WHERE seq BETWEEN ? AND ?"
_WAL_LIMIT_BYTES = 64 * 1024 * 1024  # a WAL reset leaves the file at most this large


class SyncFailed(OSError):
    """The fdatasync of the WAL failed: what was committed since the last one may be lost.

    The kernel may have dropped those pages, and a later fdatasync can succeed without
    writing them, so nothing written since the last successful one is known durable.
    """


@dataclass(slots=True)
class Append:
    """An event to store, and the end of its replay window."""

    event_id: str
    room_id: str
    received_at: float
    payload: bytes
    replay_until: float


@dataclass(frozen=True, slots=True)
class Ack:
    """Delivered events to delete."""

    seqs: list[int]


@dataclass(frozen=True, slots=True)
class Purge:
    """Replay markers up to this row, whose windows have ended, to delete."""

    up_to: int


@dataclass(frozen=True, slots=True)
class Refuse:
    """Events and replay markers written after these, whose fdatasync failed, to delete."""

    after_seq: int
    after_marker: int


Op = Append | Ack | Purge | Refuse
# A stored append's (seq, replay marker row); None for the other operations. One marker row
# holds the ids of a commit's events, and the latest end of their windows.
Stored = tuple[int, int] | None


@functools.lru_cache(maxsize=1024)
def _statement(head: str, count: int, width: int) -> str:
    """``head`` followed by ``count`` groups of ``width`` placeholders (never a value)."""
    group = "(" + ",".join("?" * width) + ")"
    return head + ",".join([group] * count)


class IntakeFile:
    """One intake database: opened by :meth:`open`, its checkpointer by ``open_checkpointer``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.last_seq = 0  # the highest seq the file held when opened
        self._db: sqlite3.Connection | None = None
        self._wal = -1  # our descriptor of the WAL file: what ``sync`` makes durable
        self._checkpointer: sqlite3.Connection | None = None
        self._next_seq = 1
        self._next_marker = 1

    @property
    def is_open(self) -> bool:
        return self._db is not None

    def open(self) -> None:
        require_writable(self.path, "intake database", directory_too=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, cached_statements=512)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA wal_autocheckpoint=0")
        db.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT_BYTES}")
        db.executescript(_SCHEMA)
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'seen'").fetchone():
            db.executescript(_MIGRATE_SEEN)
        db.execute("DELETE FROM replay_windows WHERE until < ?", (time.time(),))
        (last,) = db.execute(
            "SELECT max(coalesce((SELECT max(seq) FROM events), 0),"
            " coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0))"
        ).fetchone()
        (marker,) = db.execute("SELECT coalesce(max(rowid), 0) FROM replay_windows").fetchone()
        self._next_seq, self.last_seq = int(last) + 1, int(last)
        self._next_marker = int(marker) + 1
        self._db = db
        self._wal = os.open(f"{self.path}-wal", os.O_RDONLY | os.O_CREAT, 0o644)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:  # the files' names are durable too
            os.fsync(directory)
        finally:
            os.close(directory)

    def close(self) -> None:
        if self._wal >= 0:
            os.close(self._wal)
            self._wal = -1
        if self._db is not None:
            self._db.close()
            self._db = None

    def sync(self) -> None:
        """Make every committed transaction durable (blocks: call it on a worker thread)."""
        try:
            os.fdatasync(self._wal)
        except OSError as error:
            raise SyncFailed(
                error.errno, f"fdatasync of the WAL failed: {error.strerror}"
            ) from error

    def open_checkpointer(self) -> None:
        """Open the checkpoint connection (on the thread that will run :meth:`checkpoint`)."""
        self._checkpointer = sqlite3.connect(self.path, isolation_level=None)

    def close_checkpointer(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None

    def checkpoint(self) -> None:
        """Copy the WAL into the database file (blocks; writers go on meanwhile)."""
        assert self._checkpointer is not None
        self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def commit(self, ops: Sequence[Op]) -> list[Stored]:
        """Apply ``ops`` in one transaction; per op, what was stored."""
        db = self._db
        assert db is not None
        appends = [op for op in ops if isinstance(op, Append)]
        first, marker = self._next_seq, self._next_marker
        db.execute("BEGIN IMMEDIATE")
        try:
            for start in range(0, len(appends), _ROWS_PER_INSERT):
                chunk = appends[start : start + _ROWS_PER_INSERT]
                events: list[object] = []
                for offset, append in enumerate(chunk, first + start):
                    events += (
                        offset,
                        append.event_id,
                        append.room_id,
                        append.received_at,
                        append.payload,
                    )
                db.execute(_statement(_INSERT_EVENTS, len(chunk), 5), events)
            if appends:
                until = max(append.replay_until for append in appends)
                ids = ",".join(append.event_id for append in appends)
                db.execute(_INSERT_MARKER, (marker, until, ids))
            for op in ops:
                if isinstance(op, Ack):
                    self._delete(db, op.seqs)
                elif isinstance(op, Purge):
                    db.execute("DELETE FROM replay_windows WHERE rowid <= ?", (op.up_to,))
                elif isinstance(op, Refuse):
                    db.execute("DELETE FROM events WHERE seq > ?", (op.after_seq,))
                    db.execute("DELETE FROM replay_windows WHERE rowid > ?", (op.after_marker,))
            db.execute("COMMIT")
        except sqlite3.Error:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._next_seq = first + len(appends)
        if appends:
            self._next_marker = marker + 1
        results: list[Stored] = []
        seq = first
        for op in ops:
            if isinstance(op, Append):
                results.append((seq, marker))
                seq += 1
            else:
                results.append(None)
        return results

    @staticmethod
    def _delete(db: sqlite3.Connection, seqs: list[int]) -> None:
        """Delete events by seq: runs of consecutive ones as ranges, the rest by list."""
        seqs = sorted(seqs)
        singles: list[int] = []
        start = 0
        while start < len(seqs):
            end = start
            while end + 1 < len(seqs) and seqs[end + 1] == seqs[end] + 1:
                end += 1
            if end - start >= 8:
                db.execute(_DELETE_RANGE, (seqs[start], seqs[end]))
            else:
                singles.extend(seqs[start : end + 1])
            start = end + 1
        for chunk in range(0, len(singles), _ROWS_PER_DELETE):
            part = singles[chunk : chunk + _ROWS_PER_DELETE]
            db.execute(_statement(_DELETE_EVENTS, 1, len(part)), part)

    def stats(self) -> tuple[int, float | None]:
        """Events stored and the oldest one's arrival."""
        assert self._db is not None
        count, oldest = self._db.execute("SELECT count(*), min(received_at) FROM events").fetchone()
        return int(count), oldest

    def replay_markers(self) -> tuple[dict[str, float], int]:
        """The event ids whose replay window has not ended, and the last marker row."""
        assert self._db is not None
        rows = self._db.execute(
            "SELECT until, event_ids FROM replay_windows WHERE until >= ?", (time.time(),)
        ).fetchall()
        markers = {event_id: float(until) for until, ids in rows for event_id in ids.split(",")}
        return markers, self._next_marker - 1

    def read(self, after_seq: int, up_to: int, limit: int) -> list[IntakeRecord]:
        """Stored events after ``after_seq`` and at most ``up_to``, in order."""
        assert self._db is not None
        rows = self._db.execute(
            "SELECT seq, event_id, room_id, received_at, payload FROM events "
            "WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
            (after_seq, up_to, limit),
        ).fetchall()
        return [IntakeRecord(row[0], row[1], row[2], row[3], row[4]) for row in rows]

"""The embedded intake: one SQLite file in WAL mode, written by one thread with group commit.

Every append waits for the commit of the transaction that holds it; with ``fsync`` the
commit is ``synchronous=FULL``, so a 2xx survives ``kill -9`` and power loss. Appends that
arrive while a commit runs share the next one.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from receiver.batching import BatchThread
from receiver.intake.base import Intake, IntakeFull, IntakeRecord, IntakeUnavailable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    received_at REAL NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS seen (
    event_id TEXT PRIMARY KEY,
    until REAL NOT NULL
) WITHOUT ROWID;
"""

_REMEMBER = (
    "INSERT INTO seen(event_id, until) VALUES (?, ?) "
    "ON CONFLICT(event_id) DO UPDATE SET until = excluded.until WHERE seen.until < ?"
)
_PURGE_EVERY_SECONDS = 30.0
# Records appended by this process are handed to the pipeline from memory (no read back),
# up to this many; beyond it (a backlog) they are read from the file.
_RECENT_MAX = 4096


@dataclass(frozen=True, slots=True)
class _Append:
    event_id: str
    room_id: str
    received_at: float
    payload: bytes
    replay_until: float


@dataclass(frozen=True, slots=True)
class _Take:
    after_seq: int
    limit: int


@dataclass(frozen=True, slots=True)
class _Ack:
    seqs: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _Stats:
    pass


_Op = _Append | _Take | _Ack | _Stats
_Result = int | None | list[IntakeRecord] | tuple[int, float | None]


class SqliteIntake(Intake):
    """Durable queue in an SQLite file; one process at a time."""

    def __init__(self, path: Path, *, max_pending: int, fsync: bool, batch_max: int) -> None:
        self._path = path
        self._max_pending = max_pending
        self._fsync = fsync
        self._db: sqlite3.Connection | None = None
        self._thread: BatchThread[_Op, _Result] = BatchThread(
            "intake-sqlite", self._handle, batch_max
        )
        self._depth = 0
        self._reserved = 0
        self._cursor = 0
        self._last_seq = 0
        self._oldest: float | None = None
        self._stored = asyncio.Event()
        self._failed = False
        self._last_purge = 0.0
        self._recent: dict[int, IntakeRecord] = {}

    async def start(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self._thread.start, self._open)
        depth, oldest = await self._submit_stats()
        self._depth, self._oldest = depth, oldest

    async def close(self) -> None:
        await asyncio.to_thread(self._thread.stop, self._close_db)

    def _open(self) -> None:
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={'FULL' if self._fsync else 'NORMAL'}")
        db.executescript(_SCHEMA)
        row = db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
        self._last_seq = int(row[0])
        self._db = db

    def _close_db(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def append(
        self,
        event_id: str,
        room_id: str,
        received_at: float,
        payload: bytes,
        replay_until: float,
        envelope: dict[str, Any] | None = None,
    ) -> bool:
        if self._depth + self._reserved >= self._max_pending:
            raise IntakeFull(f"{self._max_pending} events pending")
        self._reserved += 1
        try:
            seq = await self._thread.submit(
                _Append(event_id, room_id, received_at, payload, replay_until)
            )
        except sqlite3.Error as error:
            self._failed = True
            raise IntakeUnavailable(f"intake storage failed: {error}") from None
        finally:
            self._reserved -= 1
        self._failed = False
        if seq is None:
            return False
        assert isinstance(seq, int)
        self._depth += 1
        if self._oldest is None:
            self._oldest = received_at
        if len(self._recent) < _RECENT_MAX:
            self._recent[seq] = IntakeRecord(seq, event_id, room_id, received_at, payload, envelope)
        self._last_seq = max(self._last_seq, seq)
        self._stored.set()
        return True

    async def take(self, limit: int, wait_seconds: float) -> list[IntakeRecord]:
        if self._cursor >= self._last_seq and wait_seconds > 0:
            self._stored.clear()
            try:
                await asyncio.wait_for(self._stored.wait(), wait_seconds)
            except TimeoutError:
                return []
        if self._cursor >= self._last_seq:
            return []
        wanted = range(self._cursor + 1, min(self._last_seq, self._cursor + limit) + 1)
        taken: list[IntakeRecord] = []
        for seq in wanted:
            record = self._recent.get(seq)
            if record is None:  # not all in memory: read the range from the file
                read = await self._thread.submit(_Take(self._cursor, limit))
                assert isinstance(read, list)
                taken = read
                break
            taken.append(record)
        if taken:
            last = taken[-1].ref
            assert isinstance(last, int)
            for seq in range(self._cursor + 1, last + 1):
                self._recent.pop(seq, None)
            self._cursor = last
        return taken

    async def ack(self, record: IntakeRecord) -> None:
        await self.ack_many([record])

    async def ack_many(self, records: Sequence[IntakeRecord]) -> None:
        seqs = tuple(record.ref for record in records if isinstance(record.ref, int))
        await self._thread.submit(_Ack(seqs))
        self._depth -= len(seqs)

    async def refresh_stats(self) -> None:
        """Re-read depth and the oldest pending time from the file."""
        self._depth, self._oldest = await self._submit_stats()

    async def _submit_stats(self) -> tuple[int, float | None]:
        stats = await self._thread.submit(_Stats())
        assert isinstance(stats, tuple)
        return stats

    def depth(self) -> int:
        return self._depth

    def oldest_age(self, now: float) -> float:
        return max(0.0, now - self._oldest) if self._oldest is not None and self._depth else 0.0

    def is_ready(self) -> bool:
        return self._thread.running and not self._failed

    def _handle(self, ops: Sequence[_Op]) -> list[_Result | BaseException]:
        db = self._db
        assert db is not None
        now = time.time()
        results: list[_Result | BaseException] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for op in ops:
                results.append(self._apply(db, op, now))
            if now - self._last_purge > _PURGE_EVERY_SECONDS:
                db.execute("DELETE FROM seen WHERE until < ?", (now,))
                self._last_purge = now
            db.execute("COMMIT")
        except sqlite3.Error:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return results

    @staticmethod
    def _apply(db: sqlite3.Connection, op: _Op, now: float) -> _Result:
        if isinstance(op, _Append):
            if db.execute(_REMEMBER, (op.event_id, op.replay_until, now)).rowcount == 0:
                return None
            cursor = db.execute(
                "INSERT INTO events(event_id, room_id, received_at, payload) VALUES (?, ?, ?, ?)",
                (op.event_id, op.room_id, op.received_at, op.payload),
            )
            return cursor.lastrowid
        if isinstance(op, _Take):
            rows = db.execute(
                "SELECT seq, event_id, room_id, received_at, payload FROM events "
                "WHERE seq > ? ORDER BY seq LIMIT ?",
                (op.after_seq, op.limit),
            ).fetchall()
            return [IntakeRecord(row[0], row[1], row[2], row[3], row[4]) for row in rows]
        if isinstance(op, _Ack):
            db.executemany("DELETE FROM events WHERE seq = ?", [(seq,) for seq in op.seqs])
            return None
        count, oldest = db.execute("SELECT count(*), min(received_at) FROM events").fetchone()
        return (int(count), oldest)

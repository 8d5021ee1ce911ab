"""The journal of a single process (the sqlite intake), kept in a sqlite file of its own.

What this process writes is what it follows: each entry is folded at once, and written to
``<intake>-journal.db`` next to the intake (a file of its own: the intake's group commit
never waits on it) in batches, trimmed to ``max_entries`` and ``max_seconds``. A restarted
process folds the file's recent entries before anything new, so the console shows the
last hour again. The file is a view: an entry it could not take is dropped and counted.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from receiver.journal.base import Journal, JournalLimits

log = logging.getLogger("receiver.journal")


def journal_path(intake_path: Path) -> Path:
    """The journal's file, next to the sqlite intake."""
    return intake_path.with_name(intake_path.stem + "-journal.db")


class SqliteJournal(Journal):
    """Folded in process, persisted in a sqlite file."""

    def __init__(
        self, path: Path, limits: JournalLimits, on_drop: Callable[[], None] = lambda: None
    ) -> None:
        super().__init__(limits, on_drop)
        self.path = path
        self._fold: Callable[[bytes], None] | None = None
        self._db: sqlite3.Connection | None = None
        # The flusher's thread may still be writing when close() cancels its task.
        self._lock = threading.Lock()
        self._closed = False

    def write(self, entry: bytes) -> None:
        if self._fold is not None:
            try:
                self._fold(entry)
            except Exception:
                log.exception("journal entry not folded")
        super().write(entry)

    def start(self, fold: Callable[[bytes], None]) -> None:
        """Fold the entries a previous run kept (a bounded read at start-up), then start."""
        try:
            kept = self._kept(time.time() - self.limits.max_seconds)
        except sqlite3.Error as error:
            log.warning("journal file not read", extra={"error": str(error)})
            kept = []
        for entry in kept:
            try:
                fold(entry)
            except Exception:
                log.exception("journal entry not folded")
        self._fold = fold
        self._flusher = asyncio.get_running_loop().create_task(self._flushing())

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS journal"
                " (seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, entry BLOB NOT NULL)"
            )
            self._db = db
        return self._db

    def _kept(self, since: float) -> list[bytes]:
        with self._lock:
            rows = self._connect().execute(
                "SELECT entry FROM (SELECT seq, entry FROM journal WHERE at >= ?"
                " ORDER BY seq DESC LIMIT ?) ORDER BY seq",
                (since, self.limits.max_entries),
            )
            return [bytes(entry) for (entry,) in rows]

    def _insert(self, batch: list[bytes]) -> None:
        with self._lock:
            if not self._closed:
                self._insert_locked(batch)

    def _insert_locked(self, batch: list[bytes]) -> None:
        db = self._connect()
        now = time.time()
        with db:
            db.execute("BEGIN")
            db.executemany(
                "INSERT INTO journal (at, entry) VALUES (?, ?)", ((now, e) for e in batch)
            )
            db.execute(
                "DELETE FROM journal WHERE seq <= (SELECT MAX(seq) FROM journal) - ? OR at < ?",
                (self.limits.max_entries, now - self.limits.max_seconds),
            )

    async def _flush(self, batch: list[bytes]) -> None:
        await asyncio.to_thread(self._insert, batch)

    def _follow(self, since: float) -> AsyncIterator[list[bytes]]:  # pragma: no cover
        raise NotImplementedError("a single process folds what it writes")

    async def _release(self) -> None:
        self._fold = None
        # Off the loop: a flush stuck on the disk holds the lock.
        await asyncio.to_thread(self._close_file)

    def _close_file(self) -> None:
        with self._lock:
            self._closed = True
            db, self._db = self._db, None
            if db is not None:
                db.close()

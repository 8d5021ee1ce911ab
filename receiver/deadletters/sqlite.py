"""The SQLite dead-letter store: the single node's file, kept until replayed or purged.

The database runs in WAL mode with ``synchronous=FULL``, so a letter that ``add``
returned is on disk. All SQLite work happens on one dedicated thread; the async methods
hand it over and wait.
"""

from __future__ import annotations

import asyncio
import builtins
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from receiver.deadletters.base import (
    CLAIM_SECONDS,
    MAX_ERROR_CHARS,
    BaseDeadLetterStore,
    DeadLetter,
)
from receiver.file_access import require_writable

T = TypeVar("T")

SCHEMA_VERSION = 2
_COLUMNS = "id, event_id, sink, body, attempts, last_error, first_attempt_at, dead_at"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    sink TEXT NOT NULL,
    body BLOB NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    first_attempt_at REAL NOT NULL,
    dead_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_by_sink ON dead_letters (sink, id);
CREATE TABLE IF NOT EXISTS dead_letter_claims (
    id INTEGER PRIMARY KEY,
    until REAL NOT NULL
);
"""


class SqliteDeadLetterStore(BaseDeadLetterStore):
    """The dead-letter table at ``path`` (parent directories are created on first use)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dead-letters")
        self._db: sqlite3.Connection | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"SqliteDeadLetterStore({str(self.path)!r})"

    async def add(
        self,
        event_id: str,
        sink: str,
        body: bytes,
        attempts: int,
        last_error: str,
        first_attempt_at: float,
        dead_at: float,
    ) -> int:
        """Store a letter durably and return its id. ``last_error`` must be redacted."""
        row = (event_id, sink, body, attempts, last_error[:MAX_ERROR_CHARS],
               first_attempt_at, dead_at)  # fmt: skip

        def insert(db: sqlite3.Connection) -> int:
            with db:
                cursor = db.execute(
                    "INSERT INTO dead_letters (event_id, sink, body, attempts, last_error,"
                    " first_attempt_at, dead_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

        return await self._run(insert)

    async def list(self, sink: str | None = None, limit: int = 100) -> builtins.list[DeadLetter]:
        """Letters oldest first, of one sink or of all."""

        def select(db: sqlite3.Connection) -> builtins.list[DeadLetter]:
            if sink is None:
                rows = db.execute(
                    f"SELECT {_COLUMNS} FROM dead_letters ORDER BY id LIMIT ?",  # noqa: S608
                    (limit,),
                ).fetchall()
            else:
                rows = db.execute(
                    f"SELECT {_COLUMNS} FROM dead_letters WHERE sink = ?"  # noqa: S608
                    " ORDER BY id LIMIT ?",
                    (sink, limit),
                ).fetchall()
            return [_letter(row) for row in rows]

        return await self._run(select)

    async def get(self, letter_id: int) -> DeadLetter | None:
        """The letter with this id, or None."""

        def select(db: sqlite3.Connection) -> DeadLetter | None:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM dead_letters WHERE id = ?",  # noqa: S608
                (letter_id,),
            ).fetchone()
            return None if row is None else _letter(row)

        return await self._run(select)

    async def remove(self, letter_id: int) -> bool:
        """Delete one letter; whether it existed."""

        def delete(db: sqlite3.Connection) -> bool:
            with db:
                cursor = db.execute("DELETE FROM dead_letters WHERE id = ?", (letter_id,))
                db.execute("DELETE FROM dead_letter_claims WHERE id = ?", (letter_id,))
            return cursor.rowcount > 0

        return await self._run(delete)

    async def claim(self, letter_id: int, seconds: float = CLAIM_SECONDS) -> bool:
        """Reserve a stored letter for ``seconds``; False if it is gone or claimed."""

        def reserve(db: sqlite3.Connection) -> bool:
            now = time.time()
            with db:
                db.execute(
                    "DELETE FROM dead_letter_claims WHERE id = ? AND until <= ?", (letter_id, now)
                )
                cursor = db.execute(
                    "INSERT OR IGNORE INTO dead_letter_claims (id, until)"
                    " SELECT id, ? FROM dead_letters WHERE id = ?",
                    (now + seconds, letter_id),
                )
            return cursor.rowcount > 0

        return await self._run(reserve)

    async def release(self, letter_id: int) -> None:
        """Drop the claim on a letter that stays."""

        def delete(db: sqlite3.Connection) -> None:
            with db:
                db.execute("DELETE FROM dead_letter_claims WHERE id = ?", (letter_id,))

        await self._run(delete)

    async def purge(self, sink: str | None = None) -> int:
        """Delete every letter (of one sink, or of all); how many were deleted."""

        def delete(db: sqlite3.Connection) -> int:
            with db:
                if sink is None:
                    cursor = db.execute("DELETE FROM dead_letters")
                else:
                    cursor = db.execute("DELETE FROM dead_letters WHERE sink = ?", (sink,))
                db.execute(
                    "DELETE FROM dead_letter_claims WHERE id NOT IN (SELECT id FROM dead_letters)"
                )
            return cursor.rowcount

        return await self._run(delete)

    async def count(self, sink: str | None = None) -> int:
        """How many letters are stored (of one sink, or of all)."""

        def select(db: sqlite3.Connection) -> int:
            if sink is None:
                row = db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()
            else:
                row = db.execute(
                    "SELECT COUNT(*) FROM dead_letters WHERE sink = ?", (sink,)
                ).fetchone()
            return int(row[0])

        return await self._run(select)

    async def close(self) -> None:
        """Close the database and stop the thread; further calls raise RuntimeError."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close_db)
        self._executor.shutdown(wait=True)

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise RuntimeError("the dead-letter store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: work(self._connection()))

    def _connection(self) -> sqlite3.Connection:
        """The database connection, opened (on the store's thread) at first use."""
        if self._db is None:
            require_writable(self.path, "dead-letter database", directory_too=True)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level="DEFERRED")
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.execute("PRAGMA busy_timeout=5000")
                db.executescript(_SCHEMA)
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            except sqlite3.Error:
                db.close()
                raise
            self._db = db
        return self._db

    def _close_db(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _letter(row: Any) -> DeadLetter:
    return DeadLetter(
        id=int(row[0]),
        event_id=str(row[1]),
        sink=str(row[2]),
        body=bytes(row[3]),
        attempts=int(row[4]),
        last_error=str(row[5]),
        first_attempt_at=float(row[6]),
        dead_at=float(row[7]),
    )

"""The single process's journal: folded at once, and kept in a file for the next run."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from receiver.journal import JournalLimits, Routed, decode, routed_entry
from receiver.journal.sqlite import SqliteJournal, journal_path

LIMITS = JournalLimits(1000, 8 * 1024 * 1024, 600.0)


def entry(index: int, at: float | None = None) -> bytes:
    body = b'{"id":"e-%d","roomid":"room-1","data":{"event_type":"X"}}' % index
    return routed_entry(body, ["out"], time.time() if at is None else at)


def ids(blobs: list[bytes]) -> list[str]:
    return [e.envelope["id"] for e in map(decode, blobs) if isinstance(e, Routed)]


async def test_entries_are_folded_at_once_and_kept_for_the_next_run(tmp_path: Path) -> None:
    path = journal_path(tmp_path / "intake.db")
    assert path == tmp_path / "intake-journal.db"
    first = SqliteJournal(path, LIMITS)
    seen: list[bytes] = []
    first.start(seen.append)
    for index in range(5):
        first.write(entry(index))
    assert ids(seen) == [f"e-{index}" for index in range(5)]  # before any flush
    await first.close()
    again: list[bytes] = []
    second = SqliteJournal(path, LIMITS)
    second.start(again.append)
    second.write(entry(5))
    assert ids(again) == [f"e-{index}" for index in range(6)]  # the kept ones first
    await second.close()


async def test_the_file_keeps_only_the_newest_and_the_recent(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    writer = SqliteJournal(path, JournalLimits(10, 8 * 1024 * 1024, 600.0))
    writer.start(lambda _blob: None)
    for index in range(50):
        writer.write(entry(index))
    await writer.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM journal").fetchone() == (10,)
    short = SqliteJournal(path, JournalLimits(10, 8 * 1024 * 1024, 1.0))
    seen: list[bytes] = []
    with sqlite3.connect(path) as db:  # as if written two seconds ago
        db.execute("UPDATE journal SET at = at - 2 WHERE seq < (SELECT MAX(seq) FROM journal)")
    short.start(seen.append)
    assert ids(seen) == ["e-49"]
    await short.close()


async def test_an_unreadable_file_starts_empty(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    path.write_bytes(b"not a database" * 100)
    journal = SqliteJournal(path, LIMITS)
    seen: list[bytes] = []
    journal.start(seen.append)
    journal.write(entry(1))
    assert ids(seen) == ["e-1"]
    await journal.close()

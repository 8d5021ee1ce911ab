import asyncio
import contextlib
import errno
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from receiver.intake import IntakeFull, IntakeUnavailable
from receiver.intake.sqlite import SqliteIntake
from receiver.intake.sqlite_file import Ack, Append, IntakeFile, Op, Stored


def make(path: Path, max_pending: int = 1000) -> SqliteIntake:
    return SqliteIntake(path, max_pending=max_pending, fsync=True, batch_max=64)


async def test_append_take_ack_and_resume(tmp_path: Path) -> None:
    intake = make(tmp_path / "i.db")
    await intake.start()
    until = time.time() + 60
    for n in range(5):
        assert await intake.append(f"e{n}", f"room{n % 2}", time.time(), b"p%d" % n, until)
    assert intake.depth() == 5
    taken = await intake.take(3, wait_seconds=0)
    assert [r.event_id for r in taken] == ["e0", "e1", "e2"]
    await intake.ack(taken[0])
    await intake.close()

    again = make(tmp_path / "i.db")
    await again.start()
    assert again.depth() == 4
    resumed = await again.take(10, wait_seconds=0)
    assert [r.event_id for r in resumed] == ["e1", "e2", "e3", "e4"]
    assert resumed[0].payload == b"p1"
    await again.close()


async def test_replay_is_stored_once_within_its_window(tmp_path: Path) -> None:
    intake = make(tmp_path / "i.db")
    await intake.start()
    now = time.time()
    assert await intake.append("same", "r", now, b"x", now + 60)
    assert not await intake.append("same", "r", now, b"x", now + 60)
    assert await intake.append("expired", "r", now, b"x", now - 1)
    assert await intake.append("expired", "r", now, b"x", now + 60)
    assert intake.depth() == 3
    await intake.close()


async def test_concurrent_appends_share_commits(tmp_path: Path) -> None:
    intake = make(tmp_path / "i.db", max_pending=10_000)
    await intake.start()
    until = time.time() + 60
    results = await asyncio.gather(
        *(intake.append(f"e{n}", "r", time.time(), b"x", until) for n in range(500))
    )
    assert all(results) and intake.depth() == 500
    await intake.close()
    with sqlite3.connect(tmp_path / "i.db") as db:
        assert db.execute("select count(*) from events").fetchone()[0] == 500


async def test_full_intake_refuses(tmp_path: Path) -> None:
    intake = make(tmp_path / "i.db", max_pending=2)
    await intake.start()
    until = time.time() + 60
    await intake.append("a", "r", time.time(), b"x", until)
    await intake.append("b", "r", time.time(), b"x", until)
    with pytest.raises(IntakeFull):
        await intake.append("c", "r", time.time(), b"x", until)
    (record,) = await intake.take(1, wait_seconds=0)
    await intake.ack(record)
    assert await intake.append("c", "r", time.time(), b"x", until)
    await intake.close()


async def test_take_waits_for_an_append(tmp_path: Path) -> None:
    intake = make(tmp_path / "i.db")
    await intake.start()
    waiter = asyncio.create_task(intake.take(10, wait_seconds=5))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await intake.append("a", "r", time.time(), b"x", time.time() + 60)
    assert [r.event_id for r in await waiter] == ["a"]
    assert await intake.take(10, wait_seconds=0.01) == []
    await intake.close()


async def test_a_cancelled_take_leaves_the_next_one_woken_by_an_append(tmp_path: Path) -> None:
    intake = make(tmp_path / "i.db")
    await intake.start()
    cancelled = asyncio.create_task(intake.take(10, wait_seconds=5))
    await asyncio.sleep(0.02)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    waiter = asyncio.create_task(intake.take(10, wait_seconds=5))
    await asyncio.sleep(0.02)
    await intake.append("b", "r", time.time(), b"x", time.time() + 60)
    async with asyncio.timeout(1):  # woken by the append, not by its 5 s timer
        assert [r.event_id for r in await waiter] == ["b"]
    await intake.close()


async def test_overlapping_takes_are_each_woken_by_an_append(tmp_path: Path) -> None:
    intake = make(tmp_path / "i.db")
    await intake.start()
    short = asyncio.create_task(intake.take(10, wait_seconds=0.05))
    long = asyncio.create_task(intake.take(10, wait_seconds=5))
    assert await short == []  # its timer ended it; the other still waits
    await intake.append("c", "r", time.time(), b"x", time.time() + 60)
    async with asyncio.timeout(1):
        assert [r.event_id for r in await long] == ["c"]
    await intake.close()


async def test_storage_failure_is_unavailable_not_a_crash(tmp_path: Path) -> None:
    intake = make(tmp_path / "i.db")
    await intake.start()
    with sqlite3.connect(tmp_path / "i.db") as db:
        db.execute("DROP TABLE events")
    with pytest.raises(IntakeUnavailable):
        await intake.append("a", "r", time.time(), b"x", time.time() + 60)
    assert not intake.is_ready()
    await intake.close()


async def test_oldest_age_tracks_pending_events(tmp_path: Path) -> None:
    intake = make(tmp_path / "i.db")
    await intake.start()
    assert intake.oldest_age(time.time()) == 0.0
    received = time.time() - 30
    await intake.append("a", "r", received, b"x", time.time() + 60)
    assert intake.oldest_age(received + 30) == pytest.approx(30)
    (record,) = await intake.take(1, wait_seconds=0)
    await intake.ack(record)
    await intake.refresh_stats()
    assert intake.oldest_age(time.time()) == 0.0
    await intake.close()


async def test_replay_protection_survives_a_restart(tmp_path: Path) -> None:
    intake = make(tmp_path / "i.db")
    await intake.start()
    now = time.time()
    assert await intake.append("kept", "r", now, b"x", now + 60)
    (record,) = await intake.take(1, wait_seconds=0)
    await intake.ack(record)  # delivered and deleted: only its replay marker is left
    await intake.close()

    again = make(tmp_path / "i.db")
    await again.start()
    assert again.depth() == 0
    assert not await again.append("kept", "r", now, b"x", now + 60)
    await again.close()


async def test_the_former_seen_table_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "i.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE seen (event_id TEXT PRIMARY KEY, until REAL NOT NULL)")
        db.execute("INSERT INTO seen VALUES ('old', ?)", (time.time() + 60,))
    intake = make(path)
    await intake.start()
    assert not await intake.append("old", "r", time.time(), b"x", time.time() + 60)
    assert await intake.append("new", "r", time.time(), b"x", time.time() + 60)
    await intake.close()
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert "seen" not in tables and "replay_windows" in tables


async def test_expired_replay_markers_leave_the_file(tmp_path: Path) -> None:
    path = tmp_path / "i.db"
    intake = make(path)
    await intake.start()
    now = time.time()
    for n in range(5):
        assert await intake.append(f"e{n}", "r", now, b"x", now + 0.2)
    await asyncio.sleep(0.3)
    intake._housekeeping(time.time())  # what the next commit after a second does
    assert await intake.append("later", "r", now, b"x", now + 60)
    await intake.close()
    with sqlite3.connect(path) as db:
        markers = [row[0] for row in db.execute("SELECT event_ids FROM replay_windows")]
    assert markers == ["later"]


async def test_acks_are_deleted_with_the_next_commit_or_on_close(tmp_path: Path) -> None:
    path = tmp_path / "i.db"
    intake = make(path)
    await intake.start()
    until = time.time() + 60
    for n in range(4):
        await intake.append(f"e{n}", "r", time.time(), b"x", until)
    records = await intake.take(4, wait_seconds=0)
    await intake.ack_many(records[:2])
    await intake.append("e4", "r", time.time(), b"x", until)  # takes the acks along
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 3
    await intake.ack_many(records[2:])
    await intake.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 1


class FailingFdatasync:
    """``os.fdatasync`` that fails the first time after :meth:`arm` (EIO), held until released."""

    def __init__(self) -> None:
        self.armed = False
        self.release = threading.Event()
        self.release.set()
        self.calls = 0
        self._real = os.fdatasync

    def arm(self) -> None:
        self.armed = True

    def __call__(self, fd: int) -> None:
        self.calls += 1
        if self.armed:
            self.armed = False
            self.release.wait(5)
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        self._real(fd)


@pytest.fixture
def fdatasync(monkeypatch: pytest.MonkeyPatch) -> FailingFdatasync:
    failing = FailingFdatasync()
    monkeypatch.setattr(os, "fdatasync", failing)
    return failing


def stored_ids(path: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [row[0] for row in db.execute("SELECT event_id FROM events ORDER BY seq")]


def marker_ids(path: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT event_ids FROM replay_windows ORDER BY rowid").fetchall()
    return [event_id for (ids,) in rows for event_id in ids.split(",")]


async def test_a_failed_fsync_refuses_everything_until_a_restart(
    tmp_path: Path, fdatasync: FailingFdatasync
) -> None:
    path = tmp_path / "i.db"
    intake = make(path)
    await intake.start()
    until = time.time() + 60
    assert await intake.append("kept", "r", time.time(), b"x", until)
    fdatasync.arm()
    fdatasync.release.clear()  # the failing fdatasync is under way while "waiting" arrives
    failed = asyncio.ensure_future(intake.append("failed", "r", time.time(), b"x", until))
    await asyncio.sleep(0.05)
    waiting = asyncio.ensure_future(intake.append("waiting", "r", time.time(), b"x", until))
    await asyncio.sleep(0.05)
    fdatasync.release.set()
    for append in (failed, waiting):
        with pytest.raises(IntakeUnavailable, match="Input/output error"):
            await append
    # The disk works again, but nothing says what the failed fdatasync lost.
    assert not intake.is_ready()
    with pytest.raises(IntakeUnavailable, match="until a restart"):
        await intake.append("later", "r", time.time(), b"x", until)
    await intake.refresh_stats()
    assert not intake.is_ready()
    assert [r.event_id for r in await intake.take(10, wait_seconds=0)] == ["kept"]
    assert stored_ids(path) == ["kept"]  # the failed commit's rows are deleted
    assert marker_ids(path) == ["kept"]
    await intake.close()

    again = make(path)
    await again.start()
    assert again.is_ready()
    assert [r.event_id for r in await again.take(10, wait_seconds=0)] == ["kept"]
    assert await again.append("failed", "r", time.time(), b"x", until)  # not a duplicate
    assert not await again.append("kept", "r", time.time(), b"x", until)
    await again.close()


async def test_events_refused_after_a_failed_fsync_are_gone_after_kill_9(
    tmp_path: Path, fdatasync: FailingFdatasync
) -> None:
    """The refused rows' deletion is durable before the 503: nothing to deliver after a crash."""
    path = tmp_path / "i.db"
    intake = make(path)
    await intake.start()
    fdatasync.arm()
    with pytest.raises(IntakeUnavailable):
        await intake.append("failed", "r", time.time(), b"x", time.time() + 60)
    # kill -9 now: no close. What a new process reads is what the file holds.
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 0
    await intake.close()


async def test_a_failed_fsync_of_acks_alone_refuses_everything_too(
    tmp_path: Path, fdatasync: FailingFdatasync
) -> None:
    """What is committed after frames that may never reach the disk is lost with them."""
    path = tmp_path / "i.db"
    intake = make(path)
    await intake.start()
    assert await intake.append("a", "r", time.time(), b"x", time.time() + 60)
    (record,) = await intake.take(1, wait_seconds=0)
    fdatasync.arm()
    await intake.ack(record)  # committed alone a moment later; its fdatasync fails
    await asyncio.sleep(0.5)
    assert fdatasync.calls >= 2 and not fdatasync.armed
    assert not intake.is_ready()
    with pytest.raises(IntakeUnavailable, match="until a restart"):
        await intake.append("b", "r", time.time(), b"x", time.time() + 60)
    await intake.close()


async def test_acks_and_purges_of_a_failed_commit_ride_on_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "i.db"
    intake = make(path)
    await intake.start()
    now = time.time()
    for n in range(3):
        assert await intake.append(f"e{n}", "r", now, b"x", now + 0.2)
    await asyncio.sleep(0.3)
    records = await intake.take(3, wait_seconds=0)
    await intake.ack_many(records)  # the acks wait for the next commit
    intake._housekeeping(time.time())  # so do the expired markers of e0..e2
    write = intake._commits._write

    def full_disk(ops: Sequence[Op]) -> list[Stored]:
        monkeypatch.setattr(intake._commits, "_write", write)
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(intake._commits, "_write", full_disk)
    with pytest.raises(IntakeUnavailable, match="disk is full"):
        await intake.append("refused", "r", time.time(), b"x", time.time() + 60)
    assert await intake.append("next", "r", time.time(), b"x", time.time() + 60)
    assert stored_ids(path) == ["next"]
    assert marker_ids(path) == ["next"]
    await intake.close()


async def test_a_replay_marker_shared_with_a_live_window_survives_a_restart(
    tmp_path: Path,
) -> None:
    """One commit holds an id whose window ends soon and one whose window lasts."""
    path = tmp_path / "i.db"
    intake = make(path)
    await intake.start()
    now = time.time()
    assert all(
        await asyncio.gather(
            intake.append("short", "r", now, b"x", now + 0.2),
            intake.append("long", "r", now, b"x", now + 60),
        )
    )
    await asyncio.sleep(0.3)
    intake._housekeeping(time.time())  # the short window has ended
    await intake.close()

    again = make(path)
    await again.start()
    assert not await again.append("long", "r", now, b"x", now + 60)  # still a replay
    await again.close()


def test_acked_runs_and_scattered_seqs_are_all_deleted(tmp_path: Path) -> None:
    file = IntakeFile(tmp_path / "i.db")
    file.open()
    until = time.time() + 60
    stored = file.commit([Append(f"e{n}", "r", 0.0, b"x", until) for n in range(40)])
    seqs = [result[0] for result in stored if result]
    acked = seqs[3:20] + seqs[25:27] + [seqs[30], seqs[38]]  # a run of 17, then scattered
    file.commit([Ack(list(reversed(acked)))])
    left = [record.event_id for record in file.read(0, seqs[-1], 100)]
    assert left == [f"e{n}" for n in range(40) if seqs[n] not in acked]
    file.close()

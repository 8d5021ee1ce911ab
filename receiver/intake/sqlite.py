"""The embedded intake: one SQLite file in WAL mode, with group commit.

An append waits for the commit of the transaction that holds it and, with ``fsync``, for
the ``fdatasync`` of the WAL after it (what ``synchronous=FULL`` does), so a 2xx survives
``kill -9`` and power loss. The transaction runs on the event loop, one multi-row
``INSERT`` per table into the page cache; the fdatasync and the checkpoints run on a
worker thread (:mod:`receiver.intake.sqlite_file`, :mod:`receiver.batching`). Appends that
arrive while a batch is being made durable share the next one. Acknowledgements ride
along with the next commit (or a timer's; a commit that fails hands them to the next): an
ack lost in a crash only means a delivery again, which consumers tell by the event id.
Replays are told apart in memory (:mod:`receiver.intake.replay`).

A failed fdatasync is not retried: the kernel may have dropped the pages it could not
write, and a later fdatasync can succeed without them. As PostgreSQL does, the intake then
accepts nothing more until the process restarts (not ready, every append refused). The
rows of the failed commit are never handed out; they are deleted by one more commit, and
its waiting appends get their 503 once that one's fdatasync has returned, so that what was
refused is not delivered after a restart either.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from receiver.batching import GroupCommit, WorkerThread
from receiver.intake.base import AppendDone, Intake, IntakeFull, IntakeRecord, IntakeUnavailable
from receiver.intake.replay import ReplayWindow
from receiver.intake.sqlite_file import (
    Ack,
    Append,
    IntakeFile,
    Op,
    Purge,
    Refuse,
    Stored,
    SyncFailed,
)

log = logging.getLogger("receiver.intake.sqlite")

_ACK_DELAY_SECONDS = 0.2
_HOUSEKEEPING_SECONDS = 1.0  # forget expired replay ids, checkpoint
# Records appended by this process are handed to the pipeline from memory (no read back),
# up to this many; beyond it (a backlog) they are read from the file.
_RECENT_MAX = 4096


@dataclass(slots=True)
class _Pending:
    """An append handed to a commit: who waits, and duplicates that arrived meanwhile."""

    append: Append
    envelope: dict[str, Any] | None
    done: AppendDone
    duplicates: list[AppendDone]


class SqliteIntake(Intake):
    """Durable queue in an SQLite file; one process at a time."""

    def __init__(self, path: Path, *, max_pending: int, fsync: bool, batch_max: int) -> None:
        self._file = IntakeFile(path)
        self._max_pending = max_pending
        self._fsync = fsync
        self._worker = WorkerThread("intake-sqlite")
        self._commits: GroupCommit[Op, Stored] = GroupCommit(
            self._file.commit,
            self._file.sync if fsync else None,
            self._worker,
            batch_max,
            extra=self._riders,
            extra_failed=self._riders_failed,
        )
        self._depth = 0
        self._reserved = 0
        self._cursor = 0
        self._last_seq = 0  # the last event stored durably: what ``take`` may hand out
        self._last_marker = 0  # the last replay marker row stored durably
        self._oldest: float | None = None
        # Takes waiting for an event to be stored, a future and a timer each (an Event
        # under a timeout costs twice as much, and the feeder waits once per commit).
        self._waiting: list[asyncio.Future[None]] = []
        self._failed = False
        # Why the intake accepts nothing more (a failed fdatasync), until a restart.
        self._broken: IntakeUnavailable | None = None
        self._refusing: list[_Pending] = []  # answered once their rows' deletion is durable
        self._recent: dict[int, IntakeRecord] = {}
        self._acks: list[int] = []
        self._ack_timer: asyncio.TimerHandle | None = None
        self._replay = ReplayWindow()
        self._uncommitted: dict[str, _Pending] = {}
        self._purge_up_to = 0
        self._next_housekeeping = 0.0
        self._checkpointing = False

    async def start(self) -> None:
        self._file.open()
        self._last_seq = self._file.last_seq
        await asyncio.to_thread(self._worker.start, self._file.open_checkpointer)
        self._depth, self._oldest = self._file.stats()
        markers, self._last_marker = self._file.replay_markers()
        self._replay.load(markers, self._last_marker)

    async def close(self) -> None:
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        riders = self._riders()
        if riders and self._file.is_open:
            self._file.commit(riders)
            if self._fsync:
                await self._worker.run(self._file.sync)
        await asyncio.to_thread(self._worker.stop, self._file.close_checkpointer)
        self._file.close()

    # Appending
    def append_soon(
        self,
        event_id: str,
        room_id: str,
        received_at: float,
        payload: bytes,
        replay_until: float,
        envelope: dict[str, Any] | None,
        done: AppendDone,
    ) -> None:
        if self._broken is not None:
            done(self._broken)
            return
        pending = self._uncommitted.get(event_id)
        if pending is not None:  # being committed: a duplicate, if that commit works
            pending.duplicates.append(done)
            return
        if self._replay.holds(event_id, time.time()):
            done(False)
            return
        if self._depth + self._reserved >= self._max_pending:
            done(IntakeFull(f"{self._max_pending} events pending"))
            return
        self._reserved += 1
        append = Append(event_id, room_id, received_at, payload, replay_until)
        pending = _Pending(append, envelope, done, [])
        self._uncommitted[event_id] = pending
        self._commits.add(append, lambda outcome: self._committed(pending, outcome))

    def _committed(self, pending: _Pending, outcome: Stored | BaseException) -> None:
        append = pending.append
        self._reserved -= 1
        del self._uncommitted[append.event_id]
        if isinstance(outcome, BaseException):
            self._failed = True
            if isinstance(outcome, SyncFailed) or self._broken is not None:
                self._break(outcome)
                self._refusing.append(pending)
                return
            error = (
                IntakeUnavailable(f"intake storage failed: {outcome}")
                if isinstance(outcome, sqlite3.Error | OSError)
                else outcome
            )
            _refuse(pending, error)
            return
        assert outcome is not None
        seq, marker = outcome
        self._failed = False
        self._last_marker = max(self._last_marker, marker)
        self._replay.add(append.event_id, append.replay_until, marker)
        self._depth += 1
        if self._oldest is None:
            self._oldest = append.received_at
        if len(self._recent) < _RECENT_MAX:
            self._recent[seq] = IntakeRecord(
                seq,
                append.event_id,
                append.room_id,
                append.received_at,
                append.payload,
                pending.envelope,
            )
        if seq > self._last_seq:
            self._last_seq = seq
        for waiter in self._waiting:
            _wake(waiter)
        pending.done(True)
        for duplicate in pending.duplicates:
            duplicate(False)
        now = time.time()
        if now >= self._next_housekeeping:
            self._housekeeping(now)

    def _break(self, failure: BaseException) -> None:
        """After a failed fdatasync: refuse everything, delete what was not made durable."""
        if self._broken is not None:
            return
        self._broken = IntakeUnavailable(
            f"intake storage failed: {failure}; nothing is accepted until a restart"
        )
        log.error(
            "intake fdatasync failed: refusing appends until restart", extra={"error": str(failure)}
        )
        self._commits.refuse_waiting(self._broken)
        self._commits.add(Refuse(self._last_seq, self._last_marker), self._refused)

    def _refused(self, outcome: Stored | BaseException) -> None:
        """The rows of the failed commit are deleted (durably, unless ``outcome`` failed)."""
        if isinstance(outcome, BaseException):
            log.error(
                "intake could not delete the events it refused: they may be delivered after "
                "a restart",
                extra={"error": str(outcome), "events": len(self._refusing)},
            )
        refusing, self._refusing = self._refusing, []
        assert self._broken is not None
        for pending in refusing:
            _refuse(pending, self._broken)

    def _housekeeping(self, now: float) -> None:
        """Forget expired replay ids (their markers go with the next commit); checkpoint."""
        self._next_housekeeping = now + _HOUSEKEEPING_SECONDS
        expired = self._replay.expire(now)
        if expired > self._purge_up_to:
            self._purge_up_to = expired
            self._arm_ack_timer()
        # After a failed fdatasync nothing more goes into the database file itself.
        if not self._checkpointing and self._file.is_open and self._broken is None:
            self._checkpointing = True
            self._worker.run_soon(self._file.checkpoint, self._checkpointed)

    def _checkpointed(self, outcome: BaseException | None) -> None:
        self._checkpointing = False
        if outcome is not None:
            log.warning("intake checkpoint failed", extra={"error": str(outcome)})

    # Consuming
    async def take(self, limit: int, wait_seconds: float) -> list[IntakeRecord]:
        if self._cursor >= self._last_seq and wait_seconds > 0:
            loop = asyncio.get_running_loop()
            stored = loop.create_future()
            self._waiting.append(stored)
            timer = loop.call_later(wait_seconds, _wake, stored)
            try:
                await stored
                # One more turn of the loop: commits finishing meanwhile are taken with this
                # one, and the pipeline's rounds (a take, its acks) serve more events each.
                await asyncio.sleep(0)
            finally:
                timer.cancel()
                self._waiting.remove(stored)
        if self._cursor >= self._last_seq:
            return []
        taken: list[IntakeRecord] = []
        last = self._cursor
        for seq in range(self._cursor + 1, min(self._last_seq, self._cursor + limit) + 1):
            record = self._recent.pop(seq, None)
            if record is None:
                if not taken:  # not in memory (a backlog, a restart): read from the file
                    taken = self._file.read(self._cursor, self._last_seq, limit)
                    if len(taken) < limit:  # nothing else up to the last stored event
                        last = self._last_seq
                break
            taken.append(record)
        if taken:
            ref = taken[-1].ref
            assert isinstance(ref, int)
            last = max(last, ref)
        for seq in range(self._cursor + 1, last + 1):
            self._recent.pop(seq, None)
        self._cursor = last
        return taken

    async def ack(self, record: IntakeRecord) -> None:
        await self.ack_many([record])

    async def ack_many(self, records: Sequence[IntakeRecord]) -> None:
        """Delivered: deleted with the next commit (or one a moment from now)."""
        self._acks.extend(record.ref for record in records if isinstance(record.ref, int))
        self._depth -= len(records)
        self._arm_ack_timer()

    def _arm_ack_timer(self) -> None:
        if self._ack_timer is None:
            loop = asyncio.get_running_loop()
            self._ack_timer = loop.call_later(_ACK_DELAY_SECONDS, self._flush_riders)

    def _riders(self) -> list[Op]:
        """What goes along with the next commit: acks, and the purge of old markers."""
        riders: list[Op] = []
        if self._acks:
            riders.append(Ack(self._acks))
            self._acks = []
        if self._purge_up_to:
            riders.append(Purge(self._purge_up_to))
            self._purge_up_to = 0
        return riders

    def _riders_failed(self, riders: list[Op], failure: BaseException) -> None:
        """Riders of a commit that failed: the next commit carries them again.

        A failed fdatasync of acks alone stops the intake too: what is committed after it
        would follow frames that may never reach the disk, and be lost with them.
        """
        if isinstance(failure, SyncFailed):
            self._break(failure)
        for op in riders:
            if isinstance(op, Ack):
                self._acks.extend(op.seqs)
            elif isinstance(op, Purge):
                self._purge_up_to = max(self._purge_up_to, op.up_to)
        self._arm_ack_timer()

    def _flush_riders(self) -> None:
        self._ack_timer = None
        if self._commits.busy:  # the next commit may take them; look again in a moment
            if self._acks or self._purge_up_to:
                self._arm_ack_timer()
            return
        self._commits.flush()

    async def refresh_stats(self) -> None:
        """Re-read depth and the oldest pending time from the file."""
        depth, self._oldest = self._file.stats()
        self._depth = depth - len(self._acks)  # acks not yet committed are still rows
        now = time.time()
        if now >= self._next_housekeeping:
            self._housekeeping(now)

    def depth(self) -> int:
        return self._depth

    def oldest_age(self, now: float) -> float:
        return max(0.0, now - self._oldest) if self._oldest is not None and self._depth else 0.0

    def is_ready(self) -> bool:
        return (
            self._file.is_open
            and self._worker.running
            and not self._failed
            and self._broken is None
        )


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _refuse(pending: _Pending, error: BaseException) -> None:
    pending.done(error)
    for duplicate in pending.duplicates:
        duplicate(error)

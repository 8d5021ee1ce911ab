"""The durable intake: what the HTTP layer appends to and the pipeline consumes from."""

from __future__ import annotations

import asyncio
import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from receiver.intake.partitions import PartitionLeases

AppendDone = Callable[[bool | BaseException], None]
# Appends started by ``CoroutineIntake`` and not finished (the loop keeps weak references only).
_APPENDING: set[asyncio.Task[bool]] = set()


class IntakeFull(Exception):
    """The intake holds its maximum of pending events; the caller answers 503."""


class IntakeUnavailable(Exception):
    """The intake cannot store now (disk full, database or broker down)."""


@dataclass(slots=True)
class IntakeRecord:
    """One stored event: ``ref`` identifies it to :meth:`Intake.ack`.

    ``defect`` says why a stored entry could not be read back (a field missing or
    malformed): the pipeline dead-letters such a record with its raw ``payload``.
    """

    ref: object
    event_id: str
    room_id: str
    received_at: float
    payload: bytes
    # The decoded payload, when the record never left this process (saves a decode).
    envelope: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    defect: str = ""


class Intake(ABC):
    """A durable queue of accepted events.

    ``append`` returns only once the event is durable; the same ``event_id`` appended
    again while its replay window lasts is not stored twice. ``take`` hands out each
    stored event once per process (in order per room), ``ack`` removes it for good;
    what was taken and not acked is handed out again after a restart.
    """

    # The partition leases of a replicated backend (None: a single node).
    leases: PartitionLeases | None = None

    def leads(self) -> bool:
        """Whether this process does the deployment's once-only work (the job sweeps).

        A single node always does; with leases, the replica holding partition 0 (exactly
        one at a time, and another within the lease TTL once it is gone).
        """
        return self.leases is None or self.leases.usable(0)

    def live_replicas(self) -> int:
        """Replicas alive as far as this process knows (1 for a single node)."""
        return 1 if self.leases is None else max(1, self.leases.live)

    async def start(self) -> None:
        """Open storage and connections."""

    async def close(self) -> None:
        """Finish pending writes and release resources."""

    @abstractmethod
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
        """Start storing durably; ``done`` gets, on the loop, True once stored, False if the
        event id was already seen, or the exception.

        This is the one primitive (the HTTP layer answers from ``done``, with no task per
        request); :meth:`append` awaits it. ``envelope`` is ``payload`` decoded; a backend
        may hand it to ``take`` as is. A backend whose store is a coroutine derives from
        :class:`CoroutineIntake`.
        """

    async def append(
        self,
        event_id: str,
        room_id: str,
        received_at: float,
        payload: bytes,
        replay_until: float,
        envelope: dict[str, Any] | None = None,
    ) -> bool:
        """:meth:`append_soon`, awaited: True if stored, False if already seen."""
        future: asyncio.Future[bool | BaseException] = asyncio.get_running_loop().create_future()

        def settle(outcome: bool | BaseException) -> None:
            if not future.done():  # the waiter may have been cancelled meanwhile
                future.set_result(outcome)

        self.append_soon(event_id, room_id, received_at, payload, replay_until, envelope, settle)
        outcome = await future
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    @abstractmethod
    async def take(self, limit: int, wait_seconds: float) -> list[IntakeRecord]:
        """Up to ``limit`` events not yet handed out, waiting up to ``wait_seconds`` for one."""

    @abstractmethod
    async def ack(self, record: IntakeRecord) -> None:
        """The event reached every destination: remove it."""

    async def ack_many(self, records: Sequence[IntakeRecord]) -> None:
        """Remove several delivered events (backends override it to do it at once)."""
        for record in records:
            await self.ack(record)

    def holds(self, record: IntakeRecord) -> bool:
        """Whether this process may still deliver ``record``.

        Always True for a single node. A replicated backend answers False once the
        record's partition is no longer this replica's to consume (its lease was lost, or
        it is being handed off and its drain time is up): the pipeline then stops
        delivering the record, without acking it, and gives it back with :meth:`drop`,
        and the partition's next owner delivers it.
        """
        return True

    def drop(self, records: Sequence[IntakeRecord]) -> None:
        """Records handed out and no longer held (see :meth:`holds`): forget them unacked."""

    async def refresh_stats(self) -> None:
        """Re-read depth and oldest age from the backend (for metrics)."""

    @abstractmethod
    def depth(self) -> int:
        """Events stored and not yet acked (as far as this process knows)."""

    @abstractmethod
    def oldest_age(self, now: float) -> float:
        """Seconds since the oldest pending event was received (0 when empty)."""

    @abstractmethod
    def is_ready(self) -> bool:
        """Whether appends can succeed now."""


class CoroutineIntake(Intake):
    """An intake whose store is a coroutine (a broker round trip): :meth:`append_soon`
    runs :meth:`store` as a task."""

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
        store = self.store(event_id, room_id, received_at, payload, replay_until)
        task = asyncio.get_running_loop().create_task(store)
        _APPENDING.add(task)
        task.add_done_callback(functools.partial(_report, done))

    @abstractmethod
    async def store(
        self, event_id: str, room_id: str, received_at: float, payload: bytes, replay_until: float
    ) -> bool:
        """Store durably; True if stored, False if the event id was already seen."""


def _report(done: AppendDone, task: asyncio.Task[bool]) -> None:
    _APPENDING.discard(task)
    if task.cancelled():
        done(IntakeUnavailable("the append was cancelled"))
        return
    error = task.exception()
    done(error if error is not None else task.result())

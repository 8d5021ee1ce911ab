"""Partitions by room and the leases that give each partition to one replica at a time.

A room always maps to the same partition (``crc32(room_id) % partitions``), and a partition
is consumed by the replica holding its lease, so one room's events are handed out by one
replica at a time and in the order they were stored. Leases expire ``ttl`` seconds after
their last renewal, so the partitions of a replica that died are taken over by the others.

Each replica claims at most ``ceil(partitions / live replicas)`` partitions (live replicas
are counted from heartbeats that expire like the leases); a replica holding more than its
share stops taking new events from the surplus and releases each once nothing it handed
out of it is in hand: acked, or given back once ``drain_seconds`` passed (from then on
its records are no longer :meth:`PartitionLeases.held`, so the pipeline gives them up).
A replica uses a lease only while it is sure to still hold it: until ``2/3 ttl`` after the
last successful renewal (renewals run every ``ttl / 3``), so a replica cut off from the
broker stops before another takes over. A read from the broker that may still hand over
entries must end within the rest of that third (see :func:`poll_seconds`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable
from typing import Protocol

log = logging.getLogger("receiver.intake.leases")


def partition_of(room_id: str, partitions: int) -> int:
    """The partition of a room: ``crc32(room_id) % partitions``."""
    return zlib.crc32(room_id.encode()) % partitions


def poll_seconds(ttl: float) -> float:
    """The longest a blocking read of a partition may wait: under a third of the lease TTL.

    A read started while the lease was usable ends before the lease can expire at the
    broker, so what it hands over is never read after another replica took the partition
    over (and claimed what was pending then).
    """
    return min(1.0, ttl / 4)


def default_replica_id() -> str:
    """A name for this process: host, pid and a random suffix (unique per start)."""
    host = socket.gethostname().split(".", 1)[0] or "replica"
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in host)
    return f"{safe}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class LeaseStore(Protocol):
    """The broker side of the leases; every method may raise when the broker is down."""

    async def acquire(self, partition: int) -> bool:
        """Take the lease if nobody holds it; True when it is now ours."""
        ...

    async def renew(self, partition: int) -> bool:
        """Extend our lease; False when it is no longer ours."""
        ...

    async def release(self, partition: int) -> None:
        """Give the lease up (only if it is still ours)."""
        ...

    async def heartbeat(self) -> int:
        """Announce this replica alive; the number of live replicas (at least 1)."""
        ...

    async def leave(self) -> None:
        """Withdraw this replica's heartbeat."""
        ...


class PartitionLeases:
    """Keeps this replica's share of the partitions; see the module docstring."""

    def __init__(
        self,
        store: LeaseStore,
        *,
        partitions: int,
        ttl: float,
        replica_id: str,
        drain_seconds: float,
        on_acquired: Callable[[int], Awaitable[None]],
        on_lost: Callable[[int], None],
        in_hand: Callable[[int], int],
    ) -> None:
        self._store = store
        self._partitions = partitions
        self._ttl = ttl
        self._drain_seconds = drain_seconds
        self._on_acquired = on_acquired
        self._on_lost = on_lost
        self._in_hand = in_hand
        self._start = zlib.crc32(replica_id.encode()) % partitions
        self._valid_until: dict[int, float] = {}
        self._draining: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self.live = 1
        self.healthy = False
        self.changed = asyncio.Event()

    @property
    def interval(self) -> float:
        """Seconds between two renewals."""
        return self._ttl / 3

    def owned(self) -> list[int]:
        """Partitions this replica may hand out events from now (held, valid, not draining)."""
        now = time.monotonic()
        return sorted(
            p for p, until in self._valid_until.items() if until > now and p not in self._draining
        )

    def usable(self, partition: int) -> bool:
        """Whether events of ``partition`` may be handed out now."""
        until = self._valid_until.get(partition)
        return until is not None and until > time.monotonic() and partition not in self._draining

    def held(self, partition: int) -> bool:
        """Whether events of ``partition`` already handed out may still be delivered.

        True while the lease is valid, and for a draining partition until its drain time
        is up.
        """
        until = self._valid_until.get(partition)
        if until is None or until <= time.monotonic():
            return False
        deadline = self._draining.get(partition)
        return deadline is None or time.monotonic() <= deadline

    def start(self) -> None:
        """Run the renewal loop on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="intake-leases")

    async def close(self) -> None:
        """Stop renewing, release every lease held and withdraw the heartbeat.

        A broker client may swallow the cancellation of a command it was running (and
        the task then stays "cancelling" without ever being cancelled again), so the loop
        also stops on a flag, and the wait for it is bounded by the TTL.
        """
        self._closing.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=self._ttl)
        for partition in list(self._valid_until):
            with contextlib.suppress(Exception):
                await self._store.release(partition)
            self._drop(partition)
        with contextlib.suppress(Exception):
            await self._store.leave()

    async def _run(self) -> None:
        while not self._closing.is_set():
            try:
                await self.tick()
            except Exception as error:  # the broker is down: keep what is still valid
                self.healthy = False
                log.warning("lease renewal failed: %r", error)
                self._expire()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.interval)

    async def tick(self) -> None:
        """One round: heartbeat, renew, hand surplus back, claim up to the share."""
        self.live = max(1, await self._store.heartbeat())
        self.healthy = True
        share = math.ceil(self._partitions / self.live)
        for partition in list(self._valid_until):
            sent = time.monotonic()
            if await self._store.renew(partition):
                self._valid_until[partition] = sent + self._ttl * 2 / 3
            else:
                log.warning("lease of partition %d lost", partition)
                self._drop(partition)
        self._expire()
        surplus = len(self._valid_until) - share
        for partition in sorted(self._valid_until, reverse=True):
            if surplus <= len(self._draining):
                break
            self._draining.setdefault(partition, time.monotonic() + self._drain_seconds)
            self.changed.set()
        for partition in list(self._draining):
            if self._in_hand(partition) == 0:  # past the deadline, the pipeline gives up
                await self._store.release(partition)
                self._drop(partition)
        for offset in range(self._partitions):
            if len(self._valid_until) >= share:
                break
            partition = (self._start + offset) % self._partitions
            if partition in self._valid_until:
                continue
            sent = time.monotonic()
            if await self._store.acquire(partition):
                try:
                    await self._on_acquired(partition)
                except Exception:
                    with contextlib.suppress(Exception):
                        await self._store.release(partition)
                    raise
                self._valid_until[partition] = sent + self._ttl * 2 / 3
                self.changed.set()

    def _expire(self) -> None:
        now = time.monotonic()
        for partition, until in list(self._valid_until.items()):
            if until <= now:
                log.warning("lease of partition %d expired locally", partition)
                self._drop(partition)

    def _drop(self, partition: int) -> None:
        self._valid_until.pop(partition, None)
        self._draining.pop(partition, None)
        self._on_lost(partition)
        self.changed.set()

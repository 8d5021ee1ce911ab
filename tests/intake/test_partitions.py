"""Partition leases: closing stops the renewal loop also when a client swallows a cancel."""

from __future__ import annotations

import asyncio
import time

from receiver.intake.partitions import PartitionLeases


class SwallowingStore:
    """A lease store whose renew, like some broker clients, eats a CancelledError."""

    def __init__(self) -> None:
        self.renewing = asyncio.Event()
        self.released: list[int] = []

    async def acquire(self, partition: int) -> bool:
        return True

    async def renew(self, partition: int) -> bool:
        self.renewing.set()
        try:
            await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            return False  # the cancellation is lost here
        return True

    async def release(self, partition: int) -> None:
        self.released.append(partition)

    async def heartbeat(self) -> int:
        return 1

    async def leave(self) -> None:
        return None


async def test_close_returns_when_the_store_swallows_the_cancellation() -> None:
    store = SwallowingStore()

    async def acquired(_partition: int) -> None:
        return None

    leases = PartitionLeases(
        store,
        partitions=2,
        ttl=1.5,
        replica_id="r",
        drain_seconds=1.0,
        on_acquired=acquired,
        on_lost=lambda _partition: None,
        in_hand=lambda _partition: 0,
    )
    leases.start()
    async with asyncio.timeout(5):
        await store.renewing.wait()  # the loop is inside renew when close cancels it
    started = time.monotonic()
    async with asyncio.timeout(5):
        await leases.close()
    assert time.monotonic() - started < 2.5  # bounded by the TTL, not forever
    assert leases.owned() == []

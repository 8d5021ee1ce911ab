"""Behaviour every distributed intake must show, run against a real broker per backend.

Each case gets ``make(**overrides)`` (a not yet started intake on this test's own stream
or keys; every call is another replica of the same intake) and ``die(intake)`` (stop it
as ``kill -9`` would: no lease released, nothing acked, connection dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import pytest

from receiver.intake import Intake, IntakeFull, IntakeRecord
from receiver.intake.partitions import partition_of

Make = Callable[..., Intake]
Die = Callable[[Intake], Awaitable[None]]


def until() -> float:
    return time.time() + 60


def owned(intake: Intake) -> set[int]:
    leases: Any = getattr(intake, "leases", None)
    return set(leases.owned()) if leases is not None else set()


async def halt(leases: Any, tasks: list[Any]) -> None:
    """Stop an intake's background tasks as ``kill -9`` would, whatever they swallow.

    A client library may catch a cancellation (3.11's ``wait_for`` can drop one that
    arrives as its wait ends): the lease loop also stops on its closing flag, and nothing
    is awaited for longer than a few seconds.
    """
    leases._closing.set()
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks, timeout=5)


async def wait_for(check: Callable[[], bool], deadline: float = 20.0) -> None:
    stop = time.monotonic() + deadline
    while not check():
        assert time.monotonic() < stop, "condition not reached in time"
        await asyncio.sleep(0.05)


async def take_n(intake: Intake, count: int, deadline: float = 20.0) -> list[IntakeRecord]:
    """Take until ``count`` records arrived (or fail after ``deadline`` seconds)."""
    records: list[IntakeRecord] = []
    stop = time.monotonic() + deadline
    while len(records) < count:
        assert time.monotonic() < stop, f"took {len(records)} of {count}"
        records.extend(await intake.take(count - len(records), wait_seconds=0.2))
    return records


def by_room(records: Iterable[IntakeRecord]) -> dict[str, list[str]]:
    rooms: dict[str, list[str]] = defaultdict(list)
    for record in records:
        rooms[record.room_id].append(record.event_id)
    return dict(rooms)


async def append_events(
    intake: Intake, prefix: str, count: int, rooms: int
) -> list[tuple[str, str]]:
    events = [(f"{prefix}{n}", f"room-{n % rooms}") for n in range(count)]
    for event_id, room in events:
        assert await intake.append(
            event_id, room, time.time(), b'{"id":"%s"}' % event_id.encode(), until()
        )
    return events


async def case_append_take_ack(make: Make) -> None:
    intake = make(partitions=4)
    await intake.start()
    try:
        await wait_for(lambda: owned(intake) == {0, 1, 2, 3})
        assert intake.is_ready()
        events = await append_events(intake, "e", 12, rooms=3)
        assert intake.depth() == 12
        records = await take_n(intake, 12)
        assert by_room(records) == by_room(IntakeRecord(None, e, r, 0.0, b"") for e, r in events)
        assert records[0].payload.startswith(b'{"id":"e')
        assert await intake.take(10, wait_seconds=0.1) == []
        for record in records:
            await intake.ack(record)
        await intake.refresh_stats()
        assert intake.depth() == 0
        assert intake.oldest_age(time.time()) == 0.0
    finally:
        await intake.close()


async def case_duplicates_stored_once(make: Make) -> None:
    first, second = make(partitions=2), make(partitions=2)
    await first.start()
    await second.start()
    try:
        now = time.time()
        assert await first.append("same", "room-a", now, b"{}", now + 60)
        assert not await first.append("same", "room-a", now, b"{}", now + 60)
        assert not await second.append("same", "room-a", now, b"{}", now + 60)
        results = await asyncio.gather(
            first.append("race", "room-b", now, b"{}", now + 60),
            second.append("race", "room-b", now, b"{}", now + 60),
        )
        assert sorted(results) == [False, True]
        await first.refresh_stats()
        assert first.depth() == 2
        got: list[IntakeRecord] = []
        stop = time.monotonic() + 10
        while len(got) < 2 and time.monotonic() < stop:
            for intake in (first, second):
                got.extend(await intake.take(10, wait_seconds=0.1))
        await asyncio.sleep(0.5)
        for intake in (first, second):
            got.extend(await intake.take(10, wait_seconds=0.1))
        assert sorted(r.event_id for r in got) == ["race", "same"]
    finally:
        await first.close()
        await second.close()


async def case_full(make: Make) -> None:
    intake = make(partitions=2, max_pending=3)
    await intake.start()
    try:
        await append_events(intake, "f", 3, rooms=2)
        with pytest.raises(IntakeFull):
            await intake.append("f3", "room-0", time.time(), b"{}", until())
        records = await take_n(intake, 1)
        await intake.ack(records[0])
        await intake.refresh_stats()
        assert await intake.append("f3", "room-0", time.time(), b"{}", until())
    finally:
        await intake.close()


async def case_leases_split(make: Make) -> None:
    first, second = make(partitions=8), make(partitions=8)
    await first.start()
    await wait_for(lambda: len(owned(first)) == 8)
    await second.start()
    try:
        await wait_for(lambda: len(owned(first)) == 4 and len(owned(second)) == 4)
        assert owned(first) | owned(second) == set(range(8))
        assert not owned(first) & owned(second)
        await second.close()
        await wait_for(lambda: len(owned(first)) == 8)  # released at close: taken back
    finally:
        await first.close()


async def case_takeover_after_death(make: Make, die: Die, ttl: float) -> None:
    """A replica dies with events in hand; another takes over after the lease TTL."""
    first = make(partitions=4)
    await first.start()
    await wait_for(lambda: len(owned(first)) == 4)
    events = await append_events(first, "t", 40, rooms=5)
    records = await take_n(first, 40)
    acked = {r.event_id for r in records[:7]}
    for record in records[:7]:  # the rest stays in hand, unacked
        await first.ack(record)
    second = make(partitions=4)
    await second.start()
    try:
        await asyncio.sleep(ttl / 2)
        await die(first)
        died = time.monotonic()
        later = [(f"u{n}", f"room-{n % 5}") for n in range(10)]
        for event_id, room in later:
            assert await second.append(event_id, room, time.time(), b"{}", until())
        await wait_for(lambda: len(owned(second)) == 4, deadline=ttl * 4 + 10)
        took_over = time.monotonic() - died
        expected = [(e, r) for e, r in events if e not in acked] + later
        got = await take_n(second, len(expected), deadline=ttl * 4 + 20)
        assert took_over <= ttl * 2 + 2
        assert len({r.event_id for r in got}) == len(expected)
        assert by_room(got) == by_room(IntakeRecord(None, e, r, 0.0, b"") for e, r in expected)
        for record in got:
            await second.ack(record)
        await second.refresh_stats()
        assert second.depth() == 0
    finally:
        await second.close()


async def case_one_leader(make: Make, die: Die, ttl: float) -> None:
    """Exactly one replica leads (holds partition 0); another leads once it died."""
    replicas = [make(partitions=4) for _ in range(3)]
    for replica in replicas:
        await replica.start()
    try:
        await wait_for(lambda: sum(r.leads() for r in replicas) == 1, deadline=ttl * 4 + 10)
        await wait_for(lambda: all(r.live_replicas() == 3 for r in replicas), deadline=ttl * 4)
        (leader,) = [r for r in replicas if r.leads()]
        await die(leader)
        rest = [r for r in replicas if r is not leader]
        await wait_for(lambda: sum(r.leads() for r in rest) == 1, deadline=ttl * 4 + 10)
        await wait_for(lambda: all(r.live_replicas() == 2 for r in rest), deadline=ttl * 4 + 10)
    finally:
        for replica in replicas:
            with contextlib.suppress(Exception):
                await replica.close()


def same_partitions(rooms: int, partitions: int) -> dict[int, list[str]]:
    """Which of ``room-0`` ... fall into which partition (for reading failures)."""
    grouping: dict[int, list[str]] = defaultdict(list)
    for n in range(rooms):
        grouping[partition_of(f"room-{n}", partitions)].append(f"room-{n}")
    return dict(grouping)


Steal = Callable[[Intake, int], Awaitable[None]]


def rooms_of(partitions: int) -> dict[int, str]:
    """One room of each partition."""
    return {p: rooms[0] for p, rooms in same_partitions(8 * partitions, partitions).items()}


async def case_lost_partition_not_held(make: Make, steal: Steal) -> None:
    """Records of a partition whose lease moved on are no longer this replica's to deliver."""
    intake = make(partitions=1)
    await intake.start()
    try:
        await wait_for(lambda: owned(intake) == {0})
        await append_events(intake, "l", 2, rooms=1)
        records = await take_n(intake, 2)
        assert all(intake.holds(r) for r in records)
        await steal(intake, 0)
        await wait_for(lambda: not any(intake.holds(r) for r in records))
        intake.drop(records)
        leases: Any = getattr(intake, "leases")  # noqa: B009
        assert leases._in_hand(0) == 0
    finally:
        await intake.close()


async def case_drain_releases_once_nothing_in_hand(make: Make, drain: float) -> None:
    """A surplus partition is released only once what it handed out is acked or dropped."""
    first = make(partitions=2)
    await first.start()
    await wait_for(lambda: owned(first) == {0, 1})
    rooms = rooms_of(2)
    for partition, room in rooms.items():
        assert await first.append(f"d{partition}", room, time.time(), b"{}", until())
    records = {partition_of(r.room_id, 2): r for r in await take_n(first, 2)}
    second = make(partitions=2)
    await second.start()
    try:
        leases: Any = getattr(first, "leases")  # noqa: B009
        await wait_for(lambda: leases._draining != {})
        (draining,) = leases._draining
        kept = 1 - draining
        assert first.holds(records[draining])  # within the drain time
        await asyncio.sleep(drain + 2.0)
        assert not first.holds(records[draining])  # drain time up: the pipeline gives it up
        assert first.holds(records[kept])
        assert draining not in owned(second)  # still in hand: not released
        first.drop([records[draining]])
        await wait_for(lambda: draining in owned(second))
        (again,) = await take_n(second, 1)
        assert again.event_id == f"d{draining}"
        await second.ack(again)
        await first.ack(records[kept])
    finally:
        await second.close()
        await first.close()

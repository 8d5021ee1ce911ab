"""The journal on real brokers: every replica follows every replica, in one order; a late
follower catches up on what the limits keep; a broken connection resumes without gaps."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import nats
import pytest
import redis.asyncio as aioredis

from receiver.journal import (
    Journal,
    JournalLimits,
    Routed,
    Settled,
    decode,
    routed_entry,
    settled_entry,
)
from receiver.journal.nats import NatsJournal
from receiver.journal.redis import RedisJournal
from tests.brokers import NATS, NATS_URL, REDIS, REDIS_URL, require_service, unique

LIMITS = JournalLimits(1000, 8 * 1024 * 1024, 600.0)


async def drop(kind: str, stream: str) -> None:
    if kind == "redis":
        client = aioredis.from_url(REDIS_URL)
        await client.delete(f"{stream}:journal")
        await client.aclose()
        return
    connection = await nats.connect(NATS_URL)
    with contextlib.suppress(Exception):
        await connection.jetstream().delete_stream(f"{stream}_journal")
    await connection.close()


Make = Callable[..., Journal]


@pytest.fixture(params=["redis", "nats"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Make]:
    kind = request.param
    require_service(kind, NATS if kind == "nats" else REDIS)
    stream = unique("TEST_JOURNAL_" if kind == "nats" else "test-journal-")
    opened: list[Journal] = []

    def build(limits: JournalLimits = LIMITS, **kwargs: Any) -> Journal:
        journal: Journal = (
            RedisJournal(REDIS_URL, stream, limits, **kwargs)
            if kind == "redis"
            else NatsJournal(NATS_URL, stream, limits, **kwargs)
        )
        opened.append(journal)
        return journal

    build.kind = kind  # type: ignore[attr-defined]
    yield build
    for journal in opened:
        await journal.close()
    await drop(kind, stream)


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def body(index: int) -> bytes:
    return b'{"id":"e-%d","roomid":"room-%d","data":{"event_type":"X"}}' % (index, index % 3)


async def test_every_replica_follows_every_replica_in_one_order(make: Make) -> None:
    a, b = make(), make()
    seen_a: list[bytes] = []
    seen_b: list[bytes] = []
    a.start(seen_a.append)
    b.start(seen_b.append)
    for index in range(20):
        writer = a if index % 2 else b
        writer.write(routed_entry(body(index), ["out"], time.time()))
        writer.write(settled_entry(f"e-{index}", "out", "delivered", "", time.time()))
    await until(lambda: len(seen_a) == 40 and len(seen_b) == 40)
    assert seen_a == seen_b  # the backend's order, the same for every follower
    entries = [decode(blob) for blob in seen_a]
    routed = [entry for entry in entries if isinstance(entry, Routed)]
    settled = [entry for entry in entries if isinstance(entry, Settled)]
    assert sorted(entry.envelope["id"] for entry in routed) == sorted(
        f"e-{index}" for index in range(20)
    )
    assert {entry.outcome for entry in settled} == {"delivered"}
    # A replica started later catches up on what the journal keeps.
    late = make()
    seen_late: list[bytes] = []
    late.start(seen_late.append)
    await until(lambda: len(seen_late) == 40)
    assert sorted(seen_late) == sorted(seen_a)


async def test_the_journal_keeps_only_its_newest_entries(make: Make) -> None:
    writer = make(JournalLimits(10, 8 * 1024 * 1024, 600.0))
    writer.start(lambda _blob: None)
    for index in range(50):
        writer.write(routed_entry(body(index), [], time.time()))
    await writer.close()
    late = make(JournalLimits(10, 8 * 1024 * 1024, 600.0))
    seen: list[bytes] = []
    late.start(seen.append)
    await until(lambda: len(seen) >= 10)
    await asyncio.sleep(0.5)
    ids = [entry.envelope["id"] for entry in map(decode, seen) if isinstance(entry, Routed)]
    assert ids == [f"e-{index}" for index in range(40, 50)]


async def test_a_late_follower_skips_what_is_older_than_the_age_limit(make: Make) -> None:
    limits = JournalLimits(1000, 8 * 1024 * 1024, 1.0)
    writer = make(limits)
    writer.start(lambda _blob: None)
    writer.write(routed_entry(body(1), [], time.time()))
    await asyncio.sleep(1.5)
    writer.write(routed_entry(body(2), [], time.time()))
    late = make(limits)
    seen: list[bytes] = []
    late.start(seen.append)
    await until(lambda: len(seen) >= 1)
    await asyncio.sleep(0.5)
    ids = [entry.envelope["id"] for entry in map(decode, seen) if isinstance(entry, Routed)]
    assert ids == ["e-2"]


async def test_a_follower_whose_connection_breaks_resumes_without_gaps(make: Make) -> None:
    if make.kind != "redis":  # type: ignore[attr-defined]
        pytest.skip("the NATS client reconnects by itself; Redis connections are killed here")
    writer, follower = make(), make()
    seen: list[bytes] = []
    writer.start(lambda _blob: None)
    follower.start(seen.append)
    for index in range(5):
        writer.write(routed_entry(body(index), [], time.time()))
    await until(lambda: len(seen) == 5)
    admin = aioredis.from_url(REDIS_URL)
    await admin.client_kill_filter(_type="normal", skipme=True)  # every connection but this
    await admin.aclose()
    for index in range(5, 10):
        writer.write(routed_entry(body(index), [], time.time()))
    await until(lambda: len(seen) >= 10, 20.0)
    await asyncio.sleep(0.5)
    ids = [entry.envelope["id"] for entry in map(decode, seen) if isinstance(entry, Routed)]
    assert ids == [f"e-{index}" for index in range(10)]


async def test_writing_to_a_broker_that_is_down_buffers_then_drops_and_counts() -> None:
    dropped: list[int] = []
    journal = RedisJournal(
        "redis://127.0.0.1:1/0", "nowhere", LIMITS, on_drop=lambda: dropped.append(1)
    )
    journal.start(lambda _blob: None)
    journal.write(b"x" * (600 * 1024))  # larger than an entry may be
    for _ in range(20_001):
        journal.write(b"{}")
    assert len(dropped) == 2  # the large one, and the one past the buffer
    await asyncio.wait_for(journal.close(), 10.0)


async def test_the_buffer_is_bounded_in_bytes_too() -> None:
    dropped: list[int] = []
    journal = RedisJournal(
        "redis://127.0.0.1:1/0", "nowhere", LIMITS, on_drop=lambda: dropped.append(1)
    )
    journal.start(lambda _blob: None)
    entry = b"x" * (400 * 1024)
    for _ in range(100):  # 40 MB, under the entry count, over the byte bound
        journal.write(entry)
    assert 0 < len(dropped) < 100
    await asyncio.wait_for(journal.close(), 10.0)

"""The Redis Streams intake against a real Redis on 127.0.0.1:6379 (skips without it)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
import redis.exceptions

from receiver.intake import Intake, IntakeUnavailable
from receiver.intake.redis import RedisIntake
from tests.brokers import REDIS_URL, redis_prefix
from tests.replicas import intake_cases as cases

TTL = 1.0


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    async for name in redis_prefix("test-intake-"):
        yield name


def maker(prefix: str) -> cases.Make:
    def make(**overrides: Any) -> Intake:
        settings: dict[str, Any] = {
            "stream": prefix, "partitions": 4, "max_pending": 1000, "lease_ttl": TTL,
            "drain_seconds": 2.0,
        }  # fmt: skip
        settings.update(overrides)
        return RedisIntake(REDIS_URL, **settings)

    return make


async def die(intake: Intake) -> None:
    """Stop renewing and disconnect without releasing anything (as ``kill -9``)."""
    assert isinstance(intake, RedisIntake) and intake.leases is not None
    assert intake.leases._task is not None
    await cases.halt(intake.leases, [intake.leases._task])
    client: Any = intake._client
    await client.aclose()


async def test_append_take_ack(prefix: str) -> None:
    await cases.case_append_take_ack(maker(prefix))


async def test_duplicate_stored_once_across_replicas(prefix: str) -> None:
    await cases.case_duplicates_stored_once(maker(prefix))


async def test_full(prefix: str) -> None:
    await cases.case_full(maker(prefix))


async def test_leases_split_partitions(prefix: str) -> None:
    await cases.case_leases_split(maker(prefix))


async def test_takeover_redelivers_in_order(prefix: str) -> None:
    await cases.case_takeover_after_death(maker(prefix), die, TTL)


async def test_one_replica_leads_and_another_after_it_died(prefix: str) -> None:
    await cases.case_one_leader(maker(prefix), die, TTL)


async def test_marker_removed_when_xadd_fails(prefix: str) -> None:
    intake = maker(prefix)(partitions=1)
    await intake.start()
    try:
        client = aioredis.from_url(REDIS_URL)
        await client.delete(intake.stream_key(0))
        await client.set(intake.stream_key(0), b"not a stream")  # XADD now fails
        with pytest.raises(IntakeUnavailable):
            await intake.append("x1", "room", 0.0, b"{}", cases.until())
        assert not await client.exists(intake.seen_key("x1"))
        await client.delete(intake.stream_key(0))
        assert await intake.append("x1", "room", 0.0, b"{}", cases.until())
        await client.aclose()
    finally:
        await intake.close()


async def test_broker_down_is_unavailable(prefix: str) -> None:
    intake = RedisIntake(
        "redis://127.0.0.1:1/0", stream=prefix, partitions=1, max_pending=10, timeout=0.5
    )
    with pytest.raises(IntakeUnavailable):
        await intake.start()


async def steal(intake: Intake, partition: int) -> None:
    """Another replica's lease on ``partition``, as after this one's expired."""
    assert isinstance(intake, RedisIntake)
    client = aioredis.from_url(REDIS_URL)
    await client.set(f"{intake._stream}:lease:{partition}", b"thief", px=60_000)
    await client.aclose()


async def test_lost_partition_is_not_held(prefix: str) -> None:
    await cases.case_lost_partition_not_held(maker(prefix), steal)


async def test_drain_releases_once_nothing_in_hand(prefix: str) -> None:
    await cases.case_drain_releases_once_nothing_in_hand(maker(prefix), drain=2.0)


async def test_a_duplicate_waits_until_the_first_copy_is_stored(prefix: str) -> None:
    """A copy arriving while the first waits for its Redis replicas is answered after it."""
    intake = maker(prefix)(partitions=1, replicas=2)
    await intake.start()
    gate = asyncio.Event()

    async def copies_awaited(client: Any) -> None:
        await gate.wait()

    intake._wait_for_replicas = copies_awaited  # type: ignore[method-assign]
    try:
        first = asyncio.create_task(intake.append("w1", "room", 0.0, b"{}", cases.until()))
        await asyncio.sleep(0.2)
        second = asyncio.create_task(intake.append("w1", "room", 0.0, b"{}", cases.until()))
        await asyncio.sleep(0.2)
        assert not second.done()  # not answered while the first copy is being stored
        gate.set()
        assert await first
        assert not await second
    finally:
        await intake.close()


async def test_a_duplicate_of_a_failed_first_copy_stores_it(prefix: str) -> None:
    intake = maker(prefix)(partitions=1)
    await intake.start()
    assert isinstance(intake, RedisIntake)
    gate = asyncio.Event()
    script = intake._append_script
    calls = 0

    async def failing_once(**arguments: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            await gate.wait()
            raise redis.exceptions.ConnectionError("connection reset")
        return await script(**arguments)

    intake._append_script = failing_once
    try:
        first = asyncio.create_task(intake.append("w2", "room", 0.0, b"{}", cases.until()))
        await asyncio.sleep(0.2)
        second = asyncio.create_task(intake.append("w2", "room", 0.0, b"{}", cases.until()))
        await asyncio.sleep(0.2)
        assert not second.done()
        gate.set()
        with pytest.raises(IntakeUnavailable):
            await first
        assert await second  # the first failed: the second copy stored it
        (record,) = await cases.take_n(intake, 1)
        assert record.event_id == "w2"
        await intake.ack(record)
    finally:
        await intake.close()


async def test_an_ack_retried_after_a_partial_failure_counts_each_entry_once(prefix: str) -> None:
    intake = maker(prefix)(partitions=1)
    await intake.start()
    try:
        await cases.wait_for(lambda: cases.owned(intake) == {0})
        await cases.append_events(intake, "a", 4, rooms=1)
        records = await cases.take_n(intake, 4)
        assert isinstance(intake, RedisIntake) and intake.leases is not None
        await intake.ack_many(records[:1])  # the first try got this far, then failed
        await intake.ack_many(records[:2])  # the retry of the whole batch
        assert intake.leases._in_hand(0) == 2
        assert intake.depth() == 2
    finally:
        await intake.close()


async def test_malformed_entries_do_not_strand_the_batch(prefix: str) -> None:
    intake = maker(prefix)(partitions=1)
    await intake.start()
    try:
        assert isinstance(intake, RedisIntake)
        await cases.wait_for(lambda: cases.owned(intake) == {0})
        client = aioredis.from_url(REDIS_URL)
        stream = intake.stream_key(0)
        await client.xadd(stream, {"id": "bad-at", "room": "r", "at": "soon", "data": b"{}"})
        await client.xadd(stream, {"id": b"\xff", "room": "r", "at": "1.0", "data": b"{}"})
        await client.xadd(stream, {"unexpected": "fields"})
        await client.aclose()
        assert await intake.append("good", "room", 1.0, b"{}", cases.until())
        records = await cases.take_n(intake, 4)
        assert [bool(r.defect) for r in records] == [True, True, True, False]
        assert records[0].event_id == "bad-at" and records[3].event_id == "good"
        await intake.ack_many(records)
        await intake.refresh_stats()
        assert intake.depth() == 0
    finally:
        await intake.close()


async def test_a_blocking_read_ends_within_a_third_of_the_lease(prefix: str) -> None:
    """A read must end before the lease can expire and another replica claim the partition."""
    intake = maker(prefix)(partitions=1, lease_ttl=3.0)
    await intake.start()
    try:
        await cases.wait_for(lambda: cases.owned(intake) == {0})
        assert await intake.take(10, wait_seconds=0.1) == []  # the takeover's claim
        client = intake._redis()
        blocks: list[int] = []
        read = client.xreadgroup

        async def spy(*args: Any, **kwargs: Any) -> Any:
            blocks.append(kwargs["block"])
            return await read(*args, **kwargs)

        client.xreadgroup = spy  # type: ignore[method-assign]
        for _ in range(3):  # a read the client lost is unavailable: retried, as the pipeline does
            with contextlib.suppress(IntakeUnavailable):
                assert await intake.take(10, wait_seconds=5.0) == []
                break
        assert blocks and max(blocks) < 3.0 * 1000 / 3  # milliseconds, under a third of the TTL
    finally:
        await intake.close()


async def test_idle_consumers_of_replicas_gone_are_deleted(prefix: str) -> None:
    intake = maker(prefix)(partitions=1)
    assert isinstance(intake, RedisIntake)
    client = aioredis.from_url(REDIS_URL)
    stream = intake.stream_key(0)
    await client.xgroup_create(stream, "receiver", id="0", mkstream=True)
    await client.xgroup_createconsumer(stream, "receiver", "gone-replica")
    await client.xadd(stream, {"id": "p", "room": "room", "at": "1.0", "data": b"{}"})
    await client.xreadgroup("receiver", "busy-replica", {stream: ">"}, count=1)
    await asyncio.sleep(TTL + 0.2)
    await intake.start()
    try:
        (record,) = await cases.take_n(intake, 1)  # claimed from busy-replica at takeover
        names = {c["name"] for c in await client.xinfo_consumers(stream, "receiver")}
        assert names == {intake.replica_id.encode()}
        await intake.ack(record)
    finally:
        await intake.close()
        await client.aclose()


async def test_a_takeover_claim_that_fails_midway_hands_each_entry_out_once(prefix: str) -> None:
    intake = maker(prefix)(partitions=1)
    assert isinstance(intake, RedisIntake)
    client = aioredis.from_url(REDIS_URL)
    stream = intake.stream_key(0)
    await client.xgroup_create(stream, "receiver", id="0", mkstream=True)
    for n in range(3):
        await client.xadd(stream, {"id": f"c{n}", "room": "room", "at": "1.0", "data": b"{}"})
    await client.xreadgroup("receiver", "dead-replica", {stream: ">"}, count=3)
    await intake.start()
    assert intake._client is not None
    xautoclaim, calls = intake._client.xautoclaim, 0

    async def one_at_a_time_failing_once(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise redis.exceptions.ConnectionError("connection reset")
        return await xautoclaim(*args, **{**kwargs, "count": 1})

    intake._client.xautoclaim = one_at_a_time_failing_once  # type: ignore[method-assign]
    try:
        await cases.wait_for(lambda: cases.owned(intake) == {0})
        records: list[Any] = []
        for _ in range(20):
            with contextlib.suppress(IntakeUnavailable):
                records.extend(await intake.take(10, wait_seconds=0.1))
        assert [r.event_id for r in records] == ["c0", "c1", "c2"]
        await intake.ack_many(records)
    finally:
        await intake.close()
        await client.aclose()


async def test_a_read_whose_reply_never_comes_is_unavailable_not_a_hang(prefix: str) -> None:
    intake = maker(prefix)(partitions=1, lease_ttl=3.0, timeout=0.5)
    await intake.start()
    try:
        await cases.wait_for(lambda: cases.owned(intake) == {0})
        assert await intake.take(10, wait_seconds=0.1) == []  # the takeover's claim

        async def lost(*args: Any, **kwargs: Any) -> Any:
            await asyncio.Event().wait()  # a reply that never arrives

        intake._redis().xreadgroup = lost  # type: ignore[method-assign]
        async with asyncio.timeout(30):  # guards the hang this test is about
            with pytest.raises(IntakeUnavailable):
                await intake.take(10, wait_seconds=5.0)
    finally:
        await intake.close()

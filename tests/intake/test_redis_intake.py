"""The Redis Streams intake against a real Redis on 127.0.0.1:6379 (skips without it)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from receiver.intake import Intake, IntakeUnavailable
from receiver.intake.redis import RedisIntake
from tests.brokers import REDIS, REDIS_URL, require_service, unique
from tests.replicas import intake_cases as cases

TTL = 1.0


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    require_service("Redis", REDIS)
    name = unique("test-intake-")
    yield name
    client = aioredis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(match=f"{name}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


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
    task: Any = intake.leases._task
    task.cancel()
    with contextlib.suppress(BaseException):
        await task
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

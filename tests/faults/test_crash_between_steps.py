"""A replica killed between two steps of an append: the event is never lost to a replay.

Each test lets a replica's append run some steps against the broker, then kills it there
(no except clause, no cleanup runs), and sends the same callback again to another replica.
The replay must find the event stored exactly once: answered ``duplicate`` only when the
first copy was stored, stored otherwise.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from receiver.intake.nats import NatsIntake
from receiver.intake.redis import RedisIntake
from tests.brokers import REDIS_URL, redis_prefix
from tests.intake.nats_server import OwnNatsServer, running_nats_server
from tests.replicas import intake_cases as cases


class Killed(BaseException):
    """The process dies here: nothing of the append's error handling runs."""


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    async for name in redis_prefix("test-crash-steps-"):
        yield name


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[OwnNatsServer]:
    yield from running_nats_server(tmp_path / "jetstream")


def kill_after(target: Any, attribute: str, steps: int) -> None:
    """Make ``target.attribute`` (a coroutine function) kill the caller after ``steps`` calls."""
    original = getattr(target, attribute)
    done = 0

    async def step(*args: Any, **kwargs: Any) -> Any:
        nonlocal done
        result = await original(*args, **kwargs)
        done += 1
        if done >= steps:
            raise Killed
        return result

    setattr(target, attribute, step)


class TestCrashBetweenSteps:
    """Kill a replica after each step of its append; a replay on another replica follows."""

    @pytest.mark.parametrize("steps", [1, 2, 3])
    async def test_redis_append(self, prefix: str, steps: int) -> None:
        dying = RedisIntake(REDIS_URL, stream=prefix, partitions=1, max_pending=100)
        other = RedisIntake(REDIS_URL, stream=prefix, partitions=1, max_pending=100)
        await dying.start()
        await other.start()
        try:
            kill_after(dying._client, "execute_command", steps)
            with contextlib.suppress(Killed):
                await dying.append("crash", "room", 1.0, b"{}", cases.until())
            await other.append("crash", "room", 1.0, b"{}", cases.until())
            client = aioredis.from_url(REDIS_URL)
            entries = await client.xrange(other.stream_key(0))
            await client.aclose()
            assert [fields[b"id"] for _, fields in entries] == [b"crash"]
        finally:
            await other.close()
            with contextlib.suppress(BaseException):
                await dying.close()

    @pytest.mark.parametrize("step", ["markers.seen", "publish", "markers.mark"])
    async def test_nats_append_and_a_server_restart(
        self, nats_server: OwnNatsServer, step: str
    ) -> None:
        """Killed after ``step``; then the server restarts; then the replay arrives."""
        settings: dict[str, Any] = {
            "stream": "CRASH", "partitions": 1, "max_pending": 100, "lease_ttl": 1.5,
        }  # fmt: skip
        dying = NatsIntake(nats_server.url, **settings)
        await dying.start()
        assert dying._setup is not None
        target: Any = dying._setup.markers if step.startswith("markers") else dying._js
        kill_after(target, step.rsplit(".", 1)[-1], 1)
        with contextlib.suppress(Killed):
            await dying.append("crash", "room", 1.0, b"{}", cases.until())
        with contextlib.suppress(BaseException):
            await dying.close()
        nats_server.restart()
        other = NatsIntake(nats_server.url, **settings)
        await other.start()
        try:
            await other.append("crash", "room", 1.0, b"{}", cases.until())
            await other.refresh_stats()
            assert other.depth() == 1  # stored once: by the first copy or by the replay
        finally:
            await other.close()

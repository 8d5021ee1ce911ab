"""Delivery through a real broker that goes away: buffering, dead letters and replay."""

import asyncio
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from receiver.app import ReceiverApp
from receiver.cli import main
from receiver.config import load_settings
from tests.brokers import REDIS, TcpProxy, require_service, unique
from tests.helpers import callback_body, signed_headers, write_config

URL = "http://127.0.0.1:8999/callbacks/metastudio"
PATH = "/callbacks/metastudio"


def redis_config(tmp_path: Path, port: int, stream: str, attempts: int) -> Path:
    config = write_config(
        tmp_path,
        8999,
        extra=f"""
[[sinks]]
name = "redis"
type = "redis"
url = "redis://127.0.0.1:{port}/0"
stream = "{stream}"
timeout_seconds = 1

[[routes]]
sinks = ["redis"]

[pipeline.retry]
max_attempts = {attempts}
initial_backoff_seconds = 0.05
max_backoff_seconds = 0.2
""",
    )
    return config


async def stream_ids(stream: str) -> list[str]:
    client = aioredis.from_url("redis://127.0.0.1:6379/0")
    try:
        return [fields[b"id"].decode() for _entry, fields in await client.xrange(stream)]
    finally:
        await client.aclose()


async def send(app: ReceiverApp, count: int, room: str = "room-1") -> list[str]:
    ids = []
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8999"
    ) as http:
        for n in range(count):
            response = await http.post(
                PATH, content=callback_body(room=room, reply_id=str(n)), headers=signed_headers(URL)
            )
            assert response.status_code == 200
            ids.append(response.json()["id"])
    return ids


async def test_intake_buffers_while_the_broker_is_down_and_drains_in_order(tmp_path: Path) -> None:
    require_service("Redis", REDIS)
    proxy = await TcpProxy(REDIS).start()
    stream = unique("buffer-")
    app = ReceiverApp(load_settings(redis_config(tmp_path, proxy.port, stream, attempts=1000)))
    await app.service.start()
    try:
        proxy.cut()
        ids = await send(app, 30)
        await asyncio.sleep(0.5)
        assert app.service.intake.depth() == 30
        assert await stream_ids(stream) == []
        proxy.restore()
        async with asyncio.timeout(30):
            while app.service.intake.depth():
                await asyncio.sleep(0.05)
        assert await stream_ids(stream) == ids
    finally:
        await app.service.stop()
        await proxy.close()
        client = aioredis.from_url("redis://127.0.0.1:6379/0")
        await client.delete(stream)
        await client.aclose()


async def test_exhausted_events_are_dead_lettered_then_replayed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_service("Redis", REDIS)
    proxy = await TcpProxy(REDIS).start()
    stream = unique("dlq-")
    config = redis_config(tmp_path, proxy.port, stream, attempts=2)
    app = ReceiverApp(load_settings(config))
    await app.service.start()
    try:
        proxy.cut()
        ids = await send(app, 3)
        async with asyncio.timeout(30):
            while app.service.intake.depth():
                await asyncio.sleep(0.05)
        # the jsonl sink got them all; redis gave up after two attempts each
        assert await app.service.dead_letters.count() == 3
    finally:
        await app.service.stop()
    assert await asyncio.to_thread(main, ["dlq", "list", "--config", str(config)]) == 0
    listed = capsys.readouterr().out
    assert all(event_id in listed for event_id in ids)
    assert (
        await asyncio.to_thread(main, ["dlq", "replay", "--all", "--config", str(config)]) == 1
    )  # broker still down: kept
    proxy.restore()
    assert await asyncio.to_thread(main, ["dlq", "replay", "--all", "--config", str(config)]) == 0
    assert await stream_ids(stream) == ids
    assert await asyncio.to_thread(main, ["dlq", "list", "--config", str(config)]) == 0
    listed = capsys.readouterr().out
    assert not any(event_id in listed for event_id in ids)
    await proxy.close()
    client = aioredis.from_url("redis://127.0.0.1:6379/0")
    await client.delete(stream)
    await client.aclose()

"""RedisSink against the local Redis server."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from receiver.sink_settings import RedisSinkSettings
from receiver.sinks.base import DeliveryError
from receiver.sinks.factory import build_sink
from receiver.sinks.redis import RedisSink, dedup_key
from tests.brokers import (
    REDIS,
    free_port,
    ids_by_room,
    make_event,
    make_events,
    publish_per_room,
    publish_until_delivered,
    unique,
)
from tests.sinks.conftest import ProxyFactory
from tests.sinks.consumer import binary_event, read_json, traced_event
from tests.test_envelope import HOSTILE


def settings(
    url: str,
    stream: str,
    *,
    maxlen: int | None = None,
    dedup_seconds: int | None = 60,
    timeout: float = 5.0,
) -> RedisSinkSettings:
    return RedisSinkSettings(
        name="redis",
        type="redis",
        url=SecretStr(url),
        stream=stream,
        maxlen=maxlen,
        dedup_seconds=dedup_seconds,
        timeout_seconds=timeout,
    )


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    connection = aioredis.from_url(redis_url)
    yield connection
    await connection.aclose()


@pytest.fixture
async def prefix(client: aioredis.Redis) -> AsyncIterator[str]:
    """A key prefix unique to the test; its keys are deleted after."""
    name = unique("test:")
    yield name
    keys = [key async for key in client.scan_iter(match=f"*{name}*")]
    if keys:
        await client.delete(*keys)


async def xrange(client: aioredis.Redis, stream: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    raw: Any = await client.xrange(stream)
    return [(entry_id, fields) for entry_id, fields in raw]


async def entries(client: aioredis.Redis, stream: str) -> list[dict[bytes, bytes]]:
    return [fields for _entry_id, fields in await xrange(client, stream)]


async def test_appends_every_event_in_room_order(
    redis_url: str, client: aioredis.Redis, prefix: str
) -> None:
    sink = build_sink(settings(redis_url, prefix + ":{room_id}"))
    events = make_events(50, rooms=3)
    await sink.start()
    try:
        assert sink.is_ready()
        await publish_per_room(sink, events)
    finally:
        await sink.close()

    sent = {envelope["id"]: (envelope, body) for envelope, body in events}
    received = []
    for room in ("room-0", "room-1", "room-2"):
        for fields in await entries(client, f"{prefix}:{room}"):
            envelope, body = sent[fields[b"id"].decode()]
            assert fields[b"data"] == body
            assert orjson.loads(fields[b"data"]) == envelope
            assert fields[b"type"].decode() == envelope["type"]
            assert fields[b"room_id"].decode() == room == envelope["roomid"]
            received.append((envelope, body))
    assert len(received) == 50
    assert ids_by_room(received) == ids_by_room(events)


async def test_a_cloudevents_sdk_reads_the_data_field_as_a_structured_event(
    redis_url: str, client: aioredis.Redis, prefix: str
) -> None:
    sink = RedisSink(settings(redis_url, prefix + ":events"))
    envelope, body = traced_event("room-1", 1)
    try:
        await sink.publish(envelope, body)
    finally:
        await sink.close()
    [fields] = await entries(client, prefix + ":events")
    read_json(fields[b"data"], envelope)


async def test_same_event_id_is_added_once_within_the_dedup_window(
    redis_url: str, client: aioredis.Redis, prefix: str
) -> None:
    sink = RedisSink(settings(redis_url, prefix))
    event = make_event("room-1", 1)
    try:
        await sink.publish(*event)
        await sink.publish(*event)
    finally:
        await sink.close()
    assert [f[b"id"].decode() for f in await entries(client, prefix)] == [event[0]["id"]]
    marker = dedup_key(prefix, event[0]["id"])
    assert 0 < await client.ttl(marker) <= 60
    assert await client.get(marker) == (await xrange(client, prefix))[0][0]


async def test_without_dedup_every_publish_is_added(
    redis_url: str, client: aioredis.Redis, prefix: str
) -> None:
    sink = RedisSink(settings(redis_url, prefix, dedup_seconds=None))
    event = make_event("room-1", 1)
    try:
        await sink.publish(*event)
        await sink.publish(*event)
    finally:
        await sink.close()
    assert await client.xlen(prefix) == 2


async def test_maxlen_trims_the_stream_approximately(
    redis_url: str, client: aioredis.Redis, prefix: str
) -> None:
    sink = RedisSink(settings(redis_url, prefix, maxlen=10))
    try:
        for index in range(300):
            await sink.publish(*make_event("room-1", index))
    finally:
        await sink.close()
    length = await client.xlen(prefix)
    assert 10 <= length < 300


async def test_connection_cut_loses_nothing_and_adds_nothing_twice(
    client: aioredis.Redis, prefix: str, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(REDIS)
    sink = RedisSink(settings(f"redis://127.0.0.1:{proxy.port}/0", prefix, timeout=1.0))
    events = make_events(20, rooms=2)
    try:
        for event in events[:8]:
            await sink.publish(*event)
        proxy.cut()
        for _attempt in range(2):
            with pytest.raises(DeliveryError) as caught:
                await sink.publish(*events[8])
            assert caught.value.retryable
        assert not sink.is_ready()
        proxy.restore()
        for event in events[8:]:
            await publish_until_delivered(sink, event)
        assert sink.is_ready()
    finally:
        await sink.close()
    ids = [fields[b"id"].decode() for fields in await entries(client, prefix)]
    assert ids == [envelope["id"] for envelope, _ in events]


async def test_server_down_at_start_is_not_fatal_and_secrets_stay_out() -> None:
    url = f"redis://user:s3cret-pass@127.0.0.1:{free_port()}/0"
    sink = RedisSink(settings(url, "never", timeout=1.0))
    await sink.start()
    assert not sink.is_ready()
    with pytest.raises(DeliveryError) as caught:
        await sink.publish(*make_event("room-1", 1))
    await sink.close()
    assert caught.value.retryable
    assert "s3cret-pass" not in caught.value.detail
    assert "s3cret-pass" not in repr(sink)


async def test_stream_key_of_another_type_is_not_retryable(
    redis_url: str, client: aioredis.Redis, prefix: str
) -> None:
    await client.set(prefix, "not a stream")
    sink = RedisSink(settings(redis_url, prefix))
    try:
        with pytest.raises(DeliveryError) as caught:
            await sink.publish(*make_event("room-1", 1))
    finally:
        await sink.close()
    assert not caught.value.retryable
    assert "WRONGTYPE" in caught.value.detail


async def test_hostile_room_ids_name_only_safe_distinct_streams(
    redis_url: str, client: aioredis.Redis, prefix: str
) -> None:
    sink = RedisSink(settings(redis_url, prefix + ":{room_id}", dedup_seconds=None))
    try:
        for room in HOSTILE:
            await sink.publish(*make_event(room, 1))
    finally:
        await sink.close()
    keys = [key.decode() async for key in client.scan_iter(match=f"*{prefix}*")]
    assert len(keys) == len(HOSTILE)
    safe = re.compile(re.escape(prefix) + r":[A-Za-z0-9_-]{1,128}")
    assert all(safe.fullmatch(key) for key in keys), keys


ROOM = "直播间 1"  # percent-encoded in ce- headers


def expected_body(envelope: dict[str, Any], payload: str) -> Any:
    return envelope["data"]["message"] if payload == "message" else envelope["data"]


@pytest.mark.parametrize("payload", ["data", "message"])
async def test_binary_mode_puts_the_data_in_data_and_attributes_in_ce_fields(
    redis_url: str, client: aioredis.Redis, prefix: str, payload: str
) -> None:
    sink = RedisSink(settings(redis_url, prefix + ":out").model_copy(update={"payload": payload}))
    envelope, body = binary_event(ROOM, 1)
    try:
        await sink.publish(envelope, body)
    finally:
        await sink.close()
    [fields] = await entries(client, prefix + ":out")
    assert orjson.loads(fields[b"data"]) == expected_body(envelope, payload)
    assert fields[b"content_type"] == b"application/json"
    assert fields[b"id"] == fields[b"ce_id"] == envelope["id"].encode()
    assert fields[b"ce_subject"].decode() == ROOM
    assert fields[b"ce_knowntype"] == b"false"
    assert fields[b"ce_traceparent"] == envelope["traceparent"].encode()
    assert b"ce_datacontenttype" not in fields

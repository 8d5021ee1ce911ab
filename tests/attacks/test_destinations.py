"""Hostile values in every templated destination of every sink that templates one.

The signature never covers the body, so ``room_id``, ``job_id``, ``event_type``, ``state``
and the room name are whatever a signed request says. Each must end in a destination of
the sink's own shape: a file inside the sink directory, a key, subject, routing key or
topic of letters, digits, ``-`` and ``_`` after the template's fixed part; distinct values
must keep distinct destinations, and no number of them may exhaust descriptors.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import aio_pika.abc
import nats
import nats.js.errors
import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient
from nats.aio.client import Client
from pydantic import SecretStr

from receiver.envelope import build_envelope
from receiver.events import Callback
from receiver.sink_settings import (
    JsonlSinkSettings,
    KafkaSinkSettings,
    NatsSinkSettings,
    RabbitMqSinkSettings,
    RedisSinkSettings,
)
from receiver.sinks.base import InvalidDestination, Sink
from receiver.sinks.jsonl import JsonlSink
from receiver.sinks.kafka import KafkaSink
from receiver.sinks.nats import NatsSink
from receiver.sinks.rabbitmq import RabbitMqSink
from receiver.sinks.redis import RedisSink
from tests.brokers import (
    NATS,
    NATS_URL,
    RABBITMQ,
    RABBITMQ_URL,
    REDIS,
    REDIS_URL,
    Event,
    Tansu,
    require_service,
    unique,
)

HOSTILE = ["../", "../../etc/passwd", "/abs", "a\x00b", "a\nb", "字" * 8000, ".", "..", ""]
FIELDS = ["room_id", "job_id", "event_type", "state", "room_name"]
SAFE = r"[A-Za-z0-9_-]{1,128}"
MAX_EVENT_TYPE = 64


def hostile_event(field: str, value: str) -> Event:
    """An envelope as the pipeline builds it, with ``value`` in ``field``.

    An ``event_type`` is cut to the 64 characters the intake accepts of one.
    """
    if field == "event_type":
        value = value[:MAX_EVENT_TYPE]
    values = {
        "room_id": "room-1",
        "job_id": "job-1",
        "event_type": "REPLY_COMMAND_FINISH",
        "state": "CONNECTED",
        "room_name": "lobby",
    } | {field: value}
    message = {"room_id": values["room_id"], "job_id": values["job_id"], "state": values["state"]}
    callback = Callback(values["event_type"], message, False, values["room_id"], values["job_id"])
    envelope = build_envelope(callback, uuid.uuid4().hex, time.time(), "urn:test:receiver")
    envelope["data"]["job"] = {"room_name": values["room_name"]}
    return envelope, orjson.dumps(envelope)


async def publish_all(sink: Sink, events: list[Event]) -> None:
    """Start ``sink``, publish every event (each must be confirmed), close it."""
    await sink.start()
    try:
        for event in events:
            await sink.publish(*event)
    finally:
        await sink.close()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def files_under(directory: Path) -> list[Path]:
    return sorted(path for path in directory.rglob("*") if path.is_file())


@pytest.fixture(scope="module")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tansu]:
    broker = Tansu(tmp_path_factory.mktemp("tansu")).start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
async def redis_prefix() -> AsyncIterator[tuple[aioredis.Redis, str]]:
    """A Redis client and a key prefix unique to the test; its keys are deleted after."""
    require_service("Redis", REDIS)
    client = aioredis.from_url(REDIS_URL)
    prefix = unique("test:hostile:")
    yield client, prefix
    keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def nats_stream() -> AsyncIterator[tuple[Client, str, str]]:
    """A NATS client, a stream name and a subject prefix unique to the test."""
    require_service("NATS", NATS)
    client = await nats.connect(NATS_URL)
    name, prefix = unique("TEST_HOSTILE_"), unique("test-hostile-")
    yield client, name, prefix
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await client.jetstream().delete_stream(name)
    await client.close()


@pytest.fixture
async def rabbitmq_queue() -> AsyncIterator[tuple[str, aio_pika.abc.AbstractQueue]]:
    """A topic exchange unique to the test and a queue bound to every key."""
    require_service("RabbitMQ", RABBITMQ)
    connection = await aio_pika.connect(RABBITMQ_URL)
    channel = await connection.channel()
    name = unique("test-hostile-")
    exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(unique("test-hostile-q-"), exclusive=True)
    await queue.bind(exchange, "#")
    yield name, queue
    await queue.delete(if_unused=False, if_empty=False)
    await exchange.delete()
    await connection.close()


async def routing_keys(queue: aio_pika.abc.AbstractQueue) -> list[str]:
    keys = []
    while (message := await queue.get(no_ack=True, fail=False, timeout=5)) is not None:
        assert message.routing_key is not None
        keys.append(message.routing_key)
    return keys


def events_for(field: str) -> list[Event]:
    return [hostile_event(field, value) for value in HOSTILE]


def all_safe(names: list[str], prefix: str, separator: str) -> bool:
    shape = re.compile(re.escape(prefix + separator) + SAFE)
    return all(shape.fullmatch(name) for name in names)


@pytest.mark.parametrize("field", FIELDS)
class TestHostileDestinations:
    """Every hostile value of every field is delivered, to its own well-formed destination."""

    async def test_jsonl_files_stay_in_the_sink_directory(self, tmp_path: Path, field: str) -> None:
        directory = tmp_path / "a" / "b" / "sink"
        template = directory / f"{{{field}}}" / "events.jsonl"
        await publish_all(
            JsonlSink(JsonlSinkSettings(name="f", type="jsonl", path=template)),
            events_for(field),
        )
        files = files_under(tmp_path)
        assert len(files) == len(HOSTILE)
        for path in files:
            assert path.parent.parent == directory, path
            assert re.fullmatch(SAFE, path.parent.name), path

    async def test_redis_keys_keep_the_stream_shape(
        self, redis_prefix: tuple[aioredis.Redis, str], field: str
    ) -> None:
        client, prefix = redis_prefix
        settings = RedisSinkSettings(
            name="redis",
            type="redis",
            url=SecretStr(REDIS_URL),
            stream=f"{prefix}:{{{field}}}",
            dedup_seconds=None,
        )
        await publish_all(RedisSink(settings), events_for(field))
        keys = [key.decode() async for key in client.scan_iter(match=f"{prefix}*")]
        assert len(keys) == len(HOSTILE)
        assert all_safe(keys, prefix, ":"), keys

    async def test_nats_subjects_are_one_safe_token(
        self, nats_stream: tuple[Client, str, str], field: str
    ) -> None:
        client, stream, prefix = nats_stream
        settings = NatsSinkSettings(
            name="nats", type="nats", url=NATS_URL, subject=f"{prefix}.{{{field}}}", stream=stream
        )
        await publish_all(NatsSink(settings), events_for(field))
        js = client.jetstream()
        info = await js.stream_info(stream)
        subjects = [(await js.get_msg(stream, seq)).subject for seq in range(1, len(HOSTILE) + 1)]
        assert info.state.messages == len(HOSTILE)
        assert len(set(subjects)) == len(HOSTILE)
        assert all_safe(subjects, prefix, "."), subjects

    async def test_rabbitmq_routing_keys_are_one_safe_word(
        self, rabbitmq_queue: tuple[str, aio_pika.abc.AbstractQueue], field: str
    ) -> None:
        exchange, queue = rabbitmq_queue
        settings = RabbitMqSinkSettings(
            name="amqp",
            type="rabbitmq",
            url=SecretStr(RABBITMQ_URL),
            exchange=exchange,
            routing_key=f"hostile.{{{field}}}",
        )
        await publish_all(RabbitMqSink(settings), events_for(field))
        keys = await routing_keys(queue)
        assert len(keys) == len(set(keys)) == len(HOSTILE)
        assert all_safe(keys, "hostile", "."), keys

    async def test_kafka_topics_are_valid_names(self, tansu: Tansu, field: str) -> None:
        prefix = unique("test-hostile-")
        settings = KafkaSinkSettings(
            name="kafka",
            type="kafka",
            bootstrap_servers=tansu.bootstrap,
            topic=f"{prefix}-{{{field}}}",
        )
        await publish_all(KafkaSink(settings), events_for(field))
        admin = AIOKafkaAdminClient(bootstrap_servers=tansu.bootstrap)
        await admin.start()
        try:
            topics = [topic for topic in await admin.list_topics() if topic.startswith(prefix)]
        finally:
            await admin.close()
        assert len(topics) == len(HOSTILE)
        assert all_safe(topics, prefix, "-"), topics


class TestHostileDestinationLimits:
    """Many distinct values cannot exhaust descriptors; a rendering too long is refused."""

    async def test_300_room_ids_keep_the_open_files_bounded(self, tmp_path: Path) -> None:
        template = tmp_path / "{room_id}.jsonl"
        sink = JsonlSink(JsonlSinkSettings(name="f", type="jsonl", path=template))
        await sink.start()
        before = open_fds()
        peak = 0
        try:
            for index in range(300):
                await sink.publish(*hostile_event("room_id", f"../room/{index}"))
                peak = max(peak, open_fds() - before)
        finally:
            await sink.close()
        assert peak <= 64  # the default max_open_files
        assert len(files_under(tmp_path)) == 300

    @pytest.mark.parametrize("sink_type", ["jsonl", "rabbitmq", "kafka"])
    async def test_a_rendering_over_the_sinks_limit_is_refused_for_good(
        self, tmp_path: Path, sink_type: str
    ) -> None:
        two_fields = "{room_id}.{job_id}"  # two values of 128: over every name limit
        sink: Any
        if sink_type == "jsonl":
            settings = JsonlSinkSettings(name="f", type="jsonl", path=tmp_path / two_fields)
            sink = JsonlSink(settings)
        elif sink_type == "rabbitmq":
            sink = RabbitMqSink(
                RabbitMqSinkSettings(name="amqp", type="rabbitmq", routing_key=two_fields)
            )
        else:
            sink = KafkaSink(KafkaSinkSettings(name="kafka", type="kafka", topic=two_fields))
        envelope, body = hostile_event("room_id", "字" * 8000)
        envelope["jobid"] = "字" * 8000
        try:
            with pytest.raises(InvalidDestination) as caught:
                await sink.publish(envelope, body)
        finally:
            await sink.close()
        assert not caught.value.retryable

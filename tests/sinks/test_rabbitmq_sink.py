"""RabbitMqSink against the local RabbitMQ server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import aio_pika.abc
import orjson
import pytest
from pydantic import SecretStr

from receiver.sink_settings import RabbitMqSinkSettings
from receiver.sinks.base import DeliveryError, InvalidDestination
from receiver.sinks.factory import build_sink
from receiver.sinks.rabbitmq import RabbitMqSink
from tests.brokers import (
    RABBITMQ,
    RABBITMQ_URL,
    first_seen,
    free_port,
    ids_by_room,
    make_event,
    make_events,
    publish_per_room,
    publish_until_delivered,
    unique,
)
from tests.sinks.conftest import ProxyFactory
from tests.sinks.consumer import (
    binary_event,
    check_structured_headers,
    read_rabbitmq,
    read_rabbitmq_binary,
    traced_event,
)


def settings(url: str, exchange: str, *, declare: bool = True, timeout: float = 5.0) -> Any:
    return RabbitMqSinkSettings(
        name="amqp",
        type="rabbitmq",
        url=SecretStr(url),
        exchange=exchange,
        declare_exchange=declare,
        timeout_seconds=timeout,
    )


@pytest.fixture
async def channel(rabbitmq_url: str) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect(rabbitmq_url)
    channel = await connection.channel()
    yield channel
    await connection.close()


@pytest.fixture
async def bound(
    channel: aio_pika.abc.AbstractChannel,
) -> AsyncIterator[tuple[str, aio_pika.abc.AbstractQueue]]:
    """A durable topic exchange unique to the test, with a queue bound to every key."""
    name = unique("test-")
    exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(unique("test-q-"), exclusive=True)
    await queue.bind(exchange, "#")
    yield name, queue
    await queue.delete(if_unused=False, if_empty=False)
    await exchange.delete()


async def drain(queue: aio_pika.abc.AbstractQueue) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Every message waiting in ``queue``."""
    messages = []
    while (message := await queue.get(no_ack=True, fail=False, timeout=5)) is not None:
        messages.append(message)
    return messages


async def test_publishes_persistent_confirmed_messages_in_room_order(
    rabbitmq_url: str, bound: tuple[str, aio_pika.abc.AbstractQueue]
) -> None:
    exchange, queue = bound
    sink = build_sink(settings(rabbitmq_url, exchange))
    events = make_events(50, rooms=3)
    await sink.start()
    try:
        assert sink.is_ready()
        await publish_per_room(sink, events)
    finally:
        await sink.close()

    messages = await drain(queue)
    assert len(messages) == 50
    sent = {envelope["id"]: (envelope, body) for envelope, body in events}
    received: list[tuple[dict[str, Any], bytes]] = []
    for message in messages:
        assert message.message_id is not None
        envelope, body = sent[message.message_id]
        assert message.body == body
        assert orjson.loads(message.body) == envelope
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.routing_key == f"REPLY_COMMAND_FINISH.{envelope['roomid']}"
        check_structured_headers({**message.headers, "content-type": message.content_type})
        received.append((envelope, body))
    assert ids_by_room(received) == ids_by_room(events)


async def test_a_cloudevents_sdk_reads_the_message_in_structured_mode(
    rabbitmq_url: str, bound: tuple[str, aio_pika.abc.AbstractQueue]
) -> None:
    exchange, queue = bound
    sink = RabbitMqSink(settings(rabbitmq_url, exchange))
    envelope, body = traced_event("room-1", 1)
    try:
        await sink.publish(envelope, body)
    finally:
        await sink.close()
    [message] = await drain(queue)
    read_rabbitmq(message.content_type, message.headers, message.body, envelope)


async def test_unroutable_message_is_a_retryable_failure(
    rabbitmq_url: str, channel: aio_pika.abc.AbstractChannel
) -> None:
    name = unique("test-unbound-")
    sink = RabbitMqSink(settings(rabbitmq_url, name))
    try:
        with pytest.raises(DeliveryError) as caught:
            await sink.publish(*make_event("room-1", 1))
    finally:
        await sink.close()
        await channel.exchange_delete(name)
    assert caught.value.retryable
    assert "unroutable" in caught.value.detail


async def test_routing_key_over_255_bytes_is_an_invalid_destination(
    bound: tuple[str, aio_pika.abc.AbstractQueue],
) -> None:
    exchange, queue = bound
    long_key = settings(RABBITMQ_URL, exchange).model_copy(
        update={"routing_key": "{room_id}.{job_id}"}
    )
    sink = RabbitMqSink(long_key)
    try:
        with pytest.raises(InvalidDestination) as caught:
            await sink.publish(*make_event("字" * 8000, 1))
    finally:
        await sink.close()
    assert not caught.value.retryable
    assert "over 255 bytes" in caught.value.detail
    assert await drain(queue) == []


async def test_missing_exchange_without_declare_fails(rabbitmq_url: str) -> None:
    sink = RabbitMqSink(settings(rabbitmq_url, unique("test-absent-"), declare=False, timeout=2))
    try:
        with pytest.raises(DeliveryError) as caught:
            await sink.publish(*make_event("room-1", 1))
    finally:
        await sink.close()
    assert caught.value.retryable
    assert "guest:guest" not in caught.value.detail


async def test_connection_cut_loses_nothing_and_duplicates_carry_the_same_id(
    bound: tuple[str, aio_pika.abc.AbstractQueue], make_proxy: ProxyFactory
) -> None:
    exchange, queue = bound
    proxy = await make_proxy(RABBITMQ)
    url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/"
    sink = RabbitMqSink(settings(url, exchange, timeout=1.0))
    events = make_events(20, rooms=2)
    try:
        for event in events[:8]:
            await sink.publish(*event)
        proxy.cut()
        for _attempt in range(2):
            with pytest.raises(DeliveryError) as caught:
                await sink.publish(*events[8])
            assert caught.value.retryable
            assert "guest:guest" not in caught.value.detail
        proxy.restore()
        for event in events[8:]:
            await publish_until_delivered(sink, event)
        assert sink.is_ready()
    finally:
        await sink.close()
    ids = [message.message_id or "" for message in await drain(queue)]
    assert sorted(set(ids)) == sorted(envelope["id"] for envelope, _ in events)
    room_of = {envelope["id"]: envelope["roomid"] for envelope, _ in events}
    by_room: dict[str, list[str]] = {}
    for event_id in first_seen(ids):
        by_room.setdefault(room_of[event_id], []).append(event_id)
    assert by_room == ids_by_room(events)


async def test_broker_down_at_start_is_not_fatal_and_secrets_stay_out() -> None:
    url = f"amqp://user:s3cret-pass@127.0.0.1:{free_port()}/"
    sink = RabbitMqSink(settings(url, "never", timeout=1.0))
    await sink.start()
    assert not sink.is_ready()
    with pytest.raises(DeliveryError) as caught:
        await sink.publish(*make_event("room-1", 1))
    await sink.close()
    assert caught.value.retryable
    assert "s3cret-pass" not in caught.value.detail
    assert "s3cret-pass" not in repr(sink)


ROOM = "直播间 1"  # percent-encoded in ce- headers


def expected_body(envelope: dict[str, Any], payload: str) -> Any:
    return envelope["data"]["message"] if payload == "message" else envelope["data"]


@pytest.mark.parametrize("payload", ["data", "message"])
async def test_binary_mode_sends_the_data_with_ce_headers(
    rabbitmq_url: str, bound: tuple[str, aio_pika.abc.AbstractQueue], payload: str
) -> None:
    exchange, queue = bound
    sink = RabbitMqSink(settings(rabbitmq_url, exchange).model_copy(update={"payload": payload}))
    envelope, body = binary_event(ROOM, 1)
    try:
        await sink.publish(envelope, body)
    finally:
        await sink.close()
    [message] = await drain(queue)
    assert message.message_id == envelope["id"]
    expected = expected_body(envelope, payload)
    read_rabbitmq_binary(message.content_type, message.headers, message.body, envelope, expected)

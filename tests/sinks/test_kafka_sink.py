"""KafkaSink against a Tansu broker (Kafka protocol) started for the test run."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from receiver.sink_settings import KafkaSinkSettings
from receiver.sinks.base import DeliveryError
from receiver.sinks.factory import build_sink
from receiver.sinks.kafka import KafkaSink
from tests.brokers import (
    Tansu,
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
    read_kafka,
    read_kafka_binary,
    traced_event,
)


def settings(bootstrap: str, topic: str, timeout: float = 10.0) -> KafkaSinkSettings:
    return KafkaSinkSettings(
        name="kafka",
        type="kafka",
        bootstrap_servers=bootstrap,
        topic=topic,
        timeout_seconds=timeout,
    )


async def create_topic(bootstrap: str, topic: str, partitions: int = 3) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, replication_factor=1)])
    finally:
        await admin.close()


async def consume(bootstrap: str, topic: str, expected: int) -> list[Any]:
    """Records of ``topic`` from the start, until ``expected`` arrived (or 15 s passed)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[Any] = []
    try:
        for _round in range(30):
            batches = await consumer.getmany(timeout_ms=500)
            for batch in batches.values():
                records.extend(batch)
            if len(records) >= expected:
                # one more round, so duplicates beyond ``expected`` are seen too
                for batch in (await consumer.getmany(timeout_ms=300)).values():
                    records.extend(batch)
                break
    finally:
        await consumer.stop()
    return records


def room_order(records: list[Any]) -> dict[str, list[str]]:
    """Event ids per room key in partition order, duplicates dropped."""
    rooms: dict[str, list[str]] = {}
    for record in records:
        rooms.setdefault(record.key.decode(), []).append(orjson.loads(record.value)["id"])
    return {room: first_seen(ids) for room, ids in rooms.items()}


async def test_produces_every_event_keyed_by_room_in_order(tansu: Tansu) -> None:
    topic = unique("test.")
    await create_topic(tansu.bootstrap, topic)
    sink = build_sink(settings(tansu.bootstrap, topic))
    events = make_events(50, rooms=3)
    await sink.start()
    try:
        assert sink.is_ready()
        await publish_per_room(sink, events)
    finally:
        await sink.close()

    records = await consume(tansu.bootstrap, topic, 50)
    assert len(records) == 50
    sent = {envelope["id"]: (envelope, body) for envelope, body in events}
    partitions: dict[str, set[int]] = {}
    for record in records:
        envelope, body = sent[orjson.loads(record.value)["id"]]
        assert record.value == body
        assert orjson.loads(record.value) == envelope
        assert record.key == envelope["roomid"].encode()
        check_structured_headers({name: value.decode() for name, value in record.headers})
        partitions.setdefault(envelope["roomid"], set()).add(record.partition)
    assert all(len(used) == 1 for used in partitions.values())  # one partition per room
    assert room_order(records) == ids_by_room(events)


async def test_a_cloudevents_sdk_reads_the_record_in_structured_mode(tansu: Tansu) -> None:
    topic = unique("test.")
    await create_topic(tansu.bootstrap, topic, partitions=1)
    sink = KafkaSink(settings(tansu.bootstrap, topic))
    envelope, body = traced_event("room-1", 1)
    try:
        await sink.publish(envelope, body)
    finally:
        await sink.close()
    [record] = await consume(tansu.bootstrap, topic, 1)
    read_kafka(dict(record.headers), record.key, record.value, envelope)


async def test_invalid_topic_name_is_not_retryable(tansu: Tansu) -> None:
    sink = KafkaSink(settings(tansu.bootstrap, "bad topic {room_id}"))
    try:
        with pytest.raises(DeliveryError) as caught:
            await sink.publish(*make_event("room-1", 1))
    finally:
        await sink.close()
    assert not caught.value.retryable


async def test_broker_down_at_start_is_not_fatal() -> None:
    sink = KafkaSink(settings(f"127.0.0.1:{free_port()}", "never", timeout=1.0))
    await sink.start()
    assert not sink.is_ready()
    with pytest.raises(DeliveryError) as caught:
        await sink.publish(*make_event("room-1", 1))
    await sink.close()
    assert caught.value.retryable


async def test_connection_cut_loses_nothing_and_duplicates_carry_the_same_id(
    tmp_path: Path, make_proxy: ProxyFactory
) -> None:
    broker_port = free_port()
    proxy = await make_proxy(("127.0.0.1", broker_port))
    # The broker advertises the proxy, so every client connection goes through it.
    broker = Tansu(tmp_path, port=broker_port, advertised_port=proxy.port)
    await asyncio.to_thread(broker.start)
    topic = unique("test.")
    sink = KafkaSink(settings(broker.bootstrap, topic, timeout=2.0))
    events = make_events(20, rooms=2)
    try:
        await create_topic(broker.bootstrap, topic)
        for event in events[:8]:
            await sink.publish(*event)
        proxy.cut()
        with pytest.raises(DeliveryError) as caught:
            await sink.publish(*events[8])
        assert caught.value.retryable
        proxy.restore()
        for event in events[8:]:
            await publish_until_delivered(sink, event)
        assert sink.is_ready()
        await sink.close()
        records = await consume(broker.bootstrap, topic, 20)
    finally:
        await sink.close()
        await asyncio.to_thread(broker.stop)
    ids = [orjson.loads(record.value)["id"] for record in records]
    assert sorted(set(ids)) == sorted(envelope["id"] for envelope, _ in events)
    assert room_order(records) == ids_by_room(events)


ROOM = "直播间 1"  # percent-encoded in ce- headers


def expected_body(envelope: dict[str, Any], payload: str) -> Any:
    return envelope["data"]["message"] if payload == "message" else envelope["data"]


@pytest.mark.parametrize("payload", ["data", "message"])
async def test_binary_mode_sends_the_data_with_ce_headers(tansu: Tansu, payload: str) -> None:
    topic = unique("test.")
    await create_topic(tansu.bootstrap, topic, partitions=1)
    sink = KafkaSink(settings(tansu.bootstrap, topic).model_copy(update={"payload": payload}))
    envelope, body = binary_event(ROOM, 1)
    try:
        await sink.publish(envelope, body)
    finally:
        await sink.close()
    [record] = await consume(tansu.bootstrap, topic, 1)
    assert record.key == ROOM.encode()
    expected = expected_body(envelope, payload)
    read_kafka_binary(dict(record.headers), record.key, record.value, envelope, expected)

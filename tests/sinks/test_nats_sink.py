"""NatsSink against the local NATS JetStream server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import nats
import nats.js.errors
import orjson
import pytest
from nats.aio.client import Client

from receiver.sink_settings import NatsSinkSettings
from receiver.sinks.base import DeliveryError, InvalidDestination
from receiver.sinks.factory import build_sink
from receiver.sinks.nats import NatsSink, check_subject, subject_pattern
from tests.brokers import (
    NATS,
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
    read_http,
    read_http_binary,
    traced_event,
)


def settings(url: str, prefix: str, stream: str = "", timeout: float = 5.0) -> NatsSinkSettings:
    return NatsSinkSettings(
        name="nats",
        type="nats",
        url=url,
        subject=prefix + ".{event_type}.{room_id}",
        stream=stream,
        timeout_seconds=timeout,
    )


@pytest.fixture
async def client(nats_url: str) -> AsyncIterator[Client]:
    connection = await nats.connect(nats_url)
    yield connection
    await connection.close()


@pytest.fixture
async def stream(client: Client) -> AsyncIterator[tuple[str, str]]:
    """A stream name and subject prefix unique to the test; the stream is deleted after."""
    name, prefix = unique("TEST_"), unique("test")
    yield name, prefix
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await client.jetstream().delete_stream(name)


async def stored(client: Client, stream: str) -> list[Any]:
    """Every message of ``stream``, in stream order."""
    js = client.jetstream()
    info = await js.stream_info(stream)
    return [await js.get_msg(stream, seq) for seq in range(1, info.state.messages + 1)]


async def test_publishes_every_event_in_room_order_with_headers(
    nats_url: str, client: Client, stream: tuple[str, str]
) -> None:
    name, prefix = stream
    sink = build_sink(settings(nats_url, prefix, stream=name))
    assert isinstance(sink, NatsSink)
    events = make_events(50, rooms=3)
    await sink.start()
    try:
        assert sink.is_ready()
        await publish_per_room(sink, events)
    finally:
        await sink.close()

    info = await client.jetstream().stream_info(name)
    assert info.config.subjects == [f"{prefix}.>"]
    messages = await stored(client, name)
    assert len(messages) == 50
    sent = {envelope["id"]: (envelope, body) for envelope, body in events}
    received_by_room: dict[str, list[str]] = {}
    for message in messages:
        envelope, body = sent[message.headers["Nats-Msg-Id"]]
        assert message.data == body
        assert orjson.loads(message.data) == envelope
        assert message.subject == f"{prefix}.REPLY_COMMAND_FINISH.{envelope['roomid']}"
        check_structured_headers(message.headers)
        received_by_room.setdefault(envelope["roomid"], []).append(envelope["id"])
    assert received_by_room == ids_by_room(events)


async def test_a_cloudevents_sdk_reads_the_message_in_structured_mode(
    nats_url: str, client: Client, stream: tuple[str, str]
) -> None:
    name, prefix = stream
    sink = NatsSink(settings(nats_url, prefix, stream=name))
    envelope, body = traced_event("room-1", 1)
    try:
        await sink.publish(envelope, body)
    finally:
        await sink.close()
    [message] = await stored(client, name)
    read_http(message.headers, message.data, envelope)


async def test_same_event_id_is_stored_once(
    nats_url: str, client: Client, stream: tuple[str, str]
) -> None:
    name, prefix = stream
    sink = NatsSink(settings(nats_url, prefix, stream=name))
    event = make_event("room-1", 1)
    try:
        await sink.publish(*event)
        await sink.publish(*event)
    finally:
        await sink.close()
    messages = await stored(client, name)
    assert [m.headers["Nats-Msg-Id"] for m in messages] == [event[0]["id"]]


async def test_uses_an_existing_stream_and_fails_retryably_without_one(
    nats_url: str, client: Client, stream: tuple[str, str]
) -> None:
    name, prefix = stream
    sink = NatsSink(settings(nats_url, prefix, timeout=1.0))
    try:
        with pytest.raises(DeliveryError) as caught:
            await sink.publish(*make_event("room-1", 1))
        assert caught.value.retryable
        await client.jetstream().add_stream(name=name, subjects=[f"{prefix}.>"])
        await sink.publish(*make_event("room-1", 2))
    finally:
        await sink.close()
    assert len(await stored(client, name)) == 1


async def test_connection_cut_loses_nothing_and_duplicates_are_absorbed(
    nats_url: str, client: Client, stream: tuple[str, str], make_proxy: ProxyFactory
) -> None:
    name, prefix = stream
    proxy = await make_proxy(NATS)
    sink = NatsSink(settings(f"nats://127.0.0.1:{proxy.port}", prefix, stream=name, timeout=1.0))
    events = make_events(20, rooms=2)
    try:
        for event in events[:8]:
            await sink.publish(*event)
        proxy.cut()
        for _attempt in range(3):  # a lane retries its event; it does not move on
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
    ids = [m.headers["Nats-Msg-Id"] for m in await stored(client, name)]
    assert sorted(ids) == sorted(envelope["id"] for envelope, _ in events)  # once each
    by_room: dict[str, list[str]] = {}
    room_of = {envelope["id"]: envelope["roomid"] for envelope, _ in events}
    for event_id in ids:
        by_room.setdefault(room_of[event_id], []).append(event_id)
    assert by_room == ids_by_room(events)


async def test_broker_down_at_start_is_not_fatal_and_secrets_stay_out() -> None:
    url = f"nats://user:s3cret-pass@127.0.0.1:{free_port()}"
    sink = NatsSink(settings(url, "never", stream="NEVER", timeout=1.0))
    await sink.start()  # must not raise
    assert not sink.is_ready()
    with pytest.raises(DeliveryError) as caught:
        await sink.publish(*make_event("room-1", 1))
    # concurrent lanes queued behind one failing connect all fail with it
    outcomes = await asyncio.gather(
        *(sink.publish(*make_event(f"room-{i}", i)) for i in range(5)), return_exceptions=True
    )
    await sink.close()
    assert caught.value.retryable
    assert "s3cret-pass" not in caught.value.detail
    assert "s3cret-pass" not in repr(sink)
    assert all(isinstance(outcome, DeliveryError) and outcome.retryable for outcome in outcomes)


def test_subject_pattern_covers_the_template() -> None:
    assert subject_pattern("metastudio.live.{event_type}.{room_id}") == "metastudio.live.>"
    assert subject_pattern("a.b-{room_id}.c") == "a.>"
    assert subject_pattern("fixed.subject") == "fixed.subject"


@pytest.mark.parametrize("subject", ["a..b", "a.b c", "a.*", "a.>", "", "a.b\x00c"])
def test_unpublishable_subject_is_an_invalid_destination(subject: str) -> None:
    with pytest.raises(InvalidDestination) as caught:
        check_subject(subject)
    assert not caught.value.retryable


async def test_stream_deleted_while_running_is_created_again(
    nats_url: str, client: Client, stream: tuple[str, str]
) -> None:
    name, prefix = stream
    sink = NatsSink(settings(nats_url, prefix, stream=name, timeout=1.0))
    try:
        await sink.publish(*make_event("room-1", 1))
        await client.jetstream().delete_stream(name)
        with pytest.raises(DeliveryError) as caught:
            await sink.publish(*make_event("room-1", 2))
        assert caught.value.retryable
        await sink.publish(*make_event("room-1", 3))
    finally:
        await sink.close()
    [message] = await stored(client, name)
    assert orjson.loads(message.data)["data"]["message"]["seq"] == 3


ROOM = "直播间 1"  # percent-encoded in ce- headers


def expected_body(envelope: dict[str, Any], payload: str) -> Any:
    return envelope["data"]["message"] if payload == "message" else envelope["data"]


@pytest.mark.parametrize("payload", ["data", "message"])
async def test_binary_mode_sends_the_data_with_ce_headers(
    nats_url: str, client: Client, stream: tuple[str, str], payload: str
) -> None:
    name, prefix = stream
    sink = NatsSink(settings(nats_url, prefix, stream=name).model_copy(update={"payload": payload}))
    envelope, body = binary_event(ROOM, 1)
    try:
        await sink.publish(envelope, body)
    finally:
        await sink.close()
    [message] = await stored(client, name)
    assert message.headers["Nats-Msg-Id"] == envelope["id"]
    headers = {k: v for k, v in message.headers.items() if k != "Nats-Msg-Id"}
    read_http_binary(headers, message.data, envelope, expected_body(envelope, payload))

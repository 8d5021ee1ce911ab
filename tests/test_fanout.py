"""One signed callback reaches NATS, RabbitMQ, Redis and Kafka consumers as the same envelope."""

import asyncio
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import nats
import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer

from receiver.app import ReceiverApp
from receiver.config import load_settings
from tests.brokers import NATS, RABBITMQ, REDIS, Tansu, require_service, unique
from tests.helpers import callback_body, signed_headers

EXAMPLE = Path(__file__).parent.parent / "examples" / "brokers.toml"
URL = "http://127.0.0.1:8080/callbacks/metastudio"


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Any:
    broker = Tansu(tmp_path_factory.mktemp("tansu")).start()
    yield broker
    broker.stop()


async def test_one_callback_reaches_every_broker_as_the_same_envelope(
    tmp_path: Path, kafka: Tansu, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, address in (("NATS", NATS), ("RabbitMQ", RABBITMQ), ("Redis", REDIS)):
        require_service(name, address)
    names = {
        key: unique(f"fanout-{key}-") for key in ("stream", "exchange", "redis", "topic", "subject")
    }
    text = EXAMPLE.read_text()
    for old, new in (
        ('"METASTUDIO_LIVE"', f'"{names["stream"].upper().replace("-", "_")}"'),
        (
            '"metastudio.live.{event_type}.{room_id}"',
            f'"{names["subject"]}.{{event_type}}.{{room_id}}"',
        ),
        ('exchange = "metastudio"', f'exchange = "{names["exchange"]}"'),
        ('"metastudio:live"', f'"{names["redis"]}"'),
        ('"127.0.0.1:9092"', f'"{kafka.bootstrap}"'),
        ('topic = "metastudio.live"', f'topic = "{names["topic"]}"'),
        ('"data/brokers/', f'"{tmp_path}/'),
    ):
        assert old in text
        text = text.replace(old, new)
    config = tmp_path / "brokers.toml"
    config.write_text(text)
    app = ReceiverApp(load_settings(config))

    connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
    channel = await connection.channel()
    exchange = await channel.declare_exchange(
        names["exchange"], aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, "#")

    await app.service.start()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8080"
        ) as http:
            body = callback_body("SHOOT_SCRIPT_SWITCH", "room-7", shoot_script_sequence_no="3")
            response = await http.post(
                "/callbacks/metastudio",
                content=body,
                headers=signed_headers(URL, "broker-example-key"),
            )
        assert response.status_code == 200
        event_id = response.json()["id"]
        async with asyncio.timeout(30):
            while app.service.intake.depth():
                await asyncio.sleep(0.05)
    finally:
        await app.service.stop()

    received: dict[str, dict[str, Any]] = {}
    client = await nats.connect("nats://127.0.0.1:4222")
    stream = names["stream"].upper().replace("-", "_")
    message = await client.jetstream().get_msg(stream, 1)
    assert message.headers and message.headers["Nats-Msg-Id"] == event_id
    assert message.subject == f"{names['subject']}.SHOOT_SCRIPT_SWITCH.room-7"
    received["nats"] = orjson.loads(message.data)
    await client.jetstream().delete_stream(stream)
    await client.close()

    incoming = await queue.get(no_ack=True, timeout=5)
    assert (
        incoming.message_id == event_id
        and incoming.routing_key == "live.SHOOT_SCRIPT_SWITCH.room-7"
    )
    received["rabbitmq"] = orjson.loads(incoming.body)
    await exchange.delete()
    await connection.close()

    redis = aioredis.from_url("redis://127.0.0.1:6379/0")
    ((_entry, fields),) = await redis.xrange(names["redis"])
    assert fields[b"id"].decode() == event_id
    received["redis"] = orjson.loads(fields[b"data"])
    await redis.delete(names["redis"])
    await redis.aclose()

    consumer = AIOKafkaConsumer(
        names["topic"], bootstrap_servers=kafka.bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 15)
    finally:
        await consumer.stop()
    assert record.key == b"room-7"
    received["kafka"] = orjson.loads(record.value)

    envelopes = list(received.values())
    assert all(envelope == envelopes[0] for envelope in envelopes), received
    assert envelopes[0]["id"] == event_id and envelopes[0]["subject"] == "room-7"


async def test_readyz_reflects_a_critical_sink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "r.toml"
    config.write_text(f"""
[server]
public_url = "http://127.0.0.1:8080/callbacks/metastudio"
[auth]
type = "MSS_A_HEAD"
keys = ["k"]
[intake]
path = "{tmp_path / "i.db"}"
[dead_letters]
path = "{tmp_path / "d.db"}"
[[sinks]]
name = "down"
type = "nats"
url = "nats://127.0.0.1:9"
critical = true
[[routes]]
sinks = ["down"]
""")
    app = ReceiverApp(load_settings(config))
    await app.service.start()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"] == {"intake": True, "sink:down": False}
            assert (await http.get("/livez")).status_code == 200
    finally:
        await app.service.stop()

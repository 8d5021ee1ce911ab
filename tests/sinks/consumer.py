"""How a consumer's CloudEvents SDK (the ``cloudevents`` package) reads what a sink sent.

Both of the package's APIs are used: ``cloudevents.v1`` (the 1.x API, ``cloudevents.http``
and ``cloudevents.kafka`` before 2.0) and the bindings of ``cloudevents.core``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from cloudevents.core.bindings import http as core_http
from cloudevents.core.bindings import kafka as core_kafka
from cloudevents.core.bindings import rabbitmq as core_rabbitmq
from cloudevents.core.formats.json import JSONFormat

from receiver.envelope import MEDIA_TYPE
from tests.brokers import Event, make_event

with warnings.catch_warnings():  # the 1.x API is deprecated in 2.x, still what many run
    warnings.simplefilter("ignore", DeprecationWarning)
    from cloudevents.v1 import kafka as v1_kafka
    from cloudevents.v1.http import from_http as v1_from_http
    from cloudevents.v1.http import from_json as v1_from_json

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
EXTENSIONS = ("roomid", "jobid", "knowntype", "traceparent")


def traced_event(room: str, seq: int) -> Event:
    """An envelope carrying every extension attribute the receiver may set."""
    envelope, _body = make_event(room, seq)
    envelope["traceparent"] = TRACEPARENT
    return envelope, orjson.dumps(envelope)


def check_structured_headers(headers: Mapping[str, str]) -> None:
    """Structured content mode: the JSON event format's media type, no ``ce-``/``ce_`` header.

    SDKs take any ``ce-`` header for binary mode, which reads the whole envelope as ``data``.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    assert lowered.get("content-type") == MEDIA_TYPE
    assert not [name for name in lowered if name.startswith(("ce-", "ce_"))]


def check_event(attributes: Mapping[str, Any], data: Any, envelope: Mapping[str, Any]) -> None:
    """The SDK's event has the envelope's attributes (extensions too) and its ``data``."""
    assert data == envelope["data"]
    for name in ("id", "source", "type", "subject", "specversion", *EXTENSIONS):
        assert attributes[name] == envelope[name], name


def read_http(headers: Mapping[str, str], body: bytes, envelope: Mapping[str, Any]) -> None:
    """Read an HTTP request (or a NATS message, whose headers work the same) with both APIs."""
    check_structured_headers(headers)
    old = v1_from_http(dict(headers), body)
    check_event(old.get_attributes(), old.get_data(), envelope)
    assert old["datacontenttype"] == "application/json"
    new = core_http.from_http(core_http.HTTPMessage(dict(headers), body), JSONFormat())
    check_event(new.get_attributes(), new.get_data(), envelope)
    assert new.get_datacontenttype() == "application/json"


def read_json(document: bytes, envelope: Mapping[str, Any]) -> None:
    """Read a structured JSON document on its own (a Redis entry's ``data`` field)."""
    old = v1_from_json(document)
    check_event(old.get_attributes(), old.get_data(), envelope)
    new = JSONFormat().read(None, document)
    check_event(new.get_attributes(), new.get_data(), envelope)
    assert new.get_datacontenttype() == "application/json"


def read_rabbitmq(
    content_type: str | None, headers: Mapping[str, Any], body: bytes, envelope: Mapping[str, Any]
) -> None:
    """Read an AMQP message: content type property, application headers, body."""
    check_structured_headers({**headers, "content-type": content_type or ""})
    old = v1_from_http({"content-type": content_type or "", **headers}, body)
    check_event(old.get_attributes(), old.get_data(), envelope)
    message = core_rabbitmq.RabbitMQMessage(dict(headers), content_type, body)
    new = core_rabbitmq.from_rabbitmq(message, JSONFormat())
    check_event(new.get_attributes(), new.get_data(), envelope)
    assert new.get_datacontenttype() == "application/json"


def read_kafka(
    headers: Mapping[str, bytes], key: bytes | None, value: bytes, envelope: Mapping[str, Any]
) -> None:
    """Read a Kafka record with both APIs; the key becomes the ``partitionkey`` extension."""
    check_structured_headers({name: raw.decode() for name, raw in headers.items()})
    # The 1.x API also takes the content-type header for ``datacontenttype``: not checked.
    old = v1_kafka.from_structured(v1_kafka.KafkaMessage(dict(headers), key, value))
    check_event(old.get_attributes(), old.get_data(), envelope)
    assert old["partitionkey"] == key
    message = core_kafka.KafkaMessage(dict(headers), key, value)
    new = core_kafka.from_kafka(message, JSONFormat())
    check_event(new.get_attributes(), new.get_data(), envelope)
    assert new.get_datacontenttype() == "application/json"
    assert new.get_attributes()["partitionkey"] == (key.decode() if key else None)


def binary_event(room: str, seq: int) -> Event:
    """A traced envelope whose room id (and so ``subject``) needs percent-encoding."""
    return traced_event(room, seq)


def check_binary_event(
    attributes: Mapping[str, Any], data: Any, envelope: Mapping[str, Any], expected: Any
) -> None:
    """Binary mode: the body is ``expected`` (data or message), the attributes as text."""
    assert data == expected
    for name in ("id", "source", "type", "subject", "specversion", *EXTENSIONS):
        value = envelope[name]
        text = ("true" if value else "false") if isinstance(value, bool) else value
        assert attributes[name] == text, name
    assert attributes["datacontenttype"] == "application/json"
    when = datetime.fromisoformat(str(envelope["time"]).replace("Z", "+00:00"))
    assert attributes["time"] == when


def check_binary_headers(headers: Mapping[str, str], prefix: str) -> None:
    """Binary mode: ``application/json``, the attributes under ``prefix``, no data type one."""
    lowered = {name.lower(): value for name, value in headers.items()}
    assert lowered.get("content-type") == "application/json"
    assert f"{prefix}id" in lowered and f"{prefix}specversion" in lowered
    assert f"{prefix}datacontenttype" not in lowered and f"{prefix}data" not in lowered


def read_http_binary(
    headers: Mapping[str, str], body: bytes, envelope: Mapping[str, Any], expected: Any
) -> None:
    """Read a binary-mode HTTP request (or NATS message) with the SDK's HTTP binding."""
    check_binary_headers(headers, "ce-")
    assert all(value.isascii() for value in headers.values())  # percent-encoded
    new = core_http.from_http(core_http.HTTPMessage(dict(headers), body), JSONFormat())
    check_binary_event(new.get_attributes(), new.get_data(), envelope, expected)


def read_rabbitmq_binary(
    content_type: str | None,
    headers: Mapping[str, Any],
    body: bytes,
    envelope: Mapping[str, Any],
    expected: Any,
) -> None:
    """Read a binary-mode AMQP message with the SDK's RabbitMQ binding."""
    check_binary_headers({**headers, "content-type": content_type or ""}, "ce-")
    message = core_rabbitmq.RabbitMQMessage(dict(headers), content_type, body)
    new = core_rabbitmq.from_rabbitmq(message, JSONFormat())
    check_binary_event(new.get_attributes(), new.get_data(), envelope, expected)


def read_kafka_binary(
    headers: Mapping[str, bytes],
    key: bytes | None,
    value: bytes,
    envelope: Mapping[str, Any],
    expected: Any,
) -> None:
    """Read a binary-mode Kafka record with both APIs."""
    check_binary_headers({name: raw.decode() for name, raw in headers.items()}, "ce_")
    old = v1_kafka.from_binary(v1_kafka.KafkaMessage(dict(headers), key, value))
    assert old.get_data() == expected and old["id"] == envelope["id"]
    assert old["subject"] == envelope["subject"]
    message = core_kafka.KafkaMessage(dict(headers), key, value)
    new = core_kafka.from_kafka(message, JSONFormat())
    check_binary_event(new.get_attributes(), new.get_data(), envelope, expected)

"""What the AsyncAPI document says of each sink: its server, its channel and its headers.

Only host, port and path of a sink's URL appear: user information and query strings (which
may hold credentials) never do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from receiver.envelope import MEDIA_TYPE
from receiver.sink_settings import (
    HttpSinkSettings,
    KafkaSinkSettings,
    NatsSinkSettings,
    RabbitMqSinkSettings,
    RedisSinkSettings,
    SinkSettings,
)
from receiver.sinks.payload import HTTP, KAFKA, NATS, RABBITMQ, REDIS, Binding

ATTRIBUTES = (
    "specversion", "id", "source", "type", "subject", "time", "roomid", "jobid", "knowntype",
    "traceparent",
)  # fmt: skip


@dataclass
class SinkChannel:
    """One sink as AsyncAPI sees it."""

    protocol: str
    host: str
    pathname: str
    address: str
    binding: Binding
    channel_bindings: dict[str, Any] = field(default_factory=dict)
    operation_bindings: dict[str, Any] = field(default_factory=dict)
    # Headers every message carries, besides the content type and binary-mode attributes.
    headers: dict[str, Any] = field(default_factory=dict)
    key: bool = False  # Kafka: the record key is the room id


def _host(url: str, default_port: int) -> tuple[str, str]:
    """``host:port`` and path of ``url``, without user information or query."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "localhost", parts.port or default_port
    except ValueError:
        return "unparsable", ""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}", parts.path


def _text(description: str) -> dict[str, Any]:
    return {"type": "string", "description": description}


def sink_channel(sink: SinkSettings) -> SinkChannel | None:
    """The channel of a broker or HTTP sink; None for jsonl and stdout (no network peer)."""
    if isinstance(sink, NatsSinkSettings):
        host, _ = _host(sink.url, 4222)
        return SinkChannel(
            "nats", host, "", sink.subject, NATS,
            headers={"Nats-Msg-Id": _text("the event id (JetStream drops a repeat)")},
        )  # fmt: skip
    if isinstance(sink, RabbitMqSinkSettings):
        url = sink.url.get_secret_value()
        host, path = _host(url, 5672)
        vhost = path[1:] or "/"
        exchange = {
            "name": sink.exchange, "type": sink.exchange_type, "durable": True,
            "autoDelete": False, "vhost": vhost,
        }  # fmt: skip
        return SinkChannel(
            "amqp", host, "", sink.routing_key, RABBITMQ,
            channel_bindings={
                "amqp": {"is": "routingKey", "exchange": exchange, "bindingVersion": "0.3.0"}
            },
            operation_bindings={
                "amqp": {"deliveryMode": 2, "mandatory": True, "bindingVersion": "0.3.0"}
            },
        )  # fmt: skip
    if isinstance(sink, RedisSinkSettings):
        host, _ = _host(sink.url.get_secret_value(), 6379)
        return SinkChannel(
            "redis", host, "", sink.stream, REDIS,
            headers={
                "id": _text("entry field: the event id"),
                "type": _text("entry field: the CloudEvents type"),
                "room_id": _text("entry field: the room id"),
            },
        )  # fmt: skip
    if isinstance(sink, KafkaSinkSettings):
        first = sink.bootstrap_servers.split(",")[0].strip()
        return SinkChannel(
            "kafka", first, "", sink.topic, KAFKA,
            channel_bindings={"kafka": {"topic": sink.topic, "bindingVersion": "0.5.0"}},
            key=True,
        )  # fmt: skip
    if isinstance(sink, HttpSinkSettings):
        host, path = _host(sink.url, 443 if sink.url.startswith("https:") else 80)
        scheme = "https" if sink.url.startswith("https:") else "http"
        headers = {
            "webhook-id": _text("Standard Webhooks: the event id"),
            "webhook-timestamp": _text("Standard Webhooks: Unix seconds of the attempt"),
        }
        if sink.secret is not None:
            headers["webhook-signature"] = _text("Standard Webhooks: v1,<base64 HMAC-SHA256>")
        return SinkChannel(
            scheme, host, "", path or "/", HTTP,
            operation_bindings={"http": {"method": "POST", "bindingVersion": "0.3.0"}},
            headers=headers,
        )  # fmt: skip
    return None


def message_headers(channel: SinkChannel, binary: bool) -> dict[str, Any]:
    """The schema of a message's headers on ``channel`` (structured or binary mode)."""
    properties: dict[str, Any] = dict(channel.headers)
    content_type = "content_type" if channel.protocol == "redis" else "content-type"
    if channel.protocol != "amqp":  # AMQP carries it as the content_type property
        media = "application/json" if binary else MEDIA_TYPE
        if channel.protocol != "redis" or binary:
            properties[content_type] = {"type": "string", "const": media}
    if binary:
        encoded = " (percent-encoded)" if channel.binding.percent_encoded else ""
        for name in ATTRIBUTES:
            when = " when tracing is on" if name == "traceparent" else ""
            properties[channel.binding.prefix + name] = _text(
                f"CloudEvents attribute {name}{encoded}{when}"
            )
    return {"type": "object", "properties": properties}

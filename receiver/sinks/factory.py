"""Build a sink from its settings; broker clients are imported only when used."""

from __future__ import annotations

import importlib

from receiver.sink_settings import SinkSettings
from receiver.sinks.base import Sink

_ADAPTERS = {
    "jsonl": ("receiver.sinks.jsonl", "JsonlSink", None),
    "stdout": ("receiver.sinks.stdout", "StdoutSink", None),
    "http": ("receiver.sinks.http", "HttpSink", None),
    "nats": ("receiver.sinks.nats", "NatsSink", "nats"),
    "rabbitmq": ("receiver.sinks.rabbitmq", "RabbitMqSink", "rabbitmq"),
    "redis": ("receiver.sinks.redis", "RedisSink", "redis"),
    "kafka": ("receiver.sinks.kafka", "KafkaSink", "kafka"),
}


class MissingExtra(RuntimeError):
    """A sink type needs an optional dependency that is not installed."""


def build_sink(settings: SinkSettings) -> Sink:
    """The sink adapter for ``settings.type``, constructed from its settings."""
    module_name, class_name, extra = _ADAPTERS[settings.type]
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        hint = f"pip install 'receiver[{extra}]'" if extra else "reinstall the package"
        raise MissingExtra(f"sinks.{settings.name}: {error}; {hint}") from None
    sink: Sink = getattr(module, class_name)(settings)
    return sink

"""Settings of each sink type: one ``[[sinks]]`` table each, told apart by ``type``.

Fields that name a destination (``subject``, ``routing_key``, ``stream``, ``topic``, ``path``)
accept a template over the envelope: ``{event_type}``, ``{room_id}``, ``{job_id}``,
``{state}``, ``{id}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class BaseSinkSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    critical: bool = False
    max_attempts: int | None = Field(None, ge=1)
    max_age_seconds: float | None = Field(None, gt=0)


class JsonlSinkSettings(BaseSinkSettings):
    type: Literal["jsonl"]
    path: Path
    fsync: bool = True


class StdoutSinkSettings(BaseSinkSettings):
    type: Literal["stdout"]


class NatsSinkSettings(BaseSinkSettings):
    type: Literal["nats"]
    url: str = "nats://127.0.0.1:4222"
    subject: str = "metastudio.live.{event_type}.{room_id}"
    stream: str = ""
    timeout_seconds: float = Field(5.0, gt=0)


class RabbitMqSinkSettings(BaseSinkSettings):
    type: Literal["rabbitmq"]
    url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    exchange: str = "metastudio"
    exchange_type: Literal["topic", "direct", "fanout", "headers"] = "topic"
    declare_exchange: bool = True
    routing_key: str = "{event_type}.{room_id}"
    timeout_seconds: float = Field(5.0, gt=0)


class RedisSinkSettings(BaseSinkSettings):
    type: Literal["redis"]
    url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    stream: str = "metastudio:live"
    maxlen: int | None = Field(100_000, ge=1)
    dedup_seconds: int | None = Field(600, ge=1)
    timeout_seconds: float = Field(5.0, gt=0)


class KafkaSinkSettings(BaseSinkSettings):
    type: Literal["kafka"]
    bootstrap_servers: str = "127.0.0.1:9092"
    topic: str = "metastudio.live"
    timeout_seconds: float = Field(10.0, gt=0)


class HttpSinkSettings(BaseSinkSettings):
    type: Literal["http"]
    url: str
    secret: SecretStr | None = None
    timeout_seconds: float = Field(5.0, gt=0)


SinkSettings = (
    JsonlSinkSettings
    | StdoutSinkSettings
    | NatsSinkSettings
    | RabbitMqSinkSettings
    | RedisSinkSettings
    | KafkaSinkSettings
    | HttpSinkSettings
)

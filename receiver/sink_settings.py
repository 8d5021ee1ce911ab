"""Settings of each sink type: one ``[[sinks]]`` table each, told apart by ``type``.

Fields that name a destination (``subject``, ``routing_key``, ``stream``, ``topic``, ``path``)
accept a template over the envelope: ``{event_type}``, ``{room_id}``, ``{job_id}``,
``{state}``, ``{id}``, ``{room_name}``, each value made safe first
(:func:`receiver.envelope.safe_value`); a template naming anything else is refused at
start-up. ``url`` and ``secret`` may be read from a mounted file: ``url_file``,
``secret_file``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from receiver.envelope import check_template
from receiver.secretfiles import read_secret

# Fields that may name a destination through a template over the envelope.
TEMPLATE_FIELDS = ("path", "subject", "routing_key", "stream", "topic")
# Secret fields that may instead be read from a mounted file: ``<field>_file``.
FILE_FIELDS = ("url", "secret")


class BaseSinkSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    critical: bool = False
    max_attempts: int | None = Field(None, ge=1)
    max_age_seconds: float | None = Field(None, gt=0)
    # The envelope (structured mode), or its data or message with the attributes in
    # headers (binary mode): see receiver.sinks.payload.
    payload: Literal["cloudevent", "data", "message"] = "cloudevent"

    @model_validator(mode="before")
    @classmethod
    def _secrets_from_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for field in FILE_FIELDS:
            path = data.pop(f"{field}_file", None)
            if path is not None:
                if field not in cls.model_fields:
                    raise ValueError(f"{field}_file: this sink type has no {field}")
                data[field] = read_secret(path)
        return data

    @model_validator(mode="after")
    def _binary_mode_needs_headers(self) -> BaseSinkSettings:
        kind = getattr(self, "type", "")
        if kind in ("jsonl", "stdout") and self.payload != "cloudevent":
            raise ValueError(
                f"payload {self.payload!r}: a {kind} sink has no headers to carry the "
                "CloudEvents attributes; it writes whole envelopes (payload = 'cloudevent')"
            )
        return self

    @model_validator(mode="after")
    def _templates_name_known_fields(self) -> BaseSinkSettings:
        for field in TEMPLATE_FIELDS:
            value = getattr(self, field, None)
            if isinstance(value, str | Path):
                check_template(str(value))
        return self


class JsonlSinkSettings(BaseSinkSettings):
    type: Literal["jsonl"]
    path: Path
    fsync: bool = True
    # Files held open at once when ``path`` is a template; the least recently written
    # beyond it are closed (and reopened when written again).
    max_open_files: int = Field(64, ge=1)


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

"""What a sink sends: the envelope (structured mode) or only its data (binary mode).

``payload = "cloudevent"`` (the default) sends the envelope as the body, content type
``application/cloudevents+json``: CloudEvents structured content mode. ``"data"`` sends the
enriched ``data`` only and ``"message"`` MetaStudio's decoded message only (for a job-state
event, which has no message, its data), as ``application/json``, with every other
CloudEvents attribute carried in the transport's headers: binary content mode, named as each
binding does (:data:`HTTP`, :data:`NATS`, :data:`KAFKA`, :data:`RABBITMQ`; Redis streams
have no binding and use entry fields like Kafka's headers).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import quote

import orjson

from receiver.envelope import MEDIA_TYPE

DATA_MEDIA_TYPE = "application/json"
# Printable ASCII but space, '"' and '%' stay as they are; the rest is percent-encoded
# as UTF-8 (HTTP binding 3.1.3.2, which the NATS binding adopts).
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')


class PayloadShape(StrEnum):
    """The ``payload`` setting of a sink."""

    CLOUDEVENT = "cloudevent"
    DATA = "data"
    MESSAGE = "message"


@dataclass(frozen=True, slots=True)
class Binding:
    """How a transport names (and encodes) the attributes of a binary-mode message."""

    prefix: str
    percent_encoded: bool

    def headers(self, attributes: dict[str, str]) -> dict[str, str]:
        """The attributes as this transport's headers (``datacontenttype`` is not among them:
        each transport carries it as its own content type)."""
        if self.percent_encoded:
            return {self.prefix + k: quote(v, safe=_HEADER_SAFE) for k, v in attributes.items()}
        return {self.prefix + name: value for name, value in attributes.items()}


HTTP = Binding("ce-", percent_encoded=True)
NATS = Binding("ce-", percent_encoded=True)
KAFKA = Binding("ce_", percent_encoded=False)
RABBITMQ = Binding("ce-", percent_encoded=False)  # as the CloudEvents SDK's RabbitMQ binding
REDIS = Binding("ce_", percent_encoded=False)


@dataclass(frozen=True, slots=True)
class Payload:
    """One event as a sink sends it: body, content type and (binary mode) attributes."""

    body: bytes
    content_type: str
    attributes: dict[str, str]

    @property
    def binary(self) -> bool:
        """Whether the attributes travel outside the body (binary content mode)."""
        return bool(self.attributes)


def _text(value: Any) -> str:
    """An attribute value in its canonical string form (CloudEvents type system)."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def shape_payload(shape: PayloadShape, envelope: dict[str, Any], body: bytes) -> Payload:
    """``envelope`` (``body`` is its JSON encoding) in the shape a sink is set to send."""
    if shape is PayloadShape.CLOUDEVENT:
        return Payload(body, MEDIA_TYPE, {})
    data = envelope["data"]
    if shape is PayloadShape.MESSAGE:
        data = data.get("message", data)
    attributes = {
        name: _text(value)
        for name, value in envelope.items()
        if name not in ("data", "datacontenttype") and value is not None
    }
    return Payload(orjson.dumps(data), DATA_MEDIA_TYPE, attributes)

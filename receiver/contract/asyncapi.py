"""The AsyncAPI 3.0 document of one deployment: what each sink publishes, and where.

A channel per sink (its destination template as the address, each ``{name}`` a parameter),
a ``send`` operation per channel, and per channel the messages its routes can give it: one
per event type, in the sink's payload shape (structured mode: the envelope's schema;
binary mode: the data's, with the CloudEvents attributes as headers).
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
from typing import Any

from receiver.config import Settings
from receiver.contract.bindings import SinkChannel, message_headers, sink_channel
from receiver.contract.schemas import component_schemas
from receiver.envelope import MEDIA_TYPE, TYPE_PREFIX, template_names
from receiver.reconcile.events import CLOUDEVENT_TYPE
from receiver.reconcile.events import EVENT_TYPE as JOB_STATE_CHANGED
from receiver.sinks.common import redact_url
from receiver.sinks.payload import DATA_MEDIA_TYPE, PayloadShape

REFS = "#/components/schemas/"
# The ``data.event_type`` of each schema; None: any type MetaStudio may add.
EVENT_TYPES: dict[str, str | None] = {
    "shoot-script-switch": "SHOOT_SCRIPT_SWITCH",
    "rtmp-stream-state-change": "RTMP_STREAM_STATE_CHANGE",
    "reply-command-finish": "REPLY_COMMAND_FINISH",
    "unknown-event": None,
    "job-state-changed": JOB_STATE_CHANGED,
}
PARAMETERS = {
    "event_type": "data.event_type (SHOOT_SCRIPT_SWITCH, RTMP_STREAM_STATE_CHANGE, ...)",
    "room_id": "the callback's room_id",
    "job_id": "the callback's job_id",
    "state": "the message's (or job's) state, or none",
    "id": "the event id",
    "room_name": "the enriched job's room name",
}
SAFE = (
    "Each value is made safe first: letters, digits, '-' and '_' kept, anything else '_', "
    "cut to 128 characters, a changed value suffixed with '-' and 8 hex digits of its SHA-256."
)


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-"))


def _kinds_routed(settings: Settings, sink: str) -> list[str]:
    """The schema names of the events the routes can send to ``sink``."""
    patterns = [p for r in settings.routes if sink in r.sinks for p in r.event_types]
    known = {t for t in EVENT_TYPES.values() if t is not None}
    kinds = []
    for kind, event_type in EVENT_TYPES.items():
        if event_type is None:  # a new type matches any pattern that is not a known name
            matched = any(p not in known for p in patterns)
        else:
            matched = any(fnmatch.fnmatchcase(event_type, p) for p in patterns)
        if matched:
            kinds.append(kind)
    return kinds


def _payload_ref(kind: str, shape: PayloadShape, definitions: dict[str, str]) -> dict[str, str]:
    envelope = definitions[kind]
    if shape is PayloadShape.CLOUDEVENT:
        return {"$ref": REFS + envelope}
    data = envelope.removesuffix("Envelope") + "Data"
    if kind == "job-state-changed":
        data = "JobStateChanged"
    elif shape is PayloadShape.MESSAGE and kind != "unknown-event":
        data = envelope.removesuffix("Envelope") + "Message"
    elif shape is PayloadShape.MESSAGE:
        return {"type": "object", "description": "the decoded message, keys unchecked"}
    return {"$ref": REFS + data}


def _message(
    kind: str, channel: SinkChannel, shape: PayloadShape, definitions: dict[str, str]
) -> dict[str, Any]:
    binary = shape is not PayloadShape.CLOUDEVENT
    event_type = EVENT_TYPES[kind]
    ce_type = (
        CLOUDEVENT_TYPE
        if event_type == JOB_STATE_CHANGED
        else TYPE_PREFIX + (event_type or "<new type>")
    )
    mode = "binary" if binary else "structured"
    message: dict[str, Any] = {
        "name": _camel(kind),
        "title": event_type or "an event type added after this release",
        "summary": f"CloudEvents type {ce_type}, {mode} content mode",
        "contentType": DATA_MEDIA_TYPE if binary else MEDIA_TYPE,
        "headers": message_headers(channel, binary),
        "payload": _payload_ref(kind, shape, definitions),
    }
    if channel.key:
        message["bindings"] = {
            "kafka": {
                "key": {"type": "string", "description": "the room id"},
                "bindingVersion": "0.5.0",
            }
        }
    return message


def asyncapi_document(settings: Settings) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of the sinks in ``settings``."""
    definitions, schemas = component_schemas(REFS)
    servers: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for sink in settings.sinks:
        channel = sink_channel(sink)
        if channel is None:
            continue
        shape = PayloadShape(sink.payload)
        servers[sink.name] = {
            "host": channel.host,
            "protocol": channel.protocol,
            "description": f"sink {sink.name} ({sink.type})",
        }
        refs = {}
        for kind in _kinds_routed(settings, sink.name):
            key = f"{sink.name}.{_camel(kind)}"
            messages[key] = _message(kind, channel, shape, definitions)
            refs[_camel(kind)] = {"$ref": f"#/components/messages/{key}"}
        parameters = {
            name: {"description": f"{PARAMETERS[name]}. {SAFE}"}
            for name in sorted(template_names(channel.address))
        }
        channels[sink.name] = {
            "address": channel.address,
            "title": f"sink {sink.name}",
            "servers": [{"$ref": f"#/servers/{sink.name}"}],
            "messages": refs,
            **({"parameters": parameters} if parameters else {}),
            **({"bindings": channel.channel_bindings} if channel.channel_bindings else {}),
        }
        operations[f"publish.{sink.name}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{sink.name}"},
            "summary": f"the receiver publishes each routed event to sink {sink.name}",
            "messages": [{"$ref": f"#/channels/{sink.name}/messages/{name}"} for name in refs],
            **({"bindings": channel.operation_bindings} if channel.operation_bindings else {}),
        }
    where = redact_url(settings.server.public_url) or "its callback URL"
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "MetaStudio live events",
            "version": importlib.metadata.version("receiver"),
            "description": (
                f"Events the receiver at {where} "
                "publishes: MetaStudio live callbacks (verified, enriched with their job) and "
                "job state changes from the job list. Schemas: docs/schemas/."
            ),
        },
        "servers": servers,
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }

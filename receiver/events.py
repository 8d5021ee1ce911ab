"""MetaStudio callback bodies: ``{"event_type", "message"}`` with ``message`` a JSON string.

The three documented event types have their fields checked; an unknown type is accepted
and marked (the provider may add types); anything else is a :class:`BadEvent`. The body is
not signed, so every field is bounded: an id, a type or a message over its limit is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from receiver.redaction import TooDeep, redact_message


class EventType(StrEnum):
    SHOOT_SCRIPT_SWITCH = "SHOOT_SCRIPT_SWITCH"
    RTMP_STREAM_STATE_CHANGE = "RTMP_STREAM_STATE_CHANGE"
    REPLY_COMMAND_FINISH = "REPLY_COMMAND_FINISH"


class StreamState(StrEnum):
    CONNECTING = "CONNECTING"
    CONNECTED = "CONNECTED"
    DISCONNECTED = "DISCONNECTED"
    RECONNECTING = "RECONNECTING"
    END = "END"


class BadEvent(ValueError):
    """The body is not a MetaStudio callback; ``code`` is the error code sent back."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


# Limits on what a body may carry (MetaStudio's ids are UUIDs or 32 hex digits, its event
# types under 30 characters, its messages a few hundred bytes).
MAX_ID_CHARS = 128  # room_id, job_id
MAX_EVENT_TYPE_CHARS = 64
MAX_MESSAGE_CHARS = 32 * 1024  # the message as encoded in the body
MAX_MESSAGE_DEPTH = 32  # levels of objects and arrays in the message


# The optional string fields of each documented event type (``room_id`` and ``job_id``
# are required of all three).
_FIELDS: dict[str, tuple[str, ...]] = {
    EventType.SHOOT_SCRIPT_SWITCH: (
        "scene_script_name",
        "shoot_script_sequence_no",
        "shoot_script_title",
        "live_id",
    ),
    EventType.RTMP_STREAM_STATE_CHANGE: ("output_url", "state"),
    EventType.REPLY_COMMAND_FINISH: ("reply_id",),
}


@dataclass(slots=True)
class Callback:
    """One parsed callback: the decoded message (unknown keys kept), its ids and type."""

    event_type: str
    message: dict[str, Any]
    known: bool  # one of the documented event types, its fields checked
    room_id: str
    job_id: str

    @property
    def state(self) -> str | None:
        value = self.message.get("state")
        return value if isinstance(value, str) else None


def _bounded(key: str, text: str) -> str:
    if len(text) > MAX_ID_CHARS:
        raise BadEvent("field_too_long", f"message.{key} is over {MAX_ID_CHARS} characters")
    return text


def _id(message: dict[str, Any], key: str) -> str:
    """An id as text: strings as they are, integers written out, anything else empty."""
    value = message.get(key)
    if isinstance(value, str):
        return _bounded(key, value)
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else ""


def _is_text(value: Any) -> bool:
    """A string, or an integer (MetaStudio may send numbers); never a bool."""
    kind = type(value)
    return kind is str or (kind is not bool and isinstance(value, str | int))


def _required_id(message: dict[str, Any], key: str) -> str:
    value = message.get(key)
    if value is None or not _is_text(value):
        raise BadEvent("invalid_event", f"message.{key} must be a string")
    text = value if type(value) is str else str(value)
    if not text:
        raise BadEvent("invalid_event", f"message.{key} is required")
    return _bounded(key, text)


def _too_deep() -> BadEvent:
    return BadEvent("message_too_deep", f"message nests over {MAX_MESSAGE_DEPTH} levels")


def parse_callback(body: bytes) -> Callback:
    """Decode a callback body (JSON, then the ``message`` string), or raise BadEvent."""
    try:
        outer = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise BadEvent("invalid_json", f"body is not JSON: {error.msg}") from None
    if type(outer) is not dict:
        raise BadEvent("invalid_event", "body must be a JSON object")
    event_type = outer.get("event_type")
    if type(event_type) is not str or not event_type:
        raise BadEvent("invalid_event", "event_type must be a non-empty string")
    if len(event_type) > MAX_EVENT_TYPE_CHARS:
        raise BadEvent("field_too_long", f"event_type is over {MAX_EVENT_TYPE_CHARS} characters")
    raw = outer.get("message")
    if type(raw) is str:
        if len(raw) > MAX_MESSAGE_CHARS:
            raise BadEvent("message_too_large", f"message is over {MAX_MESSAGE_CHARS} characters")
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise BadEvent("invalid_json", f"message is not JSON: {error.msg}") from None
    elif type(raw) is dict:
        message = raw  # tolerated: a sender that did not encode the message twice
        try:
            encoded = orjson.dumps(message)
        except orjson.JSONEncodeError:  # nested past what orjson writes (254 levels)
            raise _too_deep() from None
        if len(encoded) > MAX_MESSAGE_CHARS:
            raise BadEvent("message_too_large", f"message is over {MAX_MESSAGE_CHARS} characters")
    else:
        raise BadEvent("invalid_event", "message must be a JSON document encoded as a string")
    if type(message) is not dict:
        raise BadEvent("invalid_event", "message must hold a JSON object")
    fields = _FIELDS.get(event_type)
    if fields is None:
        callback = Callback(
            event_type, message, False, _id(message, "room_id"), _id(message, "job_id")
        )
    else:
        callback = Callback(
            event_type,
            message,
            True,
            _required_id(message, "room_id"),
            _required_id(message, "job_id"),
        )
        for key in fields:
            value = message.get(key)
            if value is not None and not _is_text(value):
                raise BadEvent("invalid_event", f"message.{key} must be a string")
    try:
        # Secrets (the stream key, push URLs' keys, secret-named fields) go before the
        # message is stored, logged or forwarded.
        callback.message = redact_message(message, MAX_MESSAGE_DEPTH)
    except TooDeep:
        raise _too_deep() from None
    return callback

"""MetaStudio callback bodies: ``{"event_type", "message"}`` with ``message`` a JSON string.

The three documented event types get typed models; an unknown type is accepted and marked
(the provider may add types); anything else is a :class:`BadEvent`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson


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


@dataclass(frozen=True, slots=True)
class ShootScriptSwitch:
    room_id: str
    job_id: str
    scene_script_name: str | None
    shoot_script_sequence_no: str | None
    shoot_script_title: str | None
    live_id: str | None


@dataclass(frozen=True, slots=True)
class RtmpStreamStateChange:
    room_id: str
    job_id: str
    output_url: str | None
    state: str | None


@dataclass(frozen=True, slots=True)
class ReplyCommandFinish:
    room_id: str
    job_id: str
    reply_id: str | None


TypedMessage = ShootScriptSwitch | RtmpStreamStateChange | ReplyCommandFinish

# Keys whose values are credentials of the push stream: never stored nor forwarded.
SECRET_MESSAGE_KEYS = frozenset({"stream_key"})
REDACTED = "[redacted]"


@dataclass(frozen=True, slots=True)
class Callback:
    """One parsed callback: the decoded message (unknown keys kept) and its typed view."""

    event_type: str
    message: dict[str, Any]
    typed: TypedMessage | None

    @property
    def known(self) -> bool:
        return self.typed is not None

    @property
    def room_id(self) -> str:
        return self.typed.room_id if self.typed else _id(self.message.get("room_id"))

    @property
    def job_id(self) -> str:
        return self.typed.job_id if self.typed else _id(self.message.get("job_id"))

    @property
    def state(self) -> str | None:
        value = self.message.get("state")
        return value if isinstance(value, str) else None


def _id(value: Any) -> str:
    """An id as text: strings as they are, integers written out, anything else empty."""
    if isinstance(value, str):
        return value
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else ""


def _text(message: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = message.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BadEvent("invalid_event", f"message.{key} must be a string")
    text = str(value)
    if required and not text:
        raise BadEvent("invalid_event", f"message.{key} is required")
    return text


def _typed(event_type: str, message: dict[str, Any]) -> TypedMessage | None:
    if event_type not in EventType.__members__:
        return None
    room_id = _text(message, "room_id", required=True) or ""
    job_id = _text(message, "job_id", required=True) or ""
    if event_type == EventType.SHOOT_SCRIPT_SWITCH:
        return ShootScriptSwitch(
            room_id,
            job_id,
            _text(message, "scene_script_name"),
            _text(message, "shoot_script_sequence_no"),
            _text(message, "shoot_script_title"),
            _text(message, "live_id"),
        )
    if event_type == EventType.RTMP_STREAM_STATE_CHANGE:
        return RtmpStreamStateChange(
            room_id, job_id, _text(message, "output_url"), _text(message, "state")
        )
    return ReplyCommandFinish(room_id, job_id, _text(message, "reply_id"))


def parse_callback(body: bytes) -> Callback:
    """Decode a callback body (JSON, then the ``message`` string), or raise BadEvent."""
    try:
        outer = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise BadEvent("invalid_json", f"body is not JSON: {error.msg}") from None
    if not isinstance(outer, dict):
        raise BadEvent("invalid_event", "body must be a JSON object")
    event_type = outer.get("event_type")
    if not isinstance(event_type, str) or not event_type or len(event_type) > 64:
        raise BadEvent("invalid_event", "event_type must be a non-empty string")
    raw = outer.get("message")
    if isinstance(raw, str):
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise BadEvent("invalid_json", f"message is not JSON: {error.msg}") from None
    elif isinstance(raw, dict):
        message = raw  # tolerated: a sender that did not encode the message twice
    else:
        raise BadEvent("invalid_event", "message must be a JSON document encoded as a string")
    if not isinstance(message, dict):
        raise BadEvent("invalid_event", "message must hold a JSON object")
    typed = _typed(event_type, message)
    for key in SECRET_MESSAGE_KEYS & message.keys():
        message[key] = REDACTED
    return Callback(event_type, message, typed)

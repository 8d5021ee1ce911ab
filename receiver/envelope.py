"""The envelope every sink receives: a CloudEvents 1.0 structured JSON document."""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from datetime import UTC, datetime
from string import Formatter
from typing import Any

from receiver.events import Callback

TYPE_PREFIX = "com.huaweicloud.metastudio.live."
# The media type of an envelope's JSON encoding: CloudEvents structured content mode.
MEDIA_TYPE = "application/cloudevents+json; charset=utf-8"


def event_id(body: bytes, proof: bytes = b"") -> str:
    """A stable id for one callback: the signed parts (signature and time) and the body.

    The same signed request sent twice gets the same id, so replays are dropped; a genuine
    new callback has a new time and signature, so a new id (unless MetaStudio sends the
    same body twice within one second: the two share their proof, so their id).
    """
    digest = hashlib.sha256(proof)
    digest.update(b"\x00")
    digest.update(body)
    return digest.hexdigest()[:32]


def random_event_id() -> str:
    """A fresh id for a callback without a signed proof (``NONE``): no replay to detect.

    Equal bodies are genuine repeats there (a stream flapping back to a state it had), so
    each gets its own id, and the sinks' dedup by id (``Nats-Msg-Id``, Redis markers)
    keeps them all.
    """
    return secrets.token_hex(16)


_MILLIS = tuple(f".{milli:03d}Z" for milli in range(1000))
# The last second written out, with its text (one tuple: threads may call at once).
_last_second: tuple[int, str] = (-1, "")


def rfc3339(unix_seconds: float) -> str:
    """UTC time as RFC 3339 with milliseconds (the date part computed once a second)."""
    global _last_second
    micros = round(unix_seconds * 1_000_000)
    second = micros // 1_000_000
    cached = _last_second
    if cached[0] != second:
        text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        cached = _last_second = (second, text)
    return cached[1] + _MILLIS[micros // 1000 % 1000]


def build_envelope(
    callback: Callback, event_id: str, received_at: float, source: str
) -> dict[str, Any]:
    """The CloudEvents envelope of a callback, before enrichment."""
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": TYPE_PREFIX + callback.event_type,
        "subject": callback.room_id,
        "time": rfc3339(received_at),
        "datacontenttype": "application/json",
        "roomid": callback.room_id,
        "jobid": callback.job_id,
        "knowntype": callback.known,
        "data": {
            "event_type": callback.event_type,
            "message": callback.message,
            "job": None,
            "enrichment": {"status": "disabled"},
        },
    }


def template_fields(envelope: dict[str, Any]) -> dict[str, str]:
    """Values a destination template may name: ``{event_type}``, ``{room_id}`` and so on."""
    data = envelope["data"]
    # A job-state event has no callback message: its own data names the state.
    message = data.get("message", data)
    job = data.get("job") or {}
    state = message.get("state")
    return {
        "id": envelope["id"],
        "event_type": data["event_type"],
        "room_id": envelope["roomid"] or "unknown",
        "job_id": envelope["jobid"] or "unknown",
        "state": state if isinstance(state, str) and state else "none",
        "room_name": str(job.get("room_name") or ""),
    }


# What a value keeps in a destination: no separator of any sink (``/``, ``.``, ``:``, ``{``),
# no wildcard, no whitespace or control character.
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
MAX_VALUE_LENGTH = 128
_DIGEST_LENGTH = 8


def safe_value(value: str) -> str:
    """``value`` as it may appear in a destination: letters, digits, ``-`` and ``_``.

    Any other character becomes ``_`` and the value is cut to ``MAX_VALUE_LENGTH``; a value
    that had to be changed (or was empty) ends in ``-`` and the first 8 hex digits of the
    SHA-256 of the original, so different values keep different destinations.
    """
    if 0 < len(value) <= MAX_VALUE_LENGTH and _UNSAFE.search(value) is None:
        return value
    kept = _UNSAFE.sub("_", value)
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{kept[: MAX_VALUE_LENGTH - _DIGEST_LENGTH - 1] or '_'}-{digest[:_DIGEST_LENGTH]}"


def render(template: str, envelope: dict[str, Any]) -> str:
    """Fill a destination template from the envelope, each value made safe (:func:`safe_value`).

    The values come from the callback body, which the signature does not cover: rendered
    unchanged they would pick any file, key, subject or topic. Unknown names are a config
    error.
    """
    fields = template_fields(envelope)
    return template.format_map({name: safe_value(str(fields[name])) for name in _names(template)})


@functools.lru_cache(maxsize=64)
def _names(template: str) -> frozenset[str]:
    """The field names ``template`` fills in (each template is parsed once)."""
    return frozenset(name for _, name, _, _ in Formatter().parse(template) if name is not None)


def template_names(template: str) -> frozenset[str]:
    """The field names ``template`` fills in (``{room_id}`` and so on)."""
    return _names(template)


TEMPLATE_NAMES = frozenset({"id", "event_type", "room_id", "job_id", "state", "room_name"})


def check_template(template: str) -> None:
    """Raise ValueError if a template names a field the envelope does not offer."""
    for _text, name, _spec, _conversion in Formatter().parse(template):
        if name is not None and name not in TEMPLATE_NAMES:
            raise ValueError(
                f"template {template!r} names {{{name}}}; known: {sorted(TEMPLATE_NAMES)}"
            )

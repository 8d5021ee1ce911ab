"""The journal's two kinds of entry, as compact JSON documents.

``{"k": "r", "at", "sinks", "event"}``: an event was routed (``event`` is the envelope the
sinks got, secrets already removed); ``{"k": "s", "at", "id", "sink", "outcome",
"error"}``: one sink's attempt at it settled. Entries come back from a broker another
process writes to, so :func:`decode` takes anything and returns None for what is not one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

MAX_TEXT = 512
MAX_BLOB = 512 * 1024  # what a writer may write (``receiver.journal.base.MAX_ENTRY_BYTES``)
OUTCOMES = frozenset(("delivered", "retrying", "dead_lettered"))


@dataclass(frozen=True, slots=True)
class Routed:
    """An event and the sinks it was routed to (none: no route, or refused)."""

    at: float
    sinks: list[str]
    envelope: dict[str, Any]
    body: bytes


@dataclass(frozen=True, slots=True)
class Settled:
    """One attempt of one sink at one event."""

    at: float
    event_id: str
    sink: str
    outcome: str
    error: str


def routed_entry(body: bytes, sinks: list[str], at: float) -> bytes:
    """The entry of a routed event (``body``: the envelope's JSON encoding, not re-encoded)."""
    return orjson.dumps({"k": "r", "at": at, "sinks": sinks, "event": orjson.Fragment(body)})


def settled_entry(event_id: str, sink: str, outcome: str, error: str, at: float) -> bytes:
    """The entry of one sink's settled attempt."""
    return orjson.dumps(
        {"k": "s", "at": at, "id": event_id, "sink": sink, "outcome": outcome, "error": error}
    )


def _text(value: Any) -> str | None:
    return value[:MAX_TEXT] if isinstance(value, str) else None


def decode(blob: bytes) -> Routed | Settled | None:
    """The entry in ``blob``, or None when it is not a well-formed entry."""
    if len(blob) > MAX_BLOB:
        return None
    try:
        document = orjson.loads(blob)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict):
        return None
    at = document.get("at")
    if not isinstance(at, int | float) or isinstance(at, bool):
        return None
    kind = document.get("k")
    if kind == "r":
        event, sinks = document.get("event"), document.get("sinks")
        if not isinstance(event, dict) or not isinstance(sinks, list):
            return None
        names = [name for name in map(_text, sinks) if name]
        return Routed(float(at), names, event, orjson.dumps(event))
    if kind == "s":
        event_id, sink = _text(document.get("id")), _text(document.get("sink"))
        outcome, error = document.get("outcome"), _text(document.get("error"))
        if not event_id or not sink or outcome not in OUTCOMES:
            return None
        return Settled(float(at), event_id, sink, str(outcome), error or "")
    return None

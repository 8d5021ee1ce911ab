"""What the pipeline holds: events in flight, their attempts, the lanes they queue in."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from receiver.intake import IntakeRecord

# The dead letters' sink name for an event that failed before it had routes (its record
# did not decode, its route raised). ``receiver dlq replay`` routes it again.
UNROUTED = "(unrouted)"


class DeadLetters(Protocol):
    """Where events that exhausted their retries are kept."""

    async def add(
        self,
        event_id: str,
        sink: str,
        body: bytes,
        attempts: int,
        last_error: str,
        first_attempt_at: float,
        dead_at: float,
    ) -> int: ...


class Observer(Protocol):
    """Told what happens to each event (the console's history and rooms); never raises
    into the pipeline: the pipeline logs and drops an observer's error."""

    def routed(self, envelope: dict[str, Any], body: bytes, sinks: list[str]) -> None:
        """The event (``body`` is its JSON encoding) was routed to ``sinks`` (none: no route
        matched, or enrichment refused it and it went to the dead letters)."""

    def settled(self, event_id: str, sink: str, outcome: str, error: str = "") -> None:
        """One attempt at ``sink``: ``delivered``, ``retrying`` or ``dead_lettered``."""


@dataclass(slots=True, eq=False)
class InFlight:
    """One event taken from the intake and not yet settled."""

    record: IntakeRecord
    lane: int  # of ``pipeline.lanes``, by room
    envelope: dict[str, Any]
    body: bytes  # the envelope's JSON encoding
    pending: int = 0  # sinks still to confirm, dead-letter or give it up
    observed: bool = False  # the observer was told where it was routed
    abandoned: bool = False  # its partition moved on: settled by a drop, not an ack


@dataclass(slots=True, eq=False)
class Attempts:
    """An event's failed attempts at one sink."""

    count: int
    first: float
    error: str = ""


@dataclass(slots=True, eq=False)
class Lane:
    """One lane of one sink: events queued in order, and the wake-up of its worker."""

    queue: deque[InFlight] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

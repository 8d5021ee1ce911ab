"""A bounded record of recent events and of each sink's delivery outcome, for the console.

Kept in this process's memory, newest ``history_events`` within ``history_seconds``; the
envelopes in it are those the sinks got (secrets already removed). Subscribers (the live
tail) get each new or changed record; a subscriber that falls behind loses records, never
slows the pipeline.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

SUBSCRIBER_QUEUE = 256
MAX_PAGE = 200


@dataclass(slots=True)
class SinkOutcome:
    """One sink's handling of one event."""

    outcome: str = "pending"  # pending | retrying | delivered | dead_lettered
    attempts: int = 0
    error: str = ""
    at: float = 0.0


@dataclass(slots=True)
class EventRecord:
    """One event as the console shows it."""

    seq: int
    id: str
    seen_at: float
    envelope: dict[str, Any]
    sinks: dict[str, SinkOutcome] = field(default_factory=dict)

    @property
    def event_type(self) -> str:
        return str(self.envelope.get("data", {}).get("event_type", ""))

    @property
    def room_id(self) -> str:
        return str(self.envelope.get("roomid") or "")

    @property
    def job_id(self) -> str:
        return str(self.envelope.get("jobid") or "")

    @property
    def enrichment(self) -> str:
        return str((self.envelope.get("data", {}).get("enrichment") or {}).get("status", ""))

    @property
    def outcome(self) -> str:
        """``no_route``, ``dead_lettered``, ``delivered``, ``retrying`` or ``pending``."""
        outcomes = {sink.outcome for sink in self.sinks.values()}
        if not outcomes:
            return "no_route"
        if "dead_lettered" in outcomes:
            return "dead_lettered"
        if outcomes == {"delivered"}:
            return "delivered"
        return "retrying" if "retrying" in outcomes else "pending"

    def summary(self) -> dict[str, Any]:
        """The record without its envelope (lists and the live tail)."""
        message = self.envelope.get("data", {}).get("message") or {}
        state = message.get("state") if isinstance(message, dict) else None
        return {
            "seq": self.seq,
            "id": self.id,
            "seen_at": self.seen_at,
            "type": self.envelope.get("type"),
            "event_type": self.event_type,
            "room_id": self.room_id,
            "job_id": self.job_id,
            "state": state if isinstance(state, str) else None,
            "enrichment": self.enrichment,
            "outcome": self.outcome,
            "sinks": {
                name: {"outcome": s.outcome, "attempts": s.attempts, "error": s.error, "at": s.at}
                for name, s in self.sinks.items()
            },
        }

    def detail(self) -> dict[str, Any]:
        """The record with its envelope."""
        return {**self.summary(), "envelope": self.envelope}


@dataclass(frozen=True, slots=True)
class EventFilter:
    """What ``GET /api/events`` and the tail select; empty fields select everything."""

    room: str = ""
    job: str = ""
    event_type: str = ""
    enrichment: str = ""
    outcome: str = ""
    since: float | None = None
    until: float | None = None

    def matches(self, record: EventRecord) -> bool:
        return (
            (not self.room or record.room_id == self.room)
            and (not self.job or record.job_id == self.job)
            and (not self.event_type or record.event_type == self.event_type)
            and (not self.enrichment or record.enrichment == self.enrichment)
            and (not self.outcome or record.outcome == self.outcome)
            and (self.since is None or record.seen_at >= self.since)
            and (self.until is None or record.seen_at <= self.until)
        )


class EventHistory:
    """Recent events by id, oldest first, bounded by count and age."""

    def __init__(self, max_events: int, max_age_seconds: float) -> None:
        self._max_events = max_events
        self._max_age = max_age_seconds
        self._records: OrderedDict[str, EventRecord] = OrderedDict()
        self._seq = 0
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()

    def __len__(self) -> int:
        return len(self._records)

    def add(self, envelope: dict[str, Any], sinks: list[str]) -> None:
        """Record a routed event (a repeat of a known id updates it)."""
        event_id = str(envelope.get("id", ""))
        self._seq += 1
        outcomes = {name: SinkOutcome() for name in sinks}
        record = EventRecord(self._seq, event_id, time.time(), envelope, outcomes)
        self._records.pop(event_id, None)
        self._records[event_id] = record
        self._prune(record.seen_at)
        self._publish(record)

    def settle(self, event_id: str, sink: str, outcome: str, error: str = "") -> None:
        """A sink delivered, failed to deliver (``retrying``) or dead-lettered an event."""
        record = self._records.get(event_id)
        if record is None:
            return
        state = record.sinks.setdefault(sink, SinkOutcome())
        state.outcome = outcome
        state.attempts += 1
        state.error = error
        state.at = time.time()
        self._publish(record)

    def get(self, event_id: str) -> EventRecord | None:
        return self._records.get(event_id)

    def page(
        self, where: EventFilter, before: int | None = None, limit: int = 50
    ) -> tuple[list[EventRecord], int | None]:
        """Newest first, records with ``seq`` below ``before``; and the next cursor."""
        limit = max(1, min(limit, MAX_PAGE))
        found: list[EventRecord] = []
        for record in reversed(self._records.values()):
            if before is not None and record.seq >= before:
                continue
            if where.matches(record):
                found.append(record)
                if len(found) > limit:
                    break
        more = len(found) > limit
        found = found[:limit]
        return found, (found[-1].seq if more and found else None)

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._subscribers.discard(queue)

    def _publish(self, record: EventRecord) -> None:
        if not self._subscribers:
            return
        summary = record.summary()
        for queue in self._subscribers:
            if not queue.full():
                queue.put_nowait(summary)

    def _prune(self, now: float) -> None:
        records = self._records
        while len(records) > self._max_events:
            records.popitem(last=False)
        oldest = now - self._max_age
        while records and next(iter(records.values())).seen_at < oldest:
            records.popitem(last=False)

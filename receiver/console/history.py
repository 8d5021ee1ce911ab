"""A bounded record of recent events and of each sink's delivery outcome, for the console.

Kept in this process's memory, folded from the journal (so every replica holds every
replica's events): the newest ``history_events`` within ``history_seconds``
and ``history_bytes``; the envelopes in it are those the sinks got (secrets already
removed), kept as their JSON bytes. At most ``MAX_SUBSCRIBERS`` live tails get each new or
changed record; one that falls behind loses records, never slows the pipeline.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import orjson

SUBSCRIBER_QUEUE = 256
MAX_SUBSCRIBERS = 32
MAX_PAGE = 200


@dataclass(slots=True)
class SinkOutcome:
    """One sink's handling of one event."""

    outcome: str = "pending"  # pending | retrying | delivered | dead_lettered
    attempts: int = 0
    error: str = ""
    at: float = 0.0


def _text(value: Any, limit: int = 128) -> str:
    return value[:limit] if isinstance(value, str) else ""


@dataclass(slots=True)
class EventRecord:
    """One event as the console shows it: a few fields, and the envelope as its JSON bytes
    (decoded only for its detail page, so a record costs about its size)."""

    seq: int
    id: str
    seen_at: float
    body: bytes
    type: str
    event_type: str
    room_id: str
    job_id: str
    state: str | None
    enrichment: str
    sinks: dict[str, SinkOutcome] = field(default_factory=dict)

    @classmethod
    def of(
        cls, seq: int, envelope: dict[str, Any], body: bytes, sinks: list[str], at: float
    ) -> EventRecord:
        """The record of an envelope routed at ``at`` (``body`` is its JSON encoding)."""
        data = envelope.get("data") or {}
        message = data.get("message") if isinstance(data, dict) else None
        state = message.get("state") if isinstance(message, dict) else None
        enrichment = data.get("enrichment") if isinstance(data, dict) else None
        return cls(
            seq,
            _text(envelope.get("id")),
            at,
            body,
            _text(envelope.get("type"), 256),
            _text(data.get("event_type")) if isinstance(data, dict) else "",
            _text(envelope.get("roomid")),
            _text(envelope.get("jobid")),
            _text(state) or None,
            _text(enrichment.get("status")) if isinstance(enrichment, dict) else "",
            {name: SinkOutcome() for name in sinks},
        )

    @property
    def size(self) -> int:
        """Bytes this record holds, roughly."""
        return len(self.body) + 512 + 128 * len(self.sinks)

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
        return {
            "seq": self.seq,
            "id": self.id,
            "seen_at": self.seen_at,
            "type": self.type,
            "event_type": self.event_type,
            "room_id": self.room_id,
            "job_id": self.job_id,
            "state": self.state,
            "enrichment": self.enrichment,
            "outcome": self.outcome,
            "sinks": {
                name: {"outcome": s.outcome, "attempts": s.attempts, "error": s.error, "at": s.at}
                for name, s in self.sinks.items()
            },
        }

    def detail(self) -> dict[str, Any]:
        """The record with its envelope."""
        return {**self.summary(), "envelope": orjson.loads(self.body)}


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
    """Recent events by id, oldest first, bounded by count, bytes and age."""

    def __init__(self, max_events: int, max_age_seconds: float, max_bytes: int) -> None:
        self._max_events = max_events
        self._max_age = max_age_seconds
        self._max_bytes = max_bytes
        self._bytes = 0
        self._records: OrderedDict[str, EventRecord] = OrderedDict()
        self._seq = 0
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()

    def __len__(self) -> int:
        return len(self._records)

    def add(self, envelope: dict[str, Any], body: bytes, sinks: list[str], at: float) -> None:
        """Record an event routed at ``at``.

        A repeat of a known id (a partition's new owner routed it again) replaces it but
        keeps what its sinks already reported: replicas' journal entries interleave, so
        the old owner's routing may come in after the new owner's delivery.
        """
        self._seq += 1
        record = EventRecord.of(self._seq, envelope, body, sinks, at)
        old = self._records.pop(record.id, None)
        if old is not None:
            self._bytes -= old.size
            for name, known in old.sinks.items():
                if name in record.sinks and known.attempts:
                    record.sinks[name] = known
        self._records[record.id] = record
        self._bytes += record.size
        self._prune(time.time())
        self._publish(record)

    def settle(self, event_id: str, sink: str, outcome: str, error: str, at: float) -> None:
        """A sink delivered, failed to deliver (``retrying``) or dead-lettered an event."""
        record = self._records.get(event_id)
        if record is None:
            return
        state = record.sinks.setdefault(sink, SinkOutcome())
        state.outcome = outcome
        state.attempts += 1
        state.error = error
        state.at = at
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

    def subscribe(self) -> asyncio.Queue[dict[str, Any]] | None:
        """A queue of the records to come; None when ``MAX_SUBSCRIBERS`` tails are open."""
        if len(self._subscribers) >= MAX_SUBSCRIBERS:
            return None
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
        oldest = now - self._max_age
        while records and (
            len(records) > self._max_events
            or self._bytes > self._max_bytes
            or next(iter(records.values())).seen_at < oldest
        ):
            _, dropped = records.popitem(last=False)
            self._bytes -= dropped.size

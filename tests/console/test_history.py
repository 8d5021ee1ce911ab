"""The console's event history: routings and outcomes as the journal tells them."""

from __future__ import annotations

import time
from typing import Any

import orjson

from receiver.console.history import EventHistory


def envelope(event_id: str) -> dict[str, Any]:
    return {
        "id": event_id, "type": "t", "roomid": "r", "jobid": "j",
        "data": {"event_type": "X", "message": {}, "enrichment": {}},
    }  # fmt: skip


def outcomes(history: EventHistory, event_id: str) -> dict[str, str]:
    record = history.get(event_id)
    assert record is not None
    return {name: sink.outcome for name, sink in record.sinks.items()}


def test_a_late_routing_from_the_old_owner_keeps_the_new_owners_delivery() -> None:
    history = EventHistory(max_events=100, max_age_seconds=3600, max_bytes=1024 * 1024)
    item, now = envelope("e1"), time.time()
    # The new owner's routing and delivery came in before the old owner's routing.
    history.add(item, orjson.dumps(item), ["file"], now)
    history.settle("e1", "file", "delivered", "", now)
    history.add(item, orjson.dumps(item), ["file", "other"], now)
    assert outcomes(history, "e1") == {"file": "delivered", "other": "pending"}


def test_a_repeat_after_a_retry_shows_the_retry_until_the_next_outcome() -> None:
    history = EventHistory(max_events=100, max_age_seconds=3600, max_bytes=1024 * 1024)
    item, now = envelope("e2"), time.time()
    history.add(item, orjson.dumps(item), ["file"], now)
    history.settle("e2", "file", "retrying", "down", now)
    history.add(item, orjson.dumps(item), ["file"], now)
    assert outcomes(history, "e2") == {"file": "retrying"}
    history.settle("e2", "file", "delivered", "", now)
    assert outcomes(history, "e2") == {"file": "delivered"}
    record = history.get("e2")
    assert record is not None and record.sinks["file"].attempts == 2

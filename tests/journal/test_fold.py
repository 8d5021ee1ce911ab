"""What a replica makes of journal entries, its own or another's, well-formed or not."""

from __future__ import annotations

import time

import orjson

from receiver.console.recorder import ConsoleRecorder
from receiver.console.settings import AdminSettings
from receiver.journal import JournalFold, routed_entry, settled_entry
from receiver.reconcile.callbacks import CallbackLog

RTMP = "RTMP_STREAM_STATE_CHANGE"


def envelope(event_id: str, event_type: str, job: object = "job-1", **message: str) -> bytes:
    return orjson.dumps(
        {
            "id": event_id,
            "roomid": "room-1",
            "jobid": job,
            "data": {"event_type": event_type, "message": message},
        }
    )


def fold() -> JournalFold:
    return JournalFold(ConsoleRecorder(AdminSettings(enabled=True)), CallbackLog())


def test_a_routed_callback_reaches_the_history_the_room_and_the_callback_log() -> None:
    journal, now = fold(), time.time()
    journal(routed_entry(envelope("e-1", RTMP, state="END"), ["out"], now - 2))
    journal(settled_entry("e-1", "out", "delivered", "", now - 1))
    assert journal.console is not None and journal.callbacks is not None
    record = journal.console.history.get("e-1")
    assert record is not None and record.outcome == "delivered" and record.seen_at == now - 2
    assert record.sinks["out"].at == now - 1
    room = journal.console.rooms.get("room-1")
    assert room is not None and room.stream_state == "END" and room.stream_state_since == now - 2
    entry = journal.callbacks.get("job-1")
    assert entry is not None and entry.counts == {RTMP: 1} and entry.last_stream_state == "END"


def test_our_own_events_and_hostile_job_ids_are_not_callbacks() -> None:
    journal, now = fold(), time.time()
    journal(routed_entry(envelope("e-1", "JOB_STATE_CHANGED"), [], now))
    journal(routed_entry(envelope("e-2", RTMP, job=7, state="END"), [], now))
    journal(routed_entry(envelope("e-3", "NOT_A_TYPE", job="job-2"), [], now))
    assert journal.callbacks is not None and len(journal.callbacks) == 0
    assert journal.console is not None and len(journal.console.history) == 3


def test_malformed_entries_are_counted_and_skipped() -> None:
    journal = fold()
    for blob in (
        b"not json",
        b"[]",
        b'{"k": "r", "at": "soon", "sinks": [], "event": {}}',
        b'{"k": "r", "at": 1, "sinks": "out", "event": {}}',
        b'{"k": "s", "at": 1, "id": "e", "sink": "out", "outcome": "exploded"}',
        b'{"k": "x", "at": 1}',
    ):
        journal(blob)
    assert journal.malformed == 6
    assert journal.console is not None and len(journal.console.history) == 0


def test_an_event_routed_again_by_a_new_owner_is_counted_once() -> None:
    journal, now = fold(), time.time()
    body = envelope("e-1", RTMP, state="CONNECTED")
    journal(routed_entry(body, ["out"], now))
    journal(routed_entry(body, ["out"], now + 1))  # the partition moved while in hand
    journal(settled_entry("e-1", "out", "delivered", "", now + 2))
    assert journal.console is not None and journal.callbacks is not None
    room = journal.console.rooms.get("room-1")
    assert room is not None and room.counts == {RTMP: 1}
    entry = journal.callbacks.get("job-1")
    assert entry is not None and entry.counts == {RTMP: 1}
    record = journal.console.history.get("e-1")
    assert record is not None and record.outcome == "delivered"

"""The live-session scenario and single events: order and message format."""

from __future__ import annotations

import random
from typing import Any

import orjson

from receiver.simulator import (
    EVENT_TYPES,
    generate_jobs,
    live_job_per_room,
    live_session,
    live_sessions,
    single_events,
)
from receiver.simulator.scenario import Callback

KEYS = {
    "SHOOT_SCRIPT_SWITCH": {
        "room_id",
        "job_id",
        "scene_script_name",
        "shoot_script_sequence_no",
        "shoot_script_title",
    },
    "RTMP_STREAM_STATE_CHANGE": {"room_id", "job_id", "output_url", "stream_key", "state"},
    "REPLY_COMMAND_FINISH": {"room_id", "job_id", "reply_id"},
}


def decode(event: Callback) -> tuple[str, dict[str, Any]]:
    """Decode the posted body twice, as a receiver does."""
    outer = orjson.loads(event.body())
    assert set(outer) == {"event_type", "message"}
    assert isinstance(outer["message"], str)
    return outer["event_type"], orjson.loads(outer["message"])


def test_session_order_and_messages(jobs: list[dict[str, Any]]) -> None:
    job = live_job_per_room(jobs)[0]
    events = live_session(job, random.Random(1), paragraphs=5)
    decoded = [decode(event) for event in events]
    types = [event_type for event_type, _ in decoded]
    states = [m["state"] for t, m in decoded if t == "RTMP_STREAM_STATE_CHANGE"]
    assert states[:2] == ["CONNECTING", "CONNECTED"]
    assert states[-1] in ("DISCONNECTED", "END")
    assert len(states) == 3
    assert types[0] == types[1] == types[-1] == "RTMP_STREAM_STATE_CHANGE"
    assert set(types[2:-1]) <= {"SHOOT_SCRIPT_SWITCH", "REPLY_COMMAND_FINISH"}
    assert types[2] == "SHOOT_SCRIPT_SWITCH"
    numbers = [m["shoot_script_sequence_no"] for t, m in decoded if t == "SHOOT_SCRIPT_SWITCH"]
    assert numbers == ["1", "2", "3", "4", "5"]
    for event_type, message in decoded:
        assert KEYS[event_type] <= set(message)
        assert message["room_id"] == job["room_id"]
        assert message["job_id"] == job["job_id"]
        if event_type == "SHOOT_SCRIPT_SWITCH":
            assert message["live_id"] == job["relation_live_platform_info"]["live_id"]
        else:
            assert set(message) == KEYS[event_type]


def test_sessions_per_room_are_deterministic(jobs: list[dict[str, Any]]) -> None:
    first = live_sessions(jobs, seed=3, rooms=4)
    again = live_sessions(generate_jobs(len(jobs), 7, "other-project"), seed=3, rooms=4)
    assert len(first) == 4
    assert {room: [e.body() for e in ev] for room, ev in first.items()} == {
        room: [e.body() for e in ev] for room, ev in again.items()
    }
    for room_id, events in first.items():
        assert all(event.room_id == room_id for event in events)
    twice = live_sessions(jobs, seed=3, rooms=4, rounds=2)
    for room_id, events in twice.items():
        assert events[: len(first[room_id])] == first[room_id]
        assert len(events) > len(first[room_id])


def test_single_events_cycle_types_over_rooms(jobs: list[dict[str, Any]]) -> None:
    plan = single_events(jobs, list(EVENT_TYPES), count=12, seed=1, rooms=3)
    assert sum(len(events) for events in plan.values()) == 12
    for events in plan.values():
        assert [decode(event)[0] for event in events] == list(EVENT_TYPES) + list(EVENT_TYPES)[:1]


def test_unknown_event_type_keeps_room_and_job(jobs: list[dict[str, Any]]) -> None:
    plan = single_events(jobs, ["FUTURE_EVENT"], count=1, seed=1, rooms=1)
    (event,) = next(iter(plan.values()))
    event_type, message = decode(event)
    assert event_type == "FUTURE_EVENT"
    assert set(message) == {"room_id", "job_id"}

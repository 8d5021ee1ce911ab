"""Callbacks as MetaStudio sends them during a live: whole sessions, or single events.

A callback body is ``{"event_type": ..., "message": "<JSON document as a string>"}``; the
keys of the decoded message are those the provider documents for each event type.
Everything here is deterministic for a given seed.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from receiver.simulator.jobs import live_job_per_room

SHOOT_SCRIPT_SWITCH = "SHOOT_SCRIPT_SWITCH"
RTMP_STREAM_STATE_CHANGE = "RTMP_STREAM_STATE_CHANGE"
REPLY_COMMAND_FINISH = "REPLY_COMMAND_FINISH"
EVENT_TYPES = (SHOOT_SCRIPT_SWITCH, RTMP_STREAM_STATE_CHANGE, REPLY_COMMAND_FINISH)
STREAM_STATES = ("CONNECTING", "CONNECTED", "DISCONNECTED", "RECONNECTING", "END")
LIVE_SESSION = "live-session"
SCENARIOS = (LIVE_SESSION,)

_SCENES = ("商品1", "商品2", "opening", "福利时间", "product demo", "closing")
_TITLES = ("开场白", "段落2", "产品介绍", "限时优惠", "Q&A", "引导关注", "结束语")

Job = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Callback:
    """One callback: its type and the message document (before string encoding)."""

    event_type: str
    message: Mapping[str, Any]

    @property
    def room_id(self) -> str:
        """The room the callback is about."""
        return str(self.message.get("room_id", ""))

    def document(self) -> dict[str, str]:
        """The body as a dict: ``message`` is the JSON-encoded message string."""
        return {"event_type": self.event_type, "message": orjson.dumps(self.message).decode()}

    def body(self) -> bytes:
        """The request body bytes MetaStudio posts."""
        return orjson.dumps(self.document())


def _stream(job: Job) -> tuple[str, str]:
    """``(output_url, stream_key)`` of a job's RTMP push, stable per job."""
    job_id = str(job["job_id"])
    return f"rtmp://push.live.example.com/live/{job['room_id']}", f"sk-{job_id[:8]}-{job_id[-8:]}"


def _live_id(job: Job) -> str | None:
    platform = job.get("relation_live_platform_info") or {}
    live_id = platform.get("live_id") if isinstance(platform, Mapping) else None
    return str(live_id) if live_id else None


def rtmp_event(job: Job, state: str) -> Callback:
    """``RTMP_STREAM_STATE_CHANGE`` with ``state`` for ``job``."""
    output_url, stream_key = _stream(job)
    return Callback(
        RTMP_STREAM_STATE_CHANGE,
        {
            "room_id": job["room_id"],
            "job_id": job["job_id"],
            "output_url": output_url,
            "stream_key": stream_key,
            "state": state,
        },
    )


def script_event(job: Job, sequence_no: int, rng: random.Random) -> Callback:
    """``SHOOT_SCRIPT_SWITCH`` to paragraph ``sequence_no`` (sent as a string)."""
    message: dict[str, Any] = {
        "room_id": job["room_id"],
        "job_id": job["job_id"],
        "scene_script_name": rng.choice(_SCENES),
        "shoot_script_sequence_no": str(sequence_no),
        "shoot_script_title": rng.choice(_TITLES),
    }
    live_id = _live_id(job)
    if live_id:
        message["live_id"] = live_id
    return Callback(SHOOT_SCRIPT_SWITCH, message)


def reply_event(job: Job, rng: random.Random) -> Callback:
    """``REPLY_COMMAND_FINISH`` for a random reply id."""
    reply_id = format(rng.getrandbits(128), "032x")
    return Callback(
        REPLY_COMMAND_FINISH,
        {
            "room_id": job["room_id"],
            "job_id": job["job_id"],
            "reply_id": reply_id,
        },
    )


def single_event(job: Job, event_type: str, rng: random.Random, index: int = 0) -> Callback:
    """One callback of ``event_type``; an unknown type gets a minimal room/job message."""
    if event_type == RTMP_STREAM_STATE_CHANGE:
        return rtmp_event(job, STREAM_STATES[index % len(STREAM_STATES)])
    if event_type == SHOOT_SCRIPT_SWITCH:
        return script_event(job, index + 1, rng)
    if event_type == REPLY_COMMAND_FINISH:
        return reply_event(job, rng)
    return Callback(event_type, {"room_id": job["room_id"], "job_id": job["job_id"]})


def live_session(job: Job, rng: random.Random, paragraphs: int | None = None) -> list[Callback]:
    """One live of ``job``, in order: CONNECTING, CONNECTED, paragraph switches with
    reply notifications interleaved, then DISCONNECTED or END."""
    count = paragraphs if paragraphs is not None else rng.randint(3, 6)
    events = [rtmp_event(job, "CONNECTING"), rtmp_event(job, "CONNECTED")]
    for number in range(1, count + 1):
        events.append(script_event(job, number, rng))
        events.extend(reply_event(job, rng) for _ in range(rng.randint(0, 2)))
    events.append(rtmp_event(job, rng.choice(("DISCONNECTED", "END"))))
    return events


def _rng(seed: int | str, room_id: str, round_no: int) -> random.Random:
    return random.Random(f"metastudio-sim-scenario:{seed}:{room_id}:{round_no}")


def live_sessions(
    jobs: Sequence[Job], seed: int | str, rooms: int | None = None, rounds: int = 1
) -> dict[str, list[Callback]]:
    """Per room (first ``rooms`` rooms of ``jobs``), ``rounds`` consecutive live sessions of
    the room's live job."""
    chosen = live_job_per_room(jobs)[:rooms]
    plan: dict[str, list[Callback]] = {}
    for job in chosen:
        room_id = str(job["room_id"])
        plan[room_id] = [
            event
            for number in range(rounds)
            for event in live_session(job, _rng(seed, room_id, number))
        ]
    return plan


def skip_callbacks(
    plan: Mapping[str, Sequence[Callback]], skips: Sequence[str]
) -> dict[str, list[Callback]]:
    """``plan`` without the callbacks ``skips`` names: ``TYPE`` (every callback of that
    type) or ``TYPE:STATE`` (``RTMP_STREAM_STATE_CHANGE:END``), as if lost on the way."""

    def skipped(event: Callback) -> bool:
        state = str(event.message.get("state", ""))
        return any(
            rule == event.event_type or rule == f"{event.event_type}:{state}" for rule in skips
        )

    return {room: [e for e in events if not skipped(e)] for room, events in plan.items()}


def single_events(
    jobs: Sequence[Job],
    event_types: Sequence[str],
    count: int,
    seed: int | str,
    rooms: int | None = None,
) -> dict[str, list[Callback]]:
    """``count`` callbacks spread round-robin over the rooms, cycling through ``event_types``."""
    if not event_types:
        raise ValueError("name at least one event type")
    chosen = live_job_per_room(jobs)[:rooms]
    if not chosen:
        return {}
    plan: dict[str, list[Callback]] = {str(job["room_id"]): [] for job in chosen}
    generators = {room_id: _rng(seed, room_id, 0) for room_id in plan}
    for index in range(count):
        job = chosen[index % len(chosen)]
        room_id = str(job["room_id"])
        number = index // len(chosen)
        event_type = event_types[number % len(event_types)]
        plan[room_id].append(single_event(job, event_type, generators[room_id], number))
    return plan


def plan_size(plan: Mapping[str, Sequence[Callback]]) -> int:
    """How many callbacks a plan holds."""
    return sum(len(events) for events in plan.values())

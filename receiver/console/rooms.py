"""Live rooms: the current picture of each room, from the events that went through.

Per room: its job and job state, the last stream state and since when, the current script
paragraph, the last finished reply, the last event's time and counts per event type.
Bounded: past ``max_rooms`` the room updated longest ago is forgotten.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)
class Room:
    room_id: str
    room_name: str = ""
    job_id: str = ""
    job_state: str | None = None
    stream_state: str | None = None
    stream_state_since: float | None = None
    script: str | None = None
    last_reply: str | None = None
    last_event_at: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


COUNTED_TYPES = frozenset(
    ("SHOOT_SCRIPT_SWITCH", "RTMP_STREAM_STATE_CHANGE", "REPLY_COMMAND_FINISH", "JOB_STATE_CHANGED")
)
STREAM_STATES = frozenset(("CONNECTING", "CONNECTED", "DISCONNECTED", "RECONNECTING", "END"))


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None


class RoomBoard:
    """The rooms seen recently, most recently updated last."""

    def __init__(self, max_rooms: int) -> None:
        self._max_rooms = max_rooms
        self._rooms: OrderedDict[str, Room] = OrderedDict()

    def __len__(self) -> int:
        return len(self._rooms)

    def update(self, envelope: dict[str, Any], now: float) -> None:
        """Fold one event, routed at ``now``, into its room's picture."""
        room_id = str(envelope.get("roomid") or "")
        if not room_id:
            return
        data = envelope.get("data")
        if not isinstance(data, dict):
            data = {}
        room = self._rooms.pop(room_id, None) or Room(room_id)
        self._rooms[room_id] = room
        while len(self._rooms) > self._max_rooms:
            self._rooms.popitem(last=False)
        event_type = str(data.get("event_type", ""))
        # Event types are the body's: count the known ones, any other as "other".
        counted = event_type if event_type in COUNTED_TYPES else "other"
        room.counts[counted] = room.counts.get(counted, 0) + 1
        room.last_event_at = now
        room.job_id = str(envelope.get("jobid") or room.job_id)
        job = data.get("job") or {}
        if isinstance(job, dict):
            room.room_name = str(job.get("room_name") or room.room_name)
            room.job_state = _text(job.get("state")) or room.job_state
        message = data.get("message") or {}
        if not isinstance(message, dict):
            message = {}
        if event_type == "RTMP_STREAM_STATE_CHANGE":
            state = _text(message.get("state"))
            state = state if state in STREAM_STATES or state is None else "other"
            if state != room.stream_state:
                room.stream_state, room.stream_state_since = state, now
        elif event_type == "SHOOT_SCRIPT_SWITCH":
            title = _text(message.get("shoot_script_title"))
            number = _text(message.get("shoot_script_sequence_no"))
            room.script = " ".join(part for part in (number, title) if part) or room.script
        elif event_type == "REPLY_COMMAND_FINISH":
            room.last_reply = _text(message.get("reply_id")) or room.last_reply
        elif event_type == "JOB_STATE_CHANGED":
            room.job_state = _text(data.get("state")) or room.job_state
            room.room_name = str(data.get("room_name") or room.room_name)

    def rooms(self, limit: int | None = None) -> list[Room]:
        """The rooms, the most recent event first (at most ``limit``)."""
        newest = reversed(self._rooms.values())
        return list(newest if limit is None else itertools.islice(newest, limit))

    def get(self, room_id: str) -> Room | None:
        return self._rooms.get(room_id)

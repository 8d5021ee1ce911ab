"""Deterministic MetaStudio smart-live jobs: the same ``(count, seed)`` always gives the same jobs.

Every field of ``SmartLiveJob`` is present (``null`` where it does not apply to the job's
state), so clients see the full shape of the provider's object, secrets included
(``live_event_callback_config.key``, RTC ``signature``). Job ``i`` depends only on the seed
and on jobs ``0..i-1``: a larger ``count`` extends a smaller one, and the project id only
appears inside URLs, so any project id yields the same job and room ids.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

JOB_STATES = ("WAITING", "PROCESSING", "SUCCEED", "FAILED", "BLOCKED")
FINISHED_STATES = frozenset({"SUCCEED", "FAILED", "BLOCKED"})
CALLBACK_EVENT_TYPES = ("SHOOT_SCRIPT_SWITCH", "RTMP_STREAM_STATE_CHANGE", "REPLY_COMMAND_FINISH")
DEFAULT_CALLBACK_URL = "https://receiver.example.com/callbacks/metastudio"

_STATE_WEIGHTS = (0.12, 0.62, 0.14, 0.07, 0.05)
_THEMES = (
    "spring sale",
    "新品首发",
    "summer deals",
    "美妆专场",
    "home & kitchen",
    "数码好物",
    "flash sale",
    "零食节",
    "outdoor gear",
    "会员日",
)
_PLATFORMS = (("meituan", "opBiz"), ("douyin", "dy"), ("kuaishou", "ks"), ("taobao", "tb"))
_RTC_USER_TYPES = ("RENDER", "INFERENCE_USER", "PLAYER")
_EPOCH = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
_ROOM_REUSE = 0.35
_KEY_ALPHABET = string.ascii_letters + string.digits


def rfc3339(moment: datetime) -> str:
    """``moment`` as MetaStudio writes times: UTC, whole seconds, ``Z`` suffix."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 time (``Z`` or an offset; a naive time is taken as UTC); ValueError if bad."""
    moment = datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _hex_id(rng: random.Random) -> str:
    return format(rng.getrandbits(128), "032x")


def _token(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(_KEY_ALPHABET) for _ in range(length))


def _room(rng: random.Random, number: int) -> tuple[str, str]:
    return _hex_id(rng), f"Room {number} \u2013 直播间 {rng.choice(_THEMES)}"


def _rtc_room_info(rng: random.Random, room_id: str, created: datetime) -> dict[str, Any]:
    users = [
        {
            "user_type": user_type,
            "user_id": f"{user_type.lower()}-{_hex_id(rng)[:12]}",
            "signature": f"rtc-{_token(rng, 48)}",
            "ctime": int((created + timedelta(days=1)).timestamp()),
        }
        for user_type in _RTC_USER_TYPES[: rng.randint(1, len(_RTC_USER_TYPES))]
    ]
    return {"app_id": _hex_id(rng), "room_id": room_id, "users": users}


def _times(
    rng: random.Random, state: str, created: datetime
) -> tuple[datetime | None, datetime | None, datetime]:
    """``(start, end, last update)`` consistent with the job's state."""
    if state == "WAITING":
        return None, None, created + timedelta(seconds=rng.randint(0, 30))
    start = created + timedelta(seconds=rng.randint(5, 120))
    if state == "PROCESSING":
        return start, None, start + timedelta(seconds=rng.randint(60, 7200))
    end = start + timedelta(seconds=rng.randint(300, 4 * 3600))
    return start, end, end + timedelta(seconds=rng.randint(0, 5))


def _job(
    rng: random.Random,
    project_id: str,
    room: tuple[str, str],
    created: datetime,
    callback_url: str,
    auth_type: str,
) -> dict[str, Any]:
    room_id, room_name = room
    job_id = _hex_id(rng)
    state = rng.choices(JOB_STATES, weights=_STATE_WEIGHTS)[0]
    start, end, updated = _times(rng, state, created)
    duration = ((updated if end is None else end) - start).total_seconds() if start else 0.0
    platform, prefix = rng.choice(_PLATFORMS)
    failed = state == "FAILED"
    return {
        "job_id": job_id,
        "room_id": room_id,
        "room_name": room_name,
        "state": state,
        "duration": duration,
        "start_time": rfc3339(start) if start else None,
        "end_time": rfc3339(end) if end else None,
        "error_info": (
            {"error_code": "MSS.20010056", "error_msg": "insufficient resource quota"}
            if failed
            else None
        ),
        "create_time": rfc3339(created),
        "lastupdate_time": rfc3339(updated),
        "rtc_room_info": _rtc_room_info(rng, room_id, created),
        "live_event_report_url": (
            f"https://metastudio.cn-north-4.myhuaweicloud.com/v1/{project_id}"
            f"/smart-live-jobs/{job_id}/live-event-report?token={_token(rng, 24)}"
        ),
        "live_event_callback_config": {
            "live_event_type_callback_url": callback_url,
            "auth_type": auth_type,
            "key": _token(rng, 32),
            "callback_event_type": list(CALLBACK_EVENT_TYPES),
        },
        "rtc_callback_config": {"rtc_callback_event_type": ["LIVE_PROGRESS"]},
        "stream_duration": max(0.0, round(duration - rng.uniform(0, 30), 1)) if start else 0.0,
        "block_reason": "violation of live content rules" if state == "BLOCKED" else None,
        "cover_url": f"https://obs.example.com/metastudio/covers/{room_id}.jpg",
        "co_streamer_config": {
            "voice_config": {
                "voice_asset_id": _hex_id(rng),
                "speed": rng.choice((90, 100, 110)),
                "pitch": 100,
                "volume": 140,
            },
            "streamer_action": rng.choice(("SILENCE", "VOLUME_DOWN")),
        },
        "live_job_log": {
            "interaction_records_url": f"https://obs.example.com/metastudio/logs/{job_id}.json"
        },
        "relation_live_platform_info": {
            "platform_id": _hex_id(rng)[:16],
            "platform": platform,
            "account": f"{prefix}-{rng.randint(100000, 999999)}",
            "live_id": str(rng.randint(10**11, 10**12 - 1)),
        },
        "used_resource_type": rng.choice(("PERIOD", "ONDEMAND", "ONE_TIME")),
        "is_ai_mark_on": rng.random() < 0.5,
    }


def generate_jobs(
    count: int,
    seed: int | str,
    project_id: str,
    *,
    callback_url: str = DEFAULT_CALLBACK_URL,
    auth_type: str = "MSS_A_HEAD",
) -> list[dict[str, Any]]:
    """``count`` realistic SmartLiveJob dicts, fully determined by ``seed``.

    About a third of the jobs reuse an earlier room, so several jobs may share a room.
    ``callback_url`` and ``auth_type`` only fill ``live_event_callback_config``.
    """
    if count < 0:
        raise ValueError("count must be >= 0")
    rng = random.Random(f"metastudio-sim:{seed}")
    rooms: list[tuple[str, str]] = []
    jobs: list[dict[str, Any]] = []
    created = _EPOCH + timedelta(minutes=rng.randint(0, 60 * 24 * 30))
    for _ in range(count):
        if rooms and rng.random() < _ROOM_REUSE:
            room = rng.choice(rooms)
        else:
            room = _room(rng, len(rooms) + 1)
            rooms.append(room)
        created += timedelta(seconds=rng.randint(30, 5400))
        jobs.append(_job(rng, project_id, room, created, callback_url, auth_type))
    return jobs


def jobs_by_room(jobs: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Jobs grouped by ``room_id``, rooms in order of first appearance, jobs in input order."""
    rooms: dict[str, list[Mapping[str, Any]]] = {}
    for job in jobs:
        rooms.setdefault(str(job["room_id"]), []).append(job)
    return rooms


def live_job_per_room(jobs: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """For each room (first-seen order), the job that is streaming: its newest PROCESSING job,
    else its newest job."""
    chosen: list[Mapping[str, Any]] = []
    for room_jobs in jobs_by_room(jobs).values():
        processing = [job for job in room_jobs if job["state"] == "PROCESSING"]
        candidates = processing or room_jobs
        chosen.append(max(candidates, key=lambda job: str(job["create_time"])))
    return chosen

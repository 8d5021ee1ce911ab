"""Generated jobs: deterministic, complete, realistic."""

from __future__ import annotations

import re
from typing import Any

from receiver.simulator import (
    JOB_STATES,
    generate_jobs,
    jobs_by_room,
    live_job_per_room,
    parse_rfc3339,
)

FIELDS = {
    "job_id",
    "room_id",
    "room_name",
    "state",
    "duration",
    "start_time",
    "end_time",
    "error_info",
    "create_time",
    "lastupdate_time",
    "rtc_room_info",
    "live_event_report_url",
    "live_event_callback_config",
    "rtc_callback_config",
    "stream_duration",
    "block_reason",
    "cover_url",
    "co_streamer_config",
    "live_job_log",
    "relation_live_platform_info",
    "used_resource_type",
    "is_ai_mark_on",
}
HEX32 = re.compile(r"^[0-9a-f]{32}$")


def test_same_seed_same_jobs_and_other_seed_differs() -> None:
    assert generate_jobs(30, 5, "p") == generate_jobs(30, "5", "p")
    assert generate_jobs(30, 5, "p") != generate_jobs(30, 6, "p")


def test_larger_count_extends_smaller_and_project_only_in_urls() -> None:
    small, large = generate_jobs(10, 3, "p1"), generate_jobs(25, 3, "p2")
    assert [j["job_id"] for j in small] == [j["job_id"] for j in large[:10]]
    assert [j["room_id"] for j in small] == [j["room_id"] for j in large[:10]]
    assert "/v1/p1/" in small[0]["live_event_report_url"]


def test_every_documented_field_is_present(jobs: list[dict[str, Any]]) -> None:
    for job in jobs:
        assert set(job) == FIELDS
        assert HEX32.match(job["job_id"])
        assert HEX32.match(job["room_id"])
        assert job["state"] in JOB_STATES
        assert job["room_name"].startswith("Room ")
        assert "直播间" in job["room_name"]
        config = job["live_event_callback_config"]
        assert len(config["key"]) == 32
        assert config["auth_type"] in ("NONE", "MSS_A", "MSS_A_HEAD")
        users = job["rtc_room_info"]["users"]
        assert users
        assert all(user["signature"] for user in users)
        assert job["relation_live_platform_info"]["live_id"].isdigit()
        created = parse_rfc3339(job["create_time"])
        assert parse_rfc3339(job["lastupdate_time"]) >= created
        assert job["create_time"].endswith("Z")


def test_times_follow_the_state(jobs: list[dict[str, Any]]) -> None:
    for job in jobs:
        if job["state"] == "WAITING":
            assert job["start_time"] is None
            assert job["end_time"] is None
        elif job["state"] == "PROCESSING":
            assert job["start_time"]
            assert job["end_time"] is None
        else:
            start, end = parse_rfc3339(job["start_time"]), parse_rfc3339(job["end_time"])
            assert end > start
            assert job["duration"] == (end - start).total_seconds()
        assert (job["error_info"] is not None) == (job["state"] == "FAILED")
        assert (job["block_reason"] is not None) == (job["state"] == "BLOCKED")


def test_state_mix_and_shared_rooms() -> None:
    many = generate_jobs(300, 11, "p")
    states = [job["state"] for job in many]
    assert states.count("PROCESSING") > len(many) / 2
    assert set(states) == set(JOB_STATES)
    rooms = jobs_by_room(many)
    assert len(rooms) < len(many)
    assert any(len(room_jobs) > 1 for room_jobs in rooms.values())


def test_live_job_per_room_prefers_processing() -> None:
    many = generate_jobs(120, 2, "p")
    chosen = live_job_per_room(many)
    assert [job["room_id"] for job in chosen] == list(jobs_by_room(many))
    for job in chosen:
        room_jobs = jobs_by_room(many)[job["room_id"]]
        if any(other["state"] == "PROCESSING" for other in room_jobs):
            assert job["state"] == "PROCESSING"

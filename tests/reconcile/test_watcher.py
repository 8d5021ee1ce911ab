"""The job watcher against a scripted job list."""

from __future__ import annotations

from typing import Any

import pytest

from receiver.config import RouteSettings, Settings
from receiver.enrichment import Enricher
from receiver.envelope import render
from receiver.metastudio.cache import JobCache
from receiver.metastudio.models import ListJobsResponse, SmartLiveJob
from receiver.metrics import Metrics
from receiver.reconcile.callbacks import CallbackLog
from receiver.reconcile.events import CLOUDEVENT_TYPE, JobStateChanged, state_event_id
from receiver.reconcile.settings import ReconcileSettings
from receiver.reconcile.state import MemoryStateStore, SqliteStateStore
from receiver.reconcile.watcher import JobWatcher
from receiver.routing import Router


class Jobs:
    """A tenant's jobs, listed by update time descending as MetaStudio does."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.tick = 0
        self.calls = 0

    def set(self, job_id: str, state: str, **extra: Any) -> None:
        self.tick += 1
        self.jobs[job_id] = {
            "job_id": job_id,
            "room_id": "room-1",
            "state": state,
            "lastupdate_time": f"2026-12-02T10:00:{self.tick:02d}Z",
            "live_event_callback_config": {"key": "s3cret", "live_event_type_callback_url": "x"},
            **extra,
        }

    async def list_jobs(self, query: Any = None, **params: Any) -> ListJobsResponse:
        self.calls += 1
        ordered = sorted(self.jobs.values(), key=lambda j: j["lastupdate_time"], reverse=True)
        page = ordered[params["offset"] : params["offset"] + params["limit"]]
        return ListJobsResponse(
            count=len(ordered), smart_live_jobs=[SmartLiveJob(**j) for j in page]
        )


def watcher(jobs: Jobs, store: Any, events: list[dict[str, Any]], **settings: Any) -> JobWatcher:
    async def append(envelope: dict[str, Any]) -> None:
        events.append(envelope)

    return JobWatcher(ReconcileSettings(**settings), jobs, store, append)


async def test_every_transition_is_one_event_in_order() -> None:
    jobs, events = Jobs(), []  # type: list[dict[str, Any]]
    w = watcher(jobs, MemoryStateStore(), events)
    jobs.set("j1", "WAITING")
    assert await w.sweep() == 0  # first run records without emitting
    for state in ("PROCESSING", "FAILED"):
        jobs.set("j1", state, error_info={"error_code": "E1", "error_msg": "boom"})
        await w.sweep()
    assert await w.sweep() == 0
    assert [(e["data"]["previous_state"], e["data"]["state"]) for e in events] == [
        ("WAITING", "PROCESSING"),
        ("PROCESSING", "FAILED"),
    ]
    last = events[-1]
    assert last["type"] == CLOUDEVENT_TYPE
    assert last["data"]["error_info"]["error_code"] == "E1"
    assert last["id"] == state_event_id("j1", "FAILED", jobs.jobs["j1"]["lastupdate_time"])
    assert "s3cret" not in str(events)
    JobStateChanged.model_validate(last["data"])


async def test_emit_on_first_run_reports_known_jobs() -> None:
    jobs, events = Jobs(), []  # type: list[dict[str, Any]]
    jobs.set("j1", "PROCESSING")
    assert await watcher(jobs, MemoryStateStore(), events, emit_on_first_run=True).sweep() == 1
    assert events[0]["data"]["previous_state"] is None


async def test_a_restart_emits_nothing_twice(tmp_path: Any) -> None:
    jobs, events = Jobs(), []  # type: list[dict[str, Any]]
    path = tmp_path / "state.db"
    jobs.set("j1", "WAITING")
    await watcher(jobs, SqliteStateStore(path), events).sweep()
    jobs.set("j1", "PROCESSING")
    await watcher(jobs, SqliteStateStore(path), events).sweep()
    await watcher(jobs, SqliteStateStore(path), events).sweep()
    assert [e["data"]["state"] for e in events] == ["PROCESSING"]


async def test_paging_stops_past_the_watermark() -> None:
    jobs, events = Jobs(), []  # type: list[dict[str, Any]]
    for n in range(30):
        jobs.set(f"j{n}", "SUCCEED")
    w = watcher(jobs, MemoryStateStore(), events, page_size=5, overlap_seconds=0)
    await w.sweep()
    assert jobs.calls == 6  # empty state: every page
    jobs.calls = 0
    jobs.set("j3", "FAILED")
    assert await w.sweep() == 1
    assert jobs.calls == 1  # only the newest page


def test_the_section_is_in_the_settings() -> None:
    assert Settings().reconcile.enabled is False
    with pytest.raises(ValueError, match="greater than 0"):
        ReconcileSettings(interval_seconds=0)


async def test_routes_select_the_event_by_type_and_enrichment_leaves_it() -> None:
    jobs, events = Jobs(), []  # type: list[dict[str, Any]]
    jobs.set("j1", "PROCESSING")
    await watcher(jobs, MemoryStateStore(), events, emit_on_first_run=True).sweep()
    router = Router(
        [
            RouteSettings(event_types=["RTMP_STREAM_STATE_CHANGE"], sinks=["a"]),
            RouteSettings(event_types=["JOB_STATE_CHANGED"], sinks=["b"]),
        ]
    )
    assert router.sinks_for(events[0]) == ["b"]
    before = dict(events[0]["data"])
    enricher = Enricher(
        JobCache(jobs, ttl_seconds=1, negative_ttl_seconds=1, max_entries=1),
        Settings().enrichment,
        Metrics(),
    )
    await enricher.enrich(events[0])
    assert events[0]["data"] == before


async def test_destination_templates_name_the_job_state() -> None:
    jobs, events = Jobs(), []  # type: list[dict[str, Any]]
    jobs.set("j1", "PROCESSING")
    await watcher(jobs, MemoryStateStore(), events, emit_on_first_run=True).sweep()
    assert render("{event_type}.{room_id}.{state}", events[0]) == (
        "JOB_STATE_CHANGED.room-1.PROCESSING"
    )


async def test_list_calls_for_a_thousand_jobs_with_two_hundred_active() -> None:
    jobs, events = Jobs(), []  # type: list[dict[str, Any]]
    for n in range(1000):
        jobs.jobs[f"j{n}"] = {
            "job_id": f"j{n}",
            "state": "SUCCEED",
            "lastupdate_time": f"2026-12-01T{n // 60:02d}:{n % 60:02d}:00Z",
        }
    w = watcher(jobs, MemoryStateStore(), events, overlap_seconds=0)
    await w.sweep()
    assert jobs.calls == 10
    jobs.calls = 0
    await w.sweep()
    assert jobs.calls == 1
    jobs.calls = 0
    for n in range(200):
        jobs.jobs[f"j{n}"].update(
            state="PROCESSING", lastupdate_time=f"2026-12-02T00:{n // 60:02d}:{n % 60:02d}Z"
        )
    assert await w.sweep() == 200
    assert jobs.calls == 3
    assert "previous_state" in JobStateChanged.model_json_schema()["properties"]


async def test_only_a_job_that_was_live_misses_its_stream_end() -> None:
    jobs, events = Jobs(), []  # type: list[dict[str, Any]]
    log = CallbackLog()

    async def append(envelope: dict[str, Any]) -> None:
        events.append(envelope)

    w = JobWatcher(ReconcileSettings(), jobs, MemoryStateStore(), append, callbacks=log)
    for job in ("never-live", "disconnected", "live"):
        jobs.set(job, "WAITING")
    await w.sweep()
    jobs.set("disconnected", "PROCESSING")
    jobs.set("live", "PROCESSING")
    await w.sweep()
    log.record("disconnected", "RTMP_STREAM_STATE_CHANGE", "DISCONNECTED", 1.0)
    for job in ("never-live", "disconnected", "live"):
        jobs.set(job, "FAILED")
    await w.sweep()
    failed = {e["jobid"]: e["data"]["callbacks"] for e in events if e["data"]["state"] == "FAILED"}
    assert failed["never-live"] == {
        "counts": {},
        "last_stream_state": None,
        "last_stream_state_at": None,
        "missing": [],
    }
    assert failed["disconnected"]["missing"] == []
    assert [m["expected"] for m in failed["live"]["missing"]] == ["RTMP_STREAM_STATE_CHANGE"]
    # Without a callback log the events say nothing of callbacks.
    plain: list[dict[str, Any]] = []
    jobs.set("live", "PROCESSING")
    await watcher(jobs, MemoryStateStore(), plain, emit_on_first_run=True).sweep()
    assert all(e["data"]["callbacks"] is None for e in plain)

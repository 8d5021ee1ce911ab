"""Simulated jobs that change state over time, and callbacks the sender leaves out."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson

from receiver.cli import main
from receiver.intake import build_intake
from receiver.metastudio.client import MetaStudioClient
from receiver.reconcile.runner import build_reconciler
from receiver.simulator import create_api_app, generate_jobs
from receiver.simulator.lifecycle import BLOCK_REASON, ERROR_INFO, Lifecycle, outcome
from receiver.simulator.scenario import live_sessions, skip_callbacks
from tests.reconcile.test_simulated import settings_for
from tests.simulator.conftest import AK, PROJECT_ID, SK, serve


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_outcomes_are_mostly_succeed_and_repeat_per_seed() -> None:
    ends = Counter(outcome(7, f"job-{n}") for n in range(400))
    assert set(ends) == {"SUCCEED", "FAILED", "BLOCKED"}
    assert ends["SUCCEED"] > 250
    assert [outcome(7, f"job-{n}") for n in range(20)] == [
        outcome(7, f"job-{n}") for n in range(20)
    ]


async def test_jobs_go_live_and_end_and_an_admin_call_pins_a_job() -> None:
    clock = Clock()
    lifecycle = Lifecycle(wait_seconds=10, live_seconds=20, seed=7, clock=clock)
    jobs = generate_jobs(30, 3, PROJECT_ID)
    app = create_api_app(jobs, PROJECT_ID, AK, SK, lifecycle=lifecycle)
    sim = app.state.sim
    assert {job["state"] for job in sim.jobs.values()} == {"WAITING"}
    pinned = next(iter(sim.jobs))
    with serve(app) as url:
        async with httpx.AsyncClient(base_url=url) as admin:
            answer = await admin.post(f"/_sim/jobs/{pinned}/state", json={"state": "WAITING"})
            assert answer.status_code == 200
        clock.now = 10.5  # every job has started, none has ended
        lifecycle.advance(sim.jobs, lambda job, state, now: job.update(state=state))
    states = {job_id: job["state"] for job_id, job in sim.jobs.items()}
    assert states.pop(pinned) == "WAITING"
    assert set(states.values()) == {"PROCESSING"}


async def test_the_watcher_sees_every_simulated_transition(tmp_path: Path) -> None:
    clock = Clock()
    lifecycle = Lifecycle(wait_seconds=10, live_seconds=20, seed=7, clock=clock)
    jobs = generate_jobs(12, 3, PROJECT_ID)
    with serve(create_api_app(jobs, PROJECT_ID, AK, SK, lifecycle=lifecycle)) as url:
        settings = settings_for(url, tmp_path)
        intake = build_intake(settings.intake)
        await intake.start()
        client = MetaStudioClient(settings.metastudio)
        try:
            reconciler = build_reconciler(settings, intake, client)
            assert reconciler is not None
            await reconciler.watcher.sweep()  # the first run records every job WAITING
            for now in (10.5, 31.0):  # all live, then all ended
                clock.now = now
                await reconciler.watcher.sweep()
            records = await intake.take(100, 0.5)
        finally:
            await client.aclose()
            await intake.close()
    events: list[dict[str, Any]] = [orjson.loads(r.payload)["data"] for r in records]
    by_job: dict[str, list[tuple[str, str]]] = {}
    for data in events:
        by_job.setdefault(data["job_id"], []).append((data["previous_state"], data["state"]))
    assert len(by_job) == 12
    for job_id, changes in by_job.items():
        end = outcome(7, job_id)
        assert changes == [("WAITING", "PROCESSING"), ("PROCESSING", end)], job_id
    ended = {data["job_id"]: data for data in events if data["state"] != "PROCESSING"}
    for data in ended.values():
        if data["state"] == "FAILED":
            assert data["error_info"] == ERROR_INFO
        if data["state"] == "BLOCKED":
            assert data["block_reason"] == BLOCK_REASON
        assert data["duration"] is not None and data["end_time"]


def test_the_sender_can_leave_chosen_callbacks_out() -> None:
    plan = live_sessions(generate_jobs(20, 1, PROJECT_ID), 1, rooms=5)

    def kinds(p: dict[str, Any]) -> Counter[str]:
        return Counter(
            f"{e.event_type}:{e.message.get('state', '')}" for events in p.values() for e in events
        )

    without_end = kinds(skip_callbacks(plan, ["RTMP_STREAM_STATE_CHANGE:END"]))
    assert "RTMP_STREAM_STATE_CHANGE:END" not in without_end
    assert without_end["RTMP_STREAM_STATE_CHANGE:CONNECTED"] == 5
    no_scripts = kinds(skip_callbacks(plan, ["SHOOT_SCRIPT_SWITCH"]))
    assert not [k for k in no_scripts if k.startswith("SHOOT_SCRIPT_SWITCH")]


def test_the_cli_takes_a_lifecycle_and_refuses_a_bad_one(capsys: Any) -> None:
    import pytest

    with pytest.raises(SystemExit):
        main(["simulate", "api", "--port", "1", "--ak", "a", "--sk", "s", "--lifecycle", "x"])
    assert "WAIT,LIVE" in capsys.readouterr().err

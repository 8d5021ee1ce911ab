"""Missed callbacks end to end: the simulated API over HTTP, callbacks signed as MetaStudio
signs them into the receiver, the watcher's events read back from the jsonl sink."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest

from receiver.app import ReceiverApp
from receiver.config import AuthType, load_settings
from receiver.service import ReceiverService
from receiver.simulator import Target, create_api_app, generate_jobs, send_plan
from receiver.simulator.scenario import Callback, reply_event, rtmp_event
from tests.helpers import KEY, read_jsonl, write_config

from ..simulator.conftest import AK, PROJECT_ID, SK, serve

PORT = 8998
URL = f"http://127.0.0.1:{PORT}/callbacks/metastudio"
RTMP = "RTMP_STREAM_STATE_CHANGE"


@pytest.fixture
def jobs() -> list[dict[str, Any]]:
    jobs = generate_jobs(8, 4, PROJECT_ID)
    for job in jobs:  # nothing live before the test moves it
        job["state"] = "SUCCEED"
    return jobs


@pytest.fixture
def api(jobs: list[dict[str, Any]]) -> Any:
    with serve(create_api_app(jobs, PROJECT_ID, AK, SK)) as url:
        yield url


async def running(tmp_path: Path, api: str, **reconcile: Any) -> ReceiverApp:
    lines = "\n".join(f"{name} = {value}" for name, value in reconcile.items())
    extra = (
        f'[metastudio]\nendpoint = "{api}"\nproject_id = "{PROJECT_ID}"\n'
        f'ak = "{AK}"\nsk = "{SK}"\n'
        f"[reconcile]\nenabled = true\ninterval_seconds = 3600\n{lines}\n"
    )
    app = ReceiverApp(load_settings(write_config(tmp_path, PORT, extra=extra)))
    await app.service.start()
    assert app.service.reconciler is not None
    await app.service.reconciler.stop()  # the test sweeps itself
    return app


@pytest.fixture
async def admin(api: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api) as client:
        yield client


async def move(admin: httpx.AsyncClient, job: dict[str, Any], state: str) -> None:
    answer = await admin.post(f"/_sim/jobs/{job['job_id']}/state", json={"state": state})
    assert answer.status_code == 200


async def deliver(app: ReceiverApp, callbacks: Sequence[Callback]) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport) as client:
        plan = {str(i): [callback] for i, callback in enumerate(callbacks)}
        summary = await send_plan(
            plan, Target(URL, KEY, AuthType.MSS_A_HEAD), client=client, concurrency=1
        )
    assert summary.statuses == {"200": len(callbacks)}


async def state_events(tmp_path: Path, count: int) -> list[dict[str, Any]]:
    async with asyncio.timeout(10):
        while True:
            lines = read_jsonl(tmp_path / "out.jsonl")
            events = [
                e for e in lines if e.get("type") == "com.receiver.reconcile.job.state_changed"
            ]
            if len(events) >= count:
                return [dict(e["data"]) for e in events]  # type: ignore[call-overload]
            await asyncio.sleep(0.02)


def scrape(service: ReceiverService) -> str:
    return generate_latest(service.metrics.registry).decode()


async def test_a_job_ended_without_its_stream_end_is_reported(
    tmp_path: Path, api: str, admin: httpx.AsyncClient, jobs: list[dict[str, Any]]
) -> None:
    missed, ended = jobs[0], jobs[1]
    app = await running(tmp_path, api)
    service = app.service
    reconciler = service.reconciler
    assert reconciler is not None
    try:
        assert await reconciler.sweep_once()  # first run: records only
        for job in (missed, ended):
            await move(admin, job, "PROCESSING")
        assert await reconciler.sweep_once()
        await deliver(
            app,
            [
                rtmp_event(missed, "CONNECTED"),
                rtmp_event(ended, "CONNECTED"),
                rtmp_event(ended, "END"),
            ],
        )
        for job in (missed, ended):
            await move(admin, job, "SUCCEED")
        assert await reconciler.sweep_once()
        events = await state_events(tmp_path, 4)
        metrics = scrape(service)
    finally:
        await service.stop()
    done = {e["job_id"]: e for e in events if e["state"] == "SUCCEED"}
    report = done[missed["job_id"]]["callbacks"]
    assert report["counts"] == {RTMP: 1}
    assert report["last_stream_state"] == "CONNECTED"
    assert report["last_stream_state_at"].endswith("Z")
    (missing,) = report["missing"]
    assert missing["expected"] == RTMP and missing["state"] == ["END", "DISCONNECTED"]
    assert "SUCCEED" in missing["reason"]
    good = done[ended["job_id"]]["callbacks"]
    assert good["counts"] == {RTMP: 2} and good["last_stream_state"] == "END"
    assert good["missing"] == []
    assert f'receiver_reconcile_missed_callbacks_total{{expected="{RTMP}"}} 1.0' in metrics
    # Both jobs' callbacks go to the simulator's default URL: counted once per job.
    assert 'receiver_reconcile_misrouted_jobs_total{reason="other_url"} 2.0' in metrics


async def test_a_silent_processing_job_is_reported_once(
    tmp_path: Path, api: str, admin: httpx.AsyncClient, jobs: list[dict[str, Any]]
) -> None:
    silent, talking = jobs[2], jobs[3]
    for job in (silent, talking):
        await move(admin, job, "PROCESSING")
    app = await running(tmp_path, api, silent_after_seconds=0.3)
    service = app.service
    reconciler = service.reconciler
    assert reconciler is not None
    try:
        assert await reconciler.sweep_once()  # first run: records only
        await deliver(app, [reply_event(talking, random.Random(1))])
        assert await reconciler.sweep_once()
        assert reconciler.watcher.emitted == 0  # not silent for long enough yet
        await asyncio.sleep(0.4)
        assert await reconciler.sweep_once()
        assert await reconciler.sweep_once()
        await state_events(tmp_path, 1)
        await asyncio.sleep(0.2)  # the pipeline would have written a second one by now
        events = await state_events(tmp_path, 1)
        metrics = scrape(service)
    finally:
        await service.stop()
    assert reconciler.watcher.emitted == 1
    (event,) = events
    assert event["job_id"] == silent["job_id"]
    assert (event["previous_state"], event["state"]) == ("PROCESSING", "PROCESSING")
    assert event["callbacks"]["counts"] == {}
    (missing,) = event["callbacks"]["missing"]
    assert missing["state"] == ["CONNECTING", "CONNECTED"]
    assert f'receiver_reconcile_missed_callbacks_total{{expected="{RTMP}"}} 1.0' in metrics


async def test_hostile_job_ids_do_not_grow_the_record(
    tmp_path: Path, api: str, jobs: list[dict[str, Any]]
) -> None:
    app = await running(tmp_path, api, max_callback_jobs=5)
    service = app.service
    forged = [
        rtmp_event({**jobs[0], "job_id": f"forged-{n}\u202e\x00"}, "CONNECTED") for n in range(40)
    ]
    try:
        await deliver(app, forged)
        assert service.callback_log is not None
        assert len(service.callback_log) == 5
    finally:
        await service.stop()

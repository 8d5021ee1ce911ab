"""Three replicas watch the job list as one: each transition once, also when the watching
replica is ``kill -9``ed halfway and another takes over from the state it saved; and the
watcher knows the callbacks another replica took."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import redis.asyncio as aioredis

from receiver.simulator import create_api_app, generate_jobs
from receiver.simulator.api import LIST_JOBS
from receiver.simulator.lifecycle import Lifecycle, outcome
from tests.brokers import NATS_URL, REDIS_URL
from tests.helpers import (
    ReceiverProcess,
    callback_body,
    free_port,
    read_jsonl,
    signed_headers,
)
from tests.replicas.common import broker_stream, file_sink_config, replica_head
from tests.simulator.conftest import AK, PROJECT_ID, SK, serve

JOBS, SEED = 24, 5
WAIT, LIVE = 4.0, 5.0


def config(directory: Path, index: int, port: int, backend: str, stream: str, api: str) -> Path:
    head = replica_head(index, port, backend, stream, "partitions = 6\nack_wait_seconds = 3")
    return file_sink_config(
        directory,
        index,
        head,
        f"""
[metastudio]
endpoint = "{api}"
project_id = "{PROJECT_ID}"
ak = "{AK}"
sk = "{SK}"

[reconcile]
enabled = true
interval_seconds = 0.5
""",
    )


async def leader(backend: str, stream: str) -> str | None:
    """The replica id holding partition 0's lease."""
    if backend == "redis":
        client = aioredis.from_url(REDIS_URL)
        try:
            value = await client.get(f"{stream}:lease:0")
        finally:
            await client.aclose()
        return value.decode() if value else None
    connection = await nats.connect(NATS_URL)
    try:
        kv = await connection.jetstream().key_value(f"{stream}_leases")
        entry = await kv.get("p.0")
        return entry.value.decode() if entry.value else None
    except Exception:
        return None
    finally:
        await connection.close()


@pytest.fixture(params=["redis", "nats"])
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    yield from broker_stream(request.param, "test-reconcile-")


def test_each_transition_once_with_the_watcher_killed(
    tmp_path: Path, backend: tuple[str, str]
) -> None:
    kind, stream = backend
    lifecycle = Lifecycle(WAIT, LIVE, seed=SEED)
    app = create_api_app(generate_jobs(JOBS, SEED, PROJECT_ID), PROJECT_ID, AK, SK)
    sim = app.state.sim
    lifecycle.reset(sim.jobs, lambda job, state, now: job.update(state=state))  # all WAITING
    with serve(app) as api:
        processes = [
            ReceiverProcess(config(tmp_path, i, port, kind, stream, api), port)
            for i, port in enumerate(free_port() for _ in range(3))
        ]
        try:
            for process in processes:
                process.start()
            deadline = time.monotonic() + 20
            while sim.stats.calls[LIST_JOBS] < 3:  # the watcher has recorded the present
                assert time.monotonic() < deadline, "no replica sweeps"
                time.sleep(0.1)
            lifecycle.started = lifecycle.clock()
            sim.lifecycle = lifecycle  # from now on the jobs go live and end
            time.sleep(WAIT * 0.75)
            watching = asyncio.run(leader(kind, stream))
            assert watching is not None
            (victim,) = [p for i, p in enumerate(processes) if f"replica-{i}" == watching]
            victim.kill()  # kill -9, mid-lifecycle
            time.sleep(WAIT + LIVE + 6)  # everything ended; a new watcher took over
        finally:
            for process in processes:
                if process.process is not None and process.process.poll() is None:
                    process.terminate()
    events: list[dict[str, Any]] = [
        line
        for index in range(3)
        for line in read_jsonl(tmp_path / f"out-{index}.jsonl")
        if line.get("type") == "com.receiver.reconcile.job.state_changed"
    ]
    unique_events = {str(e["id"]): e["data"] for e in events}  # redelivery repeats an id
    changes = Counter(
        (d["job_id"], d["previous_state"], d["state"]) for d in unique_events.values()
    )
    assert all(count == 1 for count in changes.values()), changes
    expected = Counter()
    for job_id in sim.jobs:
        expected[(job_id, "WAITING", "PROCESSING")] += 1
        expected[(job_id, "PROCESSING", outcome(SEED, job_id))] += 1
    assert dict(expected - changes) == {}, "transitions never emitted"
    assert dict(changes - expected) == {}, "transitions that did not happen"


def test_the_watcher_knows_the_callbacks_another_replica_took(
    tmp_path: Path, backend: tuple[str, str]
) -> None:
    kind, stream = backend
    lifecycle = Lifecycle(WAIT, LIVE, seed=SEED)
    app = create_api_app(generate_jobs(8, SEED, PROJECT_ID), PROJECT_ID, AK, SK)
    sim = app.state.sim
    lifecycle.reset(sim.jobs, lambda job, state, now: job.update(state=state))
    ports = [free_port() for _ in range(2)]
    with serve(app) as api:
        processes = [
            ReceiverProcess(config(tmp_path, i, port, kind, stream, api), port)
            for i, port in enumerate(ports)
        ]
        try:
            for process in processes:
                process.start()
            deadline = time.monotonic() + 20
            while sim.stats.calls[LIST_JOBS] < 2 or asyncio.run(leader(kind, stream)) is None:
                assert time.monotonic() < deadline, "no replica sweeps"
                time.sleep(0.1)
            watching = asyncio.run(leader(kind, stream))
            (other,) = [port for i, port in enumerate(ports) if f"replica-{i}" != watching]
            lifecycle.started = lifecycle.clock()
            sim.lifecycle = lifecycle
            url = f"http://127.0.0.1:{other}/callbacks/metastudio"
            ended = sorted(sim.jobs)[::2]  # their stream's END goes to the replica not watching
            for job_id in ended:
                body = callback_body(
                    "RTMP_STREAM_STATE_CHANGE",
                    sim.jobs[job_id]["room_id"],
                    job_id=job_id,
                    state="END",
                )
                response = httpx.post(url, content=body, headers=signed_headers(url))
                assert response.json()["status"] == "accepted", response.text
            time.sleep(WAIT + LIVE + 4)  # every job ended and was swept
        finally:
            for process in processes:
                if process.process is not None and process.process.poll() is None:
                    process.terminate()
    reports = {
        line["data"]["job_id"]: line["data"]["callbacks"]
        for index in range(2)
        for line in read_jsonl(tmp_path / f"out-{index}.jsonl")
        if line.get("type") == "com.receiver.reconcile.job.state_changed"
        and line["data"]["state"] in ("SUCCEED", "FAILED", "BLOCKED")
    }
    assert sorted(reports) == sorted(sim.jobs), "every job ended and was reported"
    for job_id, callbacks in reports.items():
        if job_id in ended:
            assert callbacks["missing"] == [], (job_id, callbacks)
            assert callbacks["last_stream_state"] == "END"
        else:
            assert [m["expected"] for m in callbacks["missing"]] == ["RTMP_STREAM_STATE_CHANGE"], (
                job_id,
                callbacks,
            )

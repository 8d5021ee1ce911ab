"""Three replicas watch the job list as one: each transition once, also when the watching
replica is ``kill -9``ed halfway and another takes over from the state it saved."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
import redis.asyncio as aioredis

from receiver.simulator import create_api_app, generate_jobs
from receiver.simulator.api import LIST_JOBS
from receiver.simulator.lifecycle import Lifecycle, outcome
from tests.brokers import NATS, NATS_URL, REDIS, REDIS_URL, require_service, unique
from tests.helpers import KEY, ReceiverProcess, free_port, read_jsonl
from tests.simulator.conftest import AK, PROJECT_ID, SK, serve

JOBS, SEED = 24, 5
WAIT, LIVE = 4.0, 5.0


def config(directory: Path, index: int, port: int, backend: str, stream: str, api: str) -> Path:
    url = NATS_URL if backend == "nats" else REDIS_URL
    text = f"""
[server]
host = "127.0.0.1"
port = {port}
public_url = "http://127.0.0.1:{port}/callbacks/metastudio"
graceful_shutdown_seconds = 2

[auth]
type = ["MSS_A_HEAD"]
keys = ["{KEY}"]

[intake]
backend = "{backend}"
url = "{url}"
stream = "{stream}"
partitions = 6
replica_id = "replica-{index}"
lease_ttl_seconds = 1.5
ack_wait_seconds = 3

[dead_letters]
path = "{directory / f"dead-{index}.db"}"

[metastudio]
endpoint = "{api}"
project_id = "{PROJECT_ID}"
ak = "{AK}"
sk = "{SK}"

[reconcile]
enabled = true
interval_seconds = 0.5

[[sinks]]
name = "file"
type = "jsonl"
path = "{directory / f"out-{index}.jsonl"}"
fsync = false

[[routes]]
sinks = ["file"]
"""
    path = directory / f"receiver-{index}.toml"
    path.write_text(text)
    return path


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


async def drop(backend: str, stream: str) -> None:
    if backend == "redis":
        client = aioredis.from_url(REDIS_URL)
        keys = [key async for key in client.scan_iter(match=f"{stream}*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()
        return
    connection = await nats.connect(NATS_URL)
    for name in (stream, f"KV_{stream}_leases", f"KV_{stream}_seen", f"KV_{stream}_reconcile"):
        with contextlib.suppress(Exception):
            await connection.jetstream().delete_stream(name)
    await connection.close()


@pytest.fixture(params=["redis", "nats"])
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    require_service(request.param, NATS if request.param == "nats" else REDIS)
    stream = unique("TEST_RECONCILE_" if request.param == "nats" else "test-reconcile-")
    yield request.param, stream
    asyncio.run(drop(request.param, stream))


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

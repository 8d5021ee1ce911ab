"""The MetaStudio API failing under load (5 s short, 30 s long): every event still forwarded.

The receiver enriches against the simulator, whose faults are switched on before the
receiver starts (so the cache is cold) and off after the fault window: HTTP 500s
(``fail_rate``), 429 ``APIGW.0308`` (``rate_limit``), timeouts (``latency_ms`` over the
client's timeout), or all three in turn. Every acknowledged event must reach the sink:
those of the window enriched ``unavailable`` (past ``enrichment.deadline_seconds``), later
ones ``ok`` again once the API is back.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from receiver.simulator import (
    TokenBucket,
    create_api_app,
    generate_jobs,
    live_job_per_room,
    parse_rfc3339,
)
from tests.faults.support import (
    LEDGER,
    PATH,
    SIM_AK,
    SIM_PROJECT,
    SIM_SEED,
    SIM_SK,
    Load,
    Profile,
    enrichment_config,
    is_long,
    job_secrets,
    jsonl_ids,
    new_port,
    receiver_config,
    scan_for_secrets,
    serving,
    wait_drained,
    wait_for_ids,
)
from tests.helpers import KEY, read_jsonl
from tests.simulator.conftest import serve

KINDS = ("http500", "throttled", "timeout")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "api_fault" in metafunc.fixturenames:
        kinds = ["mixed", *KINDS] if is_long(metafunc.config) else ["mixed"]
        metafunc.parametrize("api_fault", kinds)


def set_fault(sim: Any, kind: str | None) -> None:
    """Switch the simulator's fault injection (None: healthy)."""
    sim.fail_rate = 1.0 if kind == "http500" else 0.0
    sim.latency_ms = 1500 if kind == "timeout" else 0
    if kind == "throttled":
        bucket = TokenBucket(0.01)
        bucket.take()  # spend the one burst token: from now on every call is 429
        sim.bucket = bucket
    else:
        sim.bucket = None


async def rotate(sim: Any, kind: str, seconds: float) -> None:
    """Hold the fault ``kind`` for ``seconds`` (``mixed``: each kind for a second in turn)."""
    until = time.monotonic() + seconds
    turn = 0
    while time.monotonic() < until:
        set_fault(sim, KINDS[turn % len(KINDS)] if kind == "mixed" else kind)
        turn += 1
        await asyncio.sleep(min(1.0, max(0.0, until - time.monotonic())))


async def test_api_failing_under_load(tmp_path: Path, profile: Profile, api_fault: str) -> None:
    jobs = generate_jobs(40, SIM_SEED, SIM_PROJECT)
    live = [(str(job["room_id"]), str(job["job_id"])) for job in live_job_per_room(jobs)]
    app = create_api_app(jobs, SIM_PROJECT, SIM_AK, SIM_SK, seed=api_fault)
    sim = app.state.sim
    set_fault(sim, "http500" if api_fault == "mixed" else api_fault)
    out = tmp_path / "out.jsonl"
    with serve(app) as sim_url:
        port = new_port()
        config = receiver_config(tmp_path, port, extra=enrichment_config(sim_url))
        async with serving(config, port) as receiver:
            url = f"http://127.0.0.1:{port}{PATH}"
            faulty = Load(receiver.base, url, concurrency=4, pause=0.1, jobs=live, tag="fault")
            faulty.start()
            try:
                await rotate(sim, api_fault, profile.api_fault_seconds)
            finally:
                await faulty.stop()
            statuses_during = dict(sim.stats.statuses)
            set_fault(sim, None)
            healthy_from = time.time()
            await asyncio.sleep(2.5)  # one sweep interval: the cache warms again
            healthy = Load(receiver.base, url, concurrency=2, limit=30, jobs=live, tag="ok")
            await healthy.run()

            async def read() -> list[str]:
                return jsonl_ids(out)

            wanted = set(faulty.acked) | set(healthy.acked)
            await wait_for_ids(read, wanted, timeout=60 + profile.api_fault_seconds)
            await wait_drained(receiver.base)
            logs = receiver.logs()
    envelopes = {str(line["id"]): line for line in read_jsonl(out)}
    lost = wanted - set(envelopes)
    status_of = {
        event: envelopes[event]["data"]["enrichment"]["status"]  # type: ignore[index]
        for event in wanted - lost
    }
    # What counts is when the lookup was decided, not when the callback arrived: a backlog
    # built during the fault may be enriched after the API is back.
    decided_during = {
        event
        for event in status_of
        if parse_rfc3339(envelopes[event]["data"]["enrichment"]["looked_up_at"])  # type: ignore[index]
        < datetime.fromtimestamp(healthy_from, UTC)
    }
    during = Counter(status_of[event] for event in decided_during)
    after = Counter(status_of[event] for event in healthy.acked if event in status_of)
    faulty.record(faults=1)
    healthy.record()
    LEDGER.add(lost=len(lost))
    print(
        f"API {api_fault} for {profile.api_fault_seconds:.0f} s: simulator answered "
        f"{statuses_during}; acknowledged {len(wanted)}, lost {len(lost)}; "
        f"enrichment decided during the fault {dict(during)}, of the events sent after "
        f"{dict(after)}, of all {dict(Counter(status_of.values()))}"
    )
    if api_fault != "timeout":  # a timed-out call is answered 200 after the client left
        assert set(statuses_during) - {"200"}, "the simulator never failed"
    assert during["unavailable"] > 0, "no lookup failed during the fault"
    assert not lost, f"{len(lost)} acknowledged events never reached the sink"
    assert len(faulty.acked) > 10 and len(healthy.acked) == 30
    assert set(during) == {"unavailable"}, during
    assert set(status_of.values()) <= {"ok", "unavailable"}
    assert after["ok"] == 30, after
    assert faulty.server_errors == 0 and healthy.server_errors == 0
    leaks = scan_for_secrets(
        {"receiver log": logs, "sink": out.read_text()}, [KEY, SIM_SK, *job_secrets(jobs)]
    )
    assert not leaks, leaks

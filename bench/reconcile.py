"""Reconcile part: what the job watcher costs in list calls, against the simulated API.

1,000 jobs of which 200 are live (PROCESSING), served by ``receiver simulate api`` over
real HTTP with AK/SK signing. The figures: list calls and wall time of the first sweep, of a
quiet sweep (nothing changed), and of a sweep after all 200 live jobs ended; and the share
of MetaStudio's ~20 requests/s tenant limit that a sweep every ``interval_seconds`` (30 by
default) spends.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import uvicorn
from pydantic import SecretStr

from bench.common import Options
from bench.report import table
from receiver.config import MetaStudioSettings
from receiver.metastudio.client import MetaStudioClient
from receiver.reconcile.settings import ReconcileSettings
from receiver.reconcile.state import MemoryStateStore
from receiver.reconcile.watcher import JobWatcher
from receiver.simulator import create_api_app, generate_jobs
from receiver.simulator.api import LIST_JOBS

PROJECT, AK, SK = (
    "0b3e6f7c58a34f7a9d2c1e4f5a6b7c8d",
    "BENCHACCESSKEY000001",
    "bench-secret-key-0001",
)
JOBS, LIVE = 1000, 200
TENANT_LIMIT = 20.0


def _serve(app: Any) -> tuple[str, uvicorn.Server, threading.Thread]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread


async def _sweeps(url: str, app: Any) -> list[tuple[str, int, float]]:
    settings = MetaStudioSettings(
        endpoint=url, project_id=PROJECT, ak=SecretStr(AK), sk=SecretStr(SK),
        rate_limit_per_second=1000,
    )  # fmt: skip
    sim = app.state.sim

    async def append(_envelope: dict[str, Any]) -> None:
        return None

    rows = []
    async with MetaStudioClient(settings) as client:
        watcher = JobWatcher(ReconcileSettings(), client, MemoryStateStore(), append)
        for name, change in (("first run", None), ("quiet", None), ("200 ended", "SUCCEED")):
            if change:
                live = [j for j in sim.jobs.values() if j["state"] == "PROCESSING"]
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + 5))
                for job in live:
                    job.update(state=change, lastupdate_time=stamp)
            before = sim.stats.calls[LIST_JOBS]
            started = time.perf_counter()
            await watcher.sweep()
            rows.append((name, sim.stats.calls[LIST_JOBS] - before, time.perf_counter() - started))
    return rows


def run(_options: Options | None = None) -> dict[str, Any]:
    """List calls and seconds per sweep for 1,000 jobs with 200 live."""
    jobs = generate_jobs(JOBS, 1, PROJECT)
    for index, job in enumerate(jobs):
        job["state"] = "PROCESSING" if index < LIVE else "SUCCEED"
    app = create_api_app(jobs, PROJECT, AK, SK)
    url, server, thread = _serve(app)
    try:
        rows = asyncio.run(_sweeps(url, app))
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    interval = ReconcileSettings().interval_seconds
    return {
        "sweeps": [{"sweep": n, "list_calls": c, "seconds": s} for n, c, s in rows],
        "interval_seconds": interval,
        "share_of_tenant_limit": max(c for _n, c, _s in rows) / interval / TENANT_LIMIT,
    }


def reconcile_table(results: dict[str, Any]) -> str:
    rows = [[s["sweep"], s["list_calls"], round(s["seconds"], 3)] for s in results["sweeps"]]
    share = results["share_of_tenant_limit"]
    return (
        table(["sweep (1,000 jobs, 200 live)", "list calls", "seconds"], rows)
        + f"\nat most {share:.2%} of a 20 requests/s tenant limit, sweeping every "
        + f"{results['interval_seconds']:.0f} s"
    )

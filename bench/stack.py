"""Parts 2-4 on the full stack: simulator → receiver (enrichment) → NATS JetStream.

The benchmark starts ``receiver simulate api`` (the tenant's live jobs) and a receiver with
the sqlite intake (fsync), enrichment from the simulator, and a NATS sink publishing to a
JetStream stream it created for the run (deleted afterwards). A paced open-loop generator
(:mod:`bench.loadgen`, a subprocess) posts signed callbacks at a fixed rate.

- End to end: for each event, the JetStream stored time (message metadata) minus the
  envelope's ``time`` (the callback's arrival, RFC 3339 ms), and minus the moment the
  generator sent it; ``receiver_intake_depth`` over time; errors of every kind.
- Memory: the receiver's RSS over the run.
- Enrichment: the simulator's list-API calls (``/_sim/stats``) per 10,000 events, and the
  enrichment status of every envelope.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import time
from datetime import datetime
from typing import Any

import httpx
import nats
import orjson
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig

from bench import procs
from bench.common import (
    SIM_AK,
    SIM_SK,
    Options,
    Samples,
    accepted,
    delivered,
    enrichment_section,
    metric,
    nats_sink,
    percentile,
    receiver_config,
    scrape,
    wait_drained,
)
from bench.loadgen import Spec
from bench.pool import PROJECT_ID, tenant_jobs

_API_CALLS = ("list_jobs", "list_room_jobs", "show_job")


async def _sim_calls(client: httpx.AsyncClient, base_url: str) -> dict[str, int]:
    response = await client.get(base_url + "/_sim/stats")
    response.raise_for_status()
    calls: dict[str, int] = response.json()["calls"]
    return calls


async def _load(spec: Spec, name: str, options: Options) -> dict[str, Any]:
    spec_path = options.workdir / f"{name}-loadgen.json"
    out_path = options.workdir / f"{name}-loadgen-result.json"
    spec_path.write_bytes(orjson.dumps(spec.__dict__))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.loadgen",
        str(spec_path),
        str(out_path),
        cwd=procs.ROOT,
        env=procs.clean_env(),
    )
    code = await process.wait()
    if code != 0:
        raise RuntimeError(f"load generator failed with {code}")
    result: dict[str, Any] = orjson.loads(out_path.read_bytes())
    return result


async def _sampler(
    server: procs.Server, interval: float, series: list[dict[str, float]], rss_every: float
) -> None:
    started = time.monotonic()
    last_rss = -math.inf
    async with httpx.AsyncClient(timeout=5.0) as client:
        while True:
            now = time.monotonic() - started
            point: dict[str, float] = {"t": round(now, 1)}
            with contextlib.suppress(httpx.HTTPError):
                samples = await scrape(client, server.base_url)
                point["depth"] = metric(samples, "receiver_intake_depth")
                point["accepted"] = accepted(samples)
                point["delivered"] = delivered(samples)
            if now - last_rss >= rss_every:
                point["rss_mb"] = server.rss_bytes() / 1024 / 1024
                last_rss = now
            series.append(point)
            await asyncio.sleep(interval)


def _stored_at(message: Any) -> float:
    stamp: datetime = message.metadata.timestamp
    return stamp.timestamp()


def _arrival(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def _read_stream(
    url: str, stream: str, subject: str, wanted: dict[str, float]
) -> dict[str, Any]:
    """Latencies and enrichment statuses of the events in ``wanted`` (id → sent at)."""
    client = await nats.connect(url)
    arrival_ms: list[float] = []
    sent_ms: list[float] = []
    statuses: dict[str, int] = {}
    seen = 0
    try:
        js = client.jetstream()
        info = await js.stream_info(stream)
        total = info.state.messages
        sub = await js.pull_subscribe(
            subject,
            stream=stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.NONE,
                deliver_policy=DeliverPolicy.ALL,
                inactive_threshold=60.0,
            ),
        )
        while seen < total:
            try:
                messages = await sub.fetch(batch=1000, timeout=5)
            except nats.errors.TimeoutError:
                break
            for message in messages:
                seen += 1
                envelope = orjson.loads(message.data)
                sent = wanted.get(envelope["id"])
                if sent is None:
                    continue  # warm-up events
                stored = _stored_at(message)
                arrival_ms.append((stored - _arrival(envelope["time"])) * 1000)
                sent_ms.append((stored - sent) * 1000)
                status = envelope["data"]["enrichment"]["status"]
                statuses[status] = statuses.get(status, 0) + 1
        await sub.unsubscribe()
    finally:
        await client.close()
    matched = len(arrival_ms)
    return {
        "stream_messages": seen,
        "measured_events": matched,
        "missing_events": len(wanted) - matched,
        "arrival_to_ack_p50_ms": percentile(arrival_ms, 0.50),
        "arrival_to_ack_p90_ms": percentile(arrival_ms, 0.90),
        "arrival_to_ack_p99_ms": percentile(arrival_ms, 0.99),
        "arrival_to_ack_max_ms": max(arrival_ms, default=math.nan),
        "sent_to_ack_p50_ms": percentile(sent_ms, 0.50),
        "sent_to_ack_p99_ms": percentile(sent_ms, 0.99),
        "enrichment_statuses": statuses,
    }


async def _stream(url: str, name: str, subject: str, create: bool) -> None:
    client = await nats.connect(url)
    try:
        manager = client.jsm()
        if create:
            await manager.add_stream(
                StreamConfig(
                    name=name,
                    subjects=[subject],
                    max_bytes=4 * 1024**3,
                    max_age=3600.0,
                )
            )
        else:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await manager.delete_stream(name)
    finally:
        await client.close()


def _errors(before: Samples, after: Samples) -> dict[str, float]:
    def delta(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    return {
        "rejected": delta("receiver_callbacks_total", outcome="rejected"),
        "duplicates": delta("receiver_callbacks_total", outcome="duplicate"),
        "sink_failures": delta("receiver_sink_failures_total"),
        "dead_letters": delta("receiver_dead_letters_total"),
        "api_errors": sum(
            delta("receiver_metastudio_api_calls_total", operation=op)
            - delta("receiver_metastudio_api_calls_total", operation=op, outcome="ok")
            for op in _API_CALLS
        ),
    }


async def run(
    options: Options,
    name: str,
    *,
    duration: float,
    rss_every: float,
    read_stream: bool,
) -> dict[str, Any]:
    """One stack run of ``duration`` seconds at ``options.rate``; every measurement."""
    workdir = options.workdir / name
    workdir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d%H%M%S")
    stream = f"BENCH_{name.upper()}_{stamp}"
    prefix = f"bench.{stamp}.{name}"
    jobs_count, jobs = tenant_jobs(options.live_jobs)
    active = sum(1 for job in jobs if job["state"] in ("WAITING", "PROCESSING"))
    sim = procs.start_simulator(
        procs.free_port(), jobs_count, workdir / "simulator.log", SIM_AK, SIM_SK, PROJECT_ID
    )
    await _stream(options.nats_url, stream, prefix + ".>", create=True)
    port = procs.free_port()
    config = receiver_config(
        workdir / "receiver.toml",
        workdir,
        port,
        sinks=nats_sink(options.nats_url, prefix + ".{event_type}.{room_id}", stream),
        routes=["nats"],
        enrichment=enrichment_section(sim.port),
    )
    receiver: procs.Server | None = None
    result: dict[str, Any] = {
        "rate": options.rate,
        "duration_s": duration,
        "live_jobs": options.live_jobs,
        "tenant_jobs": jobs_count,
        "active_jobs": active,
    }
    try:
        receiver = procs.start_receiver(config, port, workdir / "receiver.log")
        result["rss_start_mb"] = receiver.rss_bytes() / 1024 / 1024
        async with httpx.AsyncClient(timeout=5.0) as client:
            # The cache is warm once the first sweep has read every active job's page.
            pages = max(1, math.ceil(active / 100))
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                samples = await scrape(client, receiver.base_url)
                swept = metric(
                    samples, "receiver_metastudio_api_calls_total", operation="list_jobs"
                )
                if swept >= pages:
                    break
                await asyncio.sleep(0.2)
            result["sweep_calls_at_start"] = swept
            if options.warmup > 0:
                warm = Spec(
                    receiver.port,
                    options.rate,
                    options.warmup,
                    options.connections,
                    options.live_jobs,
                    f"{name}-warmup-{stamp}",
                )
                await _load(warm, f"{name}-warmup", options)
                await wait_drained(receiver.base_url, 120)
            result["rss_after_warmup_mb"] = receiver.rss_bytes() / 1024 / 1024
            calls_before = await _sim_calls(client, sim.base_url)
            before = await scrape(client, receiver.base_url)
            series: list[dict[str, float]] = []
            cpu_before = receiver.cpu_seconds()
            sampler = asyncio.create_task(_sampler(receiver, 1.0, series, rss_every))
            spec = Spec(
                receiver.port,
                options.rate,
                duration,
                options.connections,
                options.live_jobs,
                f"{name}-{stamp}",
                record_ids=read_stream,
            )
            load = await _load(spec, name, options)
            drained, drain_s = await wait_drained(receiver.base_url, 300)
            await asyncio.sleep(1.0)
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            cpu = receiver.cpu_seconds() - cpu_before
            after = await scrape(client, receiver.base_url)
            calls_after = await _sim_calls(client, sim.base_url)
        events = delivered(after) - delivered(before)
        calls = {op: calls_after.get(op, 0) - calls_before.get(op, 0) for op in _API_CALLS}
        depths = [point["depth"] for point in series if "depth" in point]
        result.update(
            {
                "scheduled": load["scheduled"],
                "completed": load["completed"],
                "ok_2xx": load["ok"],
                "statuses": load["statuses"],
                "client_errors": load["errors"],
                "achieved_rate": load["achieved_rate"],
                "max_schedule_lag_ms": load["max_schedule_lag_ms"],
                "http_p50_ms": load["http_p50_ms"],
                "http_p99_ms": load["http_p99_ms"],
                "accepted": accepted(after) - accepted(before),
                "delivered": events,
                "drained": drained,
                "drain_s": drain_s,
                "errors": _errors(before, after),
                "depth_max": max(depths, default=math.nan),
                "depth_last": depths[-1] if depths else math.nan,
                "series": series,
                "cpu_s": cpu,
                "cpu_per_1k_events": cpu / events * 1000 if events else math.nan,
                "api_calls": calls,
                "api_calls_per_10k": sum(calls.values()) / events * 10_000 if events else math.nan,
                "enrichment_metric": {
                    status: metric(after, "receiver_enrichment_total", status=status)
                    - metric(before, "receiver_enrichment_total", status=status)
                    for status in ("ok", "not_found", "mismatch", "unavailable")
                },
                "rss_end_mb": receiver.rss_bytes() / 1024 / 1024,
            }
        )
        if read_stream:
            wanted = {event_id: sent for event_id, sent in load["sent_at"]}
            result.update(await _read_stream(options.nats_url, stream, prefix + ".>", wanted))
    finally:
        if receiver is not None:
            result["receiver_exit_code"] = receiver.stop()
        sim.stop()
        await _stream(options.nats_url, stream, prefix + ".>", create=False)
    return result

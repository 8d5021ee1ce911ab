"""Part 1, ingest: wrk against the bare Starlette baseline, then against the receiver.

Same machine, same run, one after the other, one uvicorn worker each, the same signed
request pool shape (a fresh pool per server, signed just before its run). The receiver
runs at full durability (sqlite intake, fsync) with the jsonl sink (fsync), metrics and
its JSON access log (to a file). CPU seconds are read from /proc for the server process
and its descendants; for the receiver they include draining the pipeline after the run,
so the cost of every accepted event is counted.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from bench import procs
from bench.common import (
    Options,
    accepted,
    count_lines,
    jsonl_sink,
    metric,
    receiver_config,
    run_wrk,
    scrape_sync,
    wait_drained,
)
from bench.pool import CALLBACK_PATH, write_lua

# Signed times per pool: a pool of N bodies serves N x passes requests.
_PASSES = 80


def measure(
    server: procs.Server, options: Options, workdir: Path, name: str, receiver: bool
) -> dict[str, Any]:
    """Warm up, then wrk for ``options.duration``; with ``receiver``, drain and count too."""
    url = server.base_url + CALLBACK_PATH
    threads = options.threads
    if options.warmup > 0:
        warm = workdir / f"{name}-warmup.lua"
        write_lua(
            warm, bodies=2000, passes=_PASSES, threads=threads, now=time.time(), salt=f"{name}-w"
        )
        run_wrk(
            url, warm, duration=options.warmup, concurrency=options.concurrency, threads=threads
        )
        if receiver:
            asyncio.run(wait_drained(server.base_url, 120))
    script = workdir / f"{name}.lua"
    write_lua(
        script,
        bodies=options.pool,
        passes=_PASSES,
        threads=threads,
        now=time.time(),
        salt=name,
    )
    before = scrape_sync(server.base_url) if receiver else []
    cpu_before = server.cpu_seconds()
    started = time.monotonic()
    result = run_wrk(
        url, script, duration=options.duration, concurrency=options.concurrency, threads=threads
    )
    cpu_during = server.cpu_seconds() - cpu_before
    wall = time.monotonic() - started
    ok = result["requests"] - result["status_errors"]
    out: dict[str, Any] = {
        "requests": result["requests"],
        "ok_2xx": ok,
        "non_2xx": result["status_errors"],
        "socket_errors": result["connect_errors"]
        + result["read_errors"]
        + result["write_errors"]
        + result["timeouts"],
        "seconds": result["duration_us"] / 1e6,
        "rps": ok / (result["duration_us"] / 1e6),
        "p50_ms": result["p50_us"] / 1000,
        "p90_ms": result["p90_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "p999_ms": result["p999_us"] / 1000,
        "max_ms": result["max_us"] / 1000,
        "cpu_s_during": cpu_during,
        "wall_s": wall,
        "rss_mb": server.rss_bytes() / 1024 / 1024,
        "wrk_output": result["output"],
    }
    cpu_total = cpu_during
    if receiver:
        drained, waited = asyncio.run(wait_drained(server.base_url, 300))
        cpu_total = server.cpu_seconds() - cpu_before
        after = scrape_sync(server.base_url)
        out["drained"] = drained
        out["drain_s"] = waited
        out["accepted"] = accepted(after) - accepted(before)
        out["duplicates"] = metric(after, "receiver_callbacks_total", outcome="duplicate") - metric(
            before, "receiver_callbacks_total", outcome="duplicate"
        )
        out["rejected"] = metric(after, "receiver_callbacks_total", outcome="rejected") - metric(
            before, "receiver_callbacks_total", outcome="rejected"
        )
    out["cpu_s"] = cpu_total
    out["req_per_cpu_s"] = ok / cpu_total if cpu_total else 0.0
    return out


def run(options: Options) -> dict[str, Any]:
    """Baseline first, then the receiver; the figures of both and the ratios b/a."""
    workdir = options.workdir / "ingest"
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}

    port = procs.free_port()
    baseline = procs.start_baseline(port, workdir / "baseline.log")
    try:
        results["baseline"] = measure(baseline, options, workdir, "baseline", receiver=False)
    finally:
        baseline.stop()

    port = procs.free_port()
    events = workdir / "events.jsonl"
    config = receiver_config(
        workdir / "receiver.toml",
        workdir,
        port,
        sinks=jsonl_sink(events),
        routes=["jsonl"],
    )
    receiver = procs.start_receiver(config, port, workdir / "receiver.log")
    try:
        lines_before = count_lines(events)
        total_before = accepted(scrape_sync(receiver.base_url))
        measured = measure(receiver, options, workdir, "receiver", receiver=True)
        total_after = accepted(scrape_sync(receiver.base_url))
        lines = count_lines(events)
        # Every accepted event is one jsonl line; wrk's 2xx may trail by those in flight
        # when it stopped (at most one per connection).
        measured["jsonl_lines"] = lines - lines_before
        measured["jsonl_lines_total"] = lines
        measured["accepted_total"] = total_after
        measured["jsonl_matches_accepted"] = lines == total_after - total_before + lines_before
        measured["accepted_minus_ok"] = measured["accepted"] - measured["ok_2xx"]
        measured["verified"] = (
            measured["jsonl_matches_accepted"]
            and 0 <= measured["accepted_minus_ok"] <= options.concurrency
            and measured["duplicates"] == 0
        )
        measured["access_log_lines"] = count_lines(workdir / "receiver.log")
        results["receiver"] = measured
    finally:
        results["receiver_exit_code"] = receiver.stop()

    a, b = results["baseline"], results["receiver"]
    results["ratios"] = {
        "rps": b["rps"] / a["rps"] if a["rps"] else 0.0,
        "p50": b["p50_ms"] / a["p50_ms"] if a["p50_ms"] else 0.0,
        "p99": b["p99_ms"] / a["p99_ms"] if a["p99_ms"] else 0.0,
        "req_per_cpu_s": b["req_per_cpu_s"] / a["req_per_cpu_s"] if a["req_per_cpu_s"] else 0.0,
    }
    return results

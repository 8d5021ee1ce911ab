"""Routing part: the CPU cost of route conditions, in process (no server, no I/O).

The envelopes are the ingest pool's callbacks (script switches, replies, RTMP state
changes), enriched as the end-to-end run has them. Each router picks the sinks of every
envelope in turn; the figure is wall time per event on one core, ``Router.sinks_for`` only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from bench.common import Options
from bench.pool import Bodies, live_jobs
from bench.report import table
from receiver.config import RouteSettings
from receiver.envelope import build_envelope
from receiver.events import parse_callback
from receiver.routing import Router

# Ten conditions of the kinds a consumer writes: state, event type, room, job, regex.
CONDITIONS = (
    'data.message.state == "DISCONNECTED"',
    'data.message.state in ["END", "DISCONNECTED", "RECONNECTING"]',
    'data.event_type == "REPLY_COMMAND_FINISH" && has(data.message.reply_id)',
    'roomid.matches("^[0-9a-f]{8}")',
    'data.enrichment.status == "ok" && data.job.state == "PROCESSING"',
    'type.endsWith(".SHOOT_SCRIPT_SWITCH")',
    'has(data.message.shoot_script_sequence_no) && data.message.shoot_script_sequence_no != "0"',
    '!(data.message.state == "CONNECTED")',
    'knowntype && subject != ""',
    'data.job.room_name.startsWith("bench") || data.message.state == "END"',
)


def routers() -> dict[str, tuple[str, Router]]:
    """The routers compared: what each holds, and the router."""
    catch_all = [RouteSettings(sinks=["out"])]
    patterns = [
        RouteSettings(event_types=[f"RTMP_*{i}", "SHOOT_*"], sinks=[f"s{i}"]) for i in range(10)
    ]
    conditional = [RouteSettings(condition=c, sinks=[f"s{i}"]) for i, c in enumerate(CONDITIONS)]
    return {
        "catch-all": ("one route, no condition (the default)", Router(catch_all)),
        "patterns": ("10 routes with event_types patterns", Router(patterns)),
        "conditions": ("10 routes with a CEL condition", Router(conditional)),
    }


def envelopes(count: int) -> list[dict[str, Any]]:
    """``count`` enriched envelopes of the ingest pool's callbacks."""
    jobs = live_jobs(50)
    by_room = {live.room_id: live.job for live in jobs}
    bodies = Bodies(jobs, "routing")
    made = []
    for index in range(count):
        callback = parse_callback(next(bodies))
        envelope = build_envelope(callback, f"{index:032x}", time.time(), "bench")
        envelope["data"]["job"] = by_room.get(callback.room_id)
        envelope["data"]["enrichment"] = {"status": "ok", "source": "cache"}
        made.append(envelope)
    return made


def run(options: Options) -> dict[str, Any]:
    """Microseconds per event of each router over the same envelopes."""
    events = envelopes(500 if options.quick else 2000)
    results: dict[str, Any] = {}
    for name, (what, router) in routers().items():
        for envelope in events[:100]:  # warm-up
            router.sinks_for(envelope)
        rounds = 0
        started = time.perf_counter()
        while True:
            for envelope in events:
                router.sinks_for(envelope)
            rounds += 1
            elapsed = time.perf_counter() - started
            if elapsed >= (1.0 if options.quick else 3.0):
                break
        results[name] = {"what": what, "us_per_event": elapsed / (rounds * len(events)) * 1e6}
    base = results["catch-all"]["us_per_event"]
    for item in results.values():
        item["added_us"] = item["us_per_event"] - base
    return results


def routing_table(results: dict[str, Any]) -> str:
    rows: Sequence[Sequence[Any]] = [
        [name, item["what"], item["us_per_event"], item["added_us"]]
        for name, item in results.items()
    ]
    return table(["router", "routes", "us/event", "added us/event"], rows)

"""Part 5, breakdown: where the receiver's CPU per request goes, under the ingest load.

The ingest part's wrk load against four servers, one after the other, each adding one
stage to the one before; a stage costs the difference in CPU microseconds per request:

1. ``bare`` (``bench/variants.py``): read, verified, parsed, made an envelope, answered,
   counted and logged, stored nowhere;
2. ``intake``: ``receiver serve`` with the sqlite intake (group commit, no fdatasync)
   and no sink: an event is stored, then acknowledged and deleted without a delivery;
3. ``deliver``: with the jsonl sink, still no fdatasync;
4. ``full``: the receiver of the ingest part (the intake's and the sink's fdatasync on).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import procs
from bench.common import Options, jsonl_sink, receiver_config
from bench.ingest import measure

VARIANTS = (
    ("bare", "verify, parse, envelope, answer, metrics, access log"),
    ("intake", "+ sqlite intake (group commit, no fdatasync), ack, delete"),
    ("deliver", "+ pipeline and jsonl sink (no fdatasync)"),
    ("full", "+ fdatasync of the intake's WAL and of the jsonl file"),
)


def _config(workdir: Path, port: int, variant: str) -> Path:
    sinks = jsonl_sink(workdir / f"{variant}.jsonl") if variant in ("deliver", "full") else ""
    routes = ["jsonl"] if sinks else []
    path = receiver_config(
        workdir / f"{variant}.toml", workdir / variant, port, sinks=sinks, routes=routes
    )
    text = path.read_text(encoding="utf-8")
    if not sinks:  # top-level keys come before the first table
        text = "sinks = []\nroutes = []\n" + text
    if variant != "full":
        text = text.replace("fsync = true", "fsync = false")
    path.write_text(text, encoding="utf-8")
    return path


def run(options: Options) -> dict[str, Any]:
    """Each variant's figures, in order, with the CPU it adds per request."""
    workdir = options.workdir / "breakdown"
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    previous = 0.0
    for variant, adds in VARIANTS:
        port = procs.free_port()
        config = _config(workdir, port, variant)
        log = workdir / f"{variant}.log"
        if variant == "bare":
            argv = [procs.python(), "-m", "bench.variants", str(config)]
            server = procs.start(variant, argv, port, log, "/readyz")
        else:
            server = procs.start_receiver(config, port, log)
        try:
            measured = measure(server, options, workdir, variant, receiver=variant != "bare")
        finally:
            measured["exit_code"] = server.stop()
        cpu_us = 1e6 / measured["req_per_cpu_s"] if measured["req_per_cpu_s"] else 0.0
        measured.update(adds=adds, cpu_us_per_request=cpu_us, added_us=cpu_us - previous)
        measured.pop("wrk_output", None)
        previous = cpu_us
        results[variant] = measured
    return results

"""``python -m bench``: run the selected parts, print the tables and targets, write JSON."""

from __future__ import annotations

import argparse
import asyncio
import math
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench import breakdown, ingest, reconcile, routing, stack
from bench.common import Options, wrk_available
from bench.report import RESULTS, Target, machine, machine_line, table, targets_table, write_json

PARTS = ("ingest", "breakdown", "e2e", "memory", "enrichment", "routing", "reconcile")
# RSS may grow this much from the end of the warm-up to the end of the run and still be flat.
RSS_MARGIN_MB = 10.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks of the receiver against a bare Starlette baseline.",
    )
    parser.add_argument(
        "--only",
        default=",".join(PARTS),
        help=f"comma-separated parts to run (default: all of {','.join(PARTS)})",
    )
    parser.add_argument("--quick", action="store_true", help="short runs (about 2 minutes)")
    parser.add_argument("--duration", type=float, help="ingest seconds per server (25; quick 8)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds before each run (3; quick 2)")
    parser.add_argument("--concurrency", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument("--pool", type=int, default=20_000, help="unique bodies in the wrk pool")
    parser.add_argument("--rate", type=float, default=2000.0, help="paced events/s (2000)")
    parser.add_argument("--e2e-duration", type=float, help="end-to-end seconds (30; quick 10)")
    parser.add_argument("--memory-duration", type=float, help="memory seconds (300; quick 20)")
    parser.add_argument("--memory-interval", type=float, help="RSS sample period (10; quick 2)")
    parser.add_argument("--live-jobs", type=int, default=200, help="live jobs in the simulator")
    parser.add_argument("--connections", type=int, default=32, help="paced generator connections")
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    return parser


def options_from(args: argparse.Namespace, workdir: Path) -> Options:
    quick = bool(args.quick)
    parts = tuple(part.strip() for part in args.only.split(",") if part.strip())
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise SystemExit(f"unknown part(s) {unknown}; choose from {','.join(PARTS)}")

    def pick(value: float | None, full: float, short: float) -> float:
        return value if value is not None else (short if quick else full)

    return Options(
        parts=parts,
        duration=pick(args.duration, 25, 8),
        warmup=pick(args.warmup, 3, 2),
        concurrency=args.concurrency,
        threads=args.threads,
        pool=args.pool,
        rate=args.rate,
        e2e_duration=pick(args.e2e_duration, 30, 10),
        memory_duration=pick(args.memory_duration, 300, 20),
        memory_interval=pick(args.memory_interval, 10, 2),
        live_jobs=args.live_jobs,
        connections=args.connections,
        nats_url=args.nats_url,
        workdir=workdir,
        quick=quick,
    )


def ingest_table(results: Mapping[str, Any]) -> str:
    a, b = results["baseline"], results["receiver"]
    ratio = results["ratios"]
    rows: list[Sequence[Any]] = []
    for label, item in (("a baseline (Starlette)", a), ("b receiver (fsync)", b)):
        rows.append(
            [
                label,
                item["ok_2xx"],
                item["non_2xx"] + item["socket_errors"],
                item["rps"],
                item["p50_ms"],
                item["p99_ms"],
                item["cpu_s"],
                item["req_per_cpu_s"],
                item["rss_mb"],
            ]
        )
    rows.append(
        [
            "ratio b/a",
            None,
            None,
            ratio["rps"],
            ratio["p50"],
            ratio["p99"],
            None,
            ratio["req_per_cpu_s"],
            None,
        ]
    )
    head = ["server", "2xx", "errors", "req/s", "p50 ms", "p99 ms", "CPU s", "req/CPU-s", "RSS MB"]
    check = (
        f"verified: wrk 2xx {b['ok_2xx']:,}, receiver accepted {b['accepted']:,} "
        f"(+{b['accepted_minus_ok']} in flight when wrk stopped), duplicates {b['duplicates']:,}, "
        f"jsonl lines = accepted: {b['jsonl_matches_accepted']} -> "
        f"{'OK' if b['verified'] else 'MISMATCH'}; drained in {b['drain_s']:.1f} s"
    )
    return table(head, rows) + "\n" + check


def breakdown_table(results: Mapping[str, Any]) -> str:
    rows = [
        [
            variant,
            item["adds"],
            item["rps"],
            item["p99_ms"],
            item["cpu_us_per_request"],
            item["added_us"],
        ]
        for variant, item in results.items()
    ]
    head = ["server", "what it does", "req/s", "p99 ms", "CPU us/req", "added us/req"]
    return table(head, rows)


def stack_table(results: Mapping[str, Any], what: str) -> str:
    rows = [
        [
            "events/s (target rate, achieved)",
            f"{results['rate']:.0f} / {results['achieved_rate']:.0f}",
        ],
        ["callbacks 2xx / scheduled", f"{results['ok_2xx']:,} / {results['scheduled']:,}"],
        [
            "HTTP p50 / p99 ms (from schedule)",
            f"{results['http_p50_ms']:.2f} / {results['http_p99_ms']:.2f}",
        ],
        ["intake depth max / last", f"{results['depth_max']:.0f} / {results['depth_last']:.0f}"],
        ["errors", _errors_text(results)],
        ["receiver CPU s per 1k events", f"{results['cpu_per_1k_events']:.3f}"],
    ]
    if "arrival_to_ack_p50_ms" in results:
        rows.insert(
            2,
            [
                "arrival -> JetStream ack p50 / p99 ms",
                f"{results['arrival_to_ack_p50_ms']:.2f} / {results['arrival_to_ack_p99_ms']:.2f}",
            ],
        )
        rows.insert(
            3,
            [
                "client send -> JetStream ack p50 / p99 ms",
                f"{results['sent_to_ack_p50_ms']:.2f} / {results['sent_to_ack_p99_ms']:.2f}",
            ],
        )
        rows.append(["events found in the stream", f"{results['measured_events']:,}"])
    rows.append(["enrichment (receiver metric)", _statuses(results["enrichment_metric"])])
    if "enrichment_statuses" in results:
        rows.append(["enrichment (envelopes)", _statuses(results["enrichment_statuses"])])
    rows.append(
        [
            "list-API calls per 10k events",
            f"{results['api_calls_per_10k']:.1f} ({_statuses(results['api_calls'])})",
        ]
    )
    return f"{what}\n" + table(["measure", "value"], rows)


def _statuses(counts: Mapping[str, float]) -> str:
    return ", ".join(f"{key} {value:,.0f}" for key, value in counts.items() if value) or "none"


def _errors_text(results: Mapping[str, Any]) -> str:
    errors = dict(results["errors"])
    non_2xx = results["completed"] - results["ok_2xx"]
    client = sum(results["client_errors"].values())
    parts = [f"non-2xx {non_2xx}", f"connection {client}"]
    parts += [f"{key} {value:.0f}" for key, value in errors.items()]
    return ", ".join(parts)


def memory_series(results: Mapping[str, Any]) -> str:
    points = [
        (p["t"], p["rss_mb"], p.get("depth", math.nan)) for p in results["series"] if "rss_mb" in p
    ]
    rows = [[f"{t:.0f}", rss, depth] for t, rss, depth in points]
    head = (
        f"RSS at start {results['rss_start_mb']:.1f} MB, after warm-up "
        f"{results['rss_after_warmup_mb']:.1f} MB, end {results['rss_end_mb']:.1f} MB"
    )
    return head + "\n" + table(["t s", "RSS MB", "depth"], rows)


def evaluate(results: Mapping[str, Any]) -> list[Target]:
    targets: list[Target] = []
    if "ingest" in results:
        r = results["ingest"]["ratios"]
        b, a = results["ingest"]["receiver"], results["ingest"]["baseline"]
        targets += [
            Target(
                "ingest",
                "throughput b/a",
                ">= 1.2 (stretch 1.5)",
                f"{r['rps']:.2f}",
                r["rps"] >= 1.2,
            ),
            Target(
                "ingest",
                "p99 b/a",
                "<= 1.5",
                f"{r['p99']:.2f} ({b['p99_ms']:.1f} vs {a['p99_ms']:.1f} ms)",
                r["p99"] <= 1.5,
            ),
            Target(
                "ingest",
                "req per CPU-s b/a",
                ">= 1.0",
                f"{r['req_per_cpu_s']:.2f}",
                r["req_per_cpu_s"] >= 1.0,
            ),
            Target(
                "ingest",
                "2xx = stored events",
                "verified",
                "yes" if b["verified"] else "no",
                bool(b["verified"]),
            ),
        ]
    if "e2e" in results:
        e = results["e2e"]
        errors = (
            sum(e["errors"].values())
            + (e["completed"] - e["ok_2xx"])
            + sum(e["client_errors"].values())
        )
        rate_ok = e["achieved_rate"] >= 0.97 * e["rate"]
        targets += [
            Target(
                "e2e",
                "sustained rate",
                f">= {e['rate']:.0f}/s",
                f"{e['achieved_rate']:.0f}/s",
                rate_ok,
            ),
            Target(
                "e2e",
                "arrival->ack p50",
                "<= 5 ms",
                f"{e['arrival_to_ack_p50_ms']:.2f} ms",
                e["arrival_to_ack_p50_ms"] <= 5,
            ),
            Target(
                "e2e",
                "arrival->ack p99",
                "<= 50 ms",
                f"{e['arrival_to_ack_p99_ms']:.2f} ms",
                e["arrival_to_ack_p99_ms"] <= 50,
            ),
            Target(
                "e2e",
                "depth bounded",
                "drains, max < 1 s of events",
                f"max {e['depth_max']:.0f}, last {e['depth_last']:.0f}",
                bool(e["drained"]) and e["depth_max"] < e["rate"],
            ),
            Target(
                "e2e",
                "no errors",
                "0",
                f"{errors:.0f}, missing {e['missing_events']}",
                errors == 0 and e["missing_events"] == 0,
            ),
        ]
    if "memory" in results:
        m = results["memory"]
        flat = m["rss_end_mb"] <= m["rss_after_warmup_mb"] + RSS_MARGIN_MB
        peak = max([p["rss_mb"] for p in m["series"] if "rss_mb" in p] + [m["rss_end_mb"]])
        targets += [
            Target("memory", "RSS", "<= 150 MB", f"peak {peak:.1f} MB", peak <= 150),
            Target(
                "memory",
                "RSS flat",
                f"end <= warm-up + {RSS_MARGIN_MB:.0f} MB",
                f"{m['rss_after_warmup_mb']:.1f} -> {m['rss_end_mb']:.1f} MB",
                flat,
            ),
        ]
        # The replay window (ids of the last ~2 minutes) fills during the first minutes: the
        # second half of a long run shows whether anything else grows.
        half = [p["rss_mb"] for p in m["series"] if "rss_mb" in p and p["t"] >= m["duration_s"] / 2]
        if half:
            targets.append(
                Target(
                    "memory",
                    "RSS flat, 2nd half",
                    f"end <= mid-run + {RSS_MARGIN_MB:.0f} MB",
                    f"{half[0]:.1f} -> {m['rss_end_mb']:.1f} MB",
                    m["rss_end_mb"] <= half[0] + RSS_MARGIN_MB,
                )
            )
    if "enrichment" in results:
        n = results["enrichment"]
        statuses = n.get("enrichment_statuses") or n["enrichment_metric"]
        all_ok = sum(v for k, v in statuses.items() if k != "ok") == 0
        targets += [
            Target(
                "enrichment",
                "list calls per 10k events",
                "<= 100",
                f"{n['api_calls_per_10k']:.1f}",
                n["api_calls_per_10k"] <= 100,
            ),
            Target("enrichment", "every event enriched ok", "all ok", _statuses(statuses), all_ok),
        ]
    return targets


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    workdir = args.out / f"work-{time.strftime('%Y%m%dT%H%M%S')}"
    options = options_from(args, workdir)
    if {"ingest", "breakdown"} & set(options.parts) and not wrk_available():
        print(
            "wrk is not installed (apt-get install wrk): ingest and breakdown need it",
            file=sys.stderr,
        )
        return 2
    workdir.mkdir(parents=True, exist_ok=True)
    info = machine()
    print(machine_line(info), flush=True)
    results: dict[str, Any] = {
        "machine": info,
        "options": {**options.__dict__, "workdir": str(workdir)},
    }
    try:
        if "ingest" in options.parts:
            print(
                f"\n== ingest: wrk -c {options.concurrency} -t {options.threads}, "
                f"{options.duration:.0f} s per server",
                flush=True,
            )
            results["ingest"] = ingest.run(options)
            print(ingest_table(results["ingest"]), flush=True)
        if "breakdown" in options.parts:
            print(
                f"\n== breakdown: the ingest load, {options.duration:.0f} s against each stage",
                flush=True,
            )
            results["breakdown"] = breakdown.run(options)
            print(breakdown_table(results["breakdown"]), flush=True)
        if "routing" in options.parts:
            print("\n== routing: Router.sinks_for in process, one core", flush=True)
            results["routing"] = routing.run(options)
            print(routing.routing_table(results["routing"]), flush=True)
        if "reconcile" in options.parts:
            print("\n== reconcile: list calls per sweep, simulated API over HTTP", flush=True)
            results["reconcile"] = reconcile.run(options)
            print(reconcile.reconcile_table(results["reconcile"]), flush=True)
        stack_parts = [part for part in ("e2e", "enrichment") if part in options.parts]
        if stack_parts:
            print(
                f"\n== {' + '.join(stack_parts)}: {options.rate:.0f} events/s "
                f"for {options.e2e_duration:.0f} s",
                flush=True,
            )
            run = asyncio.run(
                stack.run(
                    options, "e2e", duration=options.e2e_duration, rss_every=5.0, read_stream=True
                )
            )
            for part in stack_parts:
                results[part] = run
            print(
                stack_table(
                    run,
                    "end to end: callback -> intake (fsync) -> enrichment -> NATS JetStream ack",
                ),
                flush=True,
            )
        if "memory" in options.parts:
            print(
                f"\n== memory: {options.rate:.0f} events/s for {options.memory_duration:.0f} s",
                flush=True,
            )
            run = asyncio.run(
                stack.run(
                    options,
                    "memory",
                    duration=options.memory_duration,
                    rss_every=options.memory_interval,
                    read_stream=False,
                )
            )
            results["memory"] = run
            print(memory_series(run), flush=True)
    finally:
        targets = evaluate(results)
        results["targets"] = [t.__dict__ for t in targets]
        path = write_json(results, args.out)
        if targets:
            print("\n" + targets_table(targets))
        print(f"\n{machine_line(info)}\nresults: {path}")
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0

"""``simulate api`` (a local MetaStudio job API) and ``simulate send`` (signed callbacks).

Both pick jobs with :func:`~receiver.simulator.jobs.generate_jobs` from ``--jobs`` and
``--seed``, so the same values name the same rooms and jobs on both sides.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import orjson

from receiver.config import AuthType
from receiver.simulator.jobs import generate_jobs
from receiver.simulator.scenario import (
    EVENT_TYPES,
    LIVE_SESSION,
    SCENARIOS,
    live_sessions,
    plan_size,
    single_events,
    skip_callbacks,
)

DEFAULT_PROJECT_ID = "0b3e6f7c58a34f7a9d2c1e4f5a6b7c8d"
DEFAULT_JOBS = 50
DEFAULT_SEED = 1


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project-id", default=DEFAULT_PROJECT_ID, help="tenant project id")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help="how many jobs exist")
    parser.add_argument("--seed", default=str(DEFAULT_SEED), help="seed of the generated jobs")


def _run_api(args: argparse.Namespace) -> int:
    import uvicorn

    from receiver.simulator.api import create_api_app
    from receiver.simulator.lifecycle import Lifecycle

    jobs = generate_jobs(args.jobs, args.seed, args.project_id)
    lifecycle = None
    if args.lifecycle:
        wait, live = args.lifecycle
        lifecycle = Lifecycle(wait, live, seed=args.seed)
    app = create_api_app(
        jobs,
        args.project_id,
        args.ak,
        args.sk,
        token=args.token,
        fail_rate=args.fail_rate,
        latency_ms=args.latency_ms,
        rate_limit=args.rate_limit,
        seed=args.seed,
        lifecycle=lifecycle,
    )
    print(
        f"MetaStudio simulator: http://{args.host}:{args.port} project {args.project_id}, "
        f"{len(jobs)} jobs (seed {args.seed})",
        file=sys.stderr,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _plan(args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    jobs = generate_jobs(args.jobs, args.seed, args.project_id)
    if args.event:
        count = args.count if args.count is not None else len(args.event) * (args.rooms or 1)
        plan = single_events(jobs, args.event, count, args.seed, rooms=args.rooms)
        return dict(plan), count
    plan = live_sessions(jobs, args.seed, rooms=args.rooms)
    if args.count is not None and args.count > plan_size(plan) > 0:
        rounds = -(-args.count // plan_size(plan))
        plan = live_sessions(jobs, args.seed, rooms=args.rooms, rounds=rounds)
    if args.skip:
        plan = skip_callbacks(plan, args.skip)
    count = args.count if args.count is not None else plan_size(plan)
    return dict(plan), count


def _run_send(args: argparse.Namespace) -> int:
    from receiver.simulator.sender import Target, send_plan

    auth = AuthType(args.auth)
    if auth is not AuthType.NONE and not args.key:
        print("--key is required for MSS_A and MSS_A_HEAD", file=sys.stderr)
        return 2
    plan, count = _plan(args)
    target = Target(url=args.url, key=args.key or "", auth_type=auth)
    summary = asyncio.run(
        send_plan(
            plan,
            target,
            rate=args.rate,
            concurrency=args.concurrency,
            count=count,
            insecure=args.insecure,
        )
    )
    report = {"rooms": len(plan), **summary.as_dict()}
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    return 0


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _lifecycle(text: str) -> tuple[float, float]:
    try:
        wait, live = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("want WAIT,LIVE in seconds, e.g. 10,60") from None
    if wait < 0 or live <= 0:
        raise argparse.ArgumentTypeError("WAIT must be >= 0 and LIVE > 0")
    return wait, live


def _api_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    api = sub.add_parser("api", help="serve a local MetaStudio job API (AK/SK, token, faults)")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, required=True)
    _common(api)
    api.add_argument("--ak", required=True, help="access key the gateway accepts")
    api.add_argument("--sk", required=True, help="secret key the gateway accepts")
    api.add_argument("--token", default=None, help="X-Auth-Token accepted (and issued by IAM)")
    api.add_argument("--fail-rate", type=float, default=0.0, help="fraction answered 500")
    api.add_argument("--latency-ms", type=int, default=0, help="delay added to each job call")
    api.add_argument("--rate-limit", type=_positive, default=None, help="requests/s before 429")
    api.add_argument(
        "--lifecycle",
        type=_lifecycle,
        default=None,
        metavar="WAIT,LIVE",
        help="jobs start WAITING, go live within WAIT seconds and end LIVE seconds later",
    )
    api.set_defaults(func=_run_api)


def _send_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    send = sub.add_parser("send", help="post signed MetaStudio callbacks to a receiver")
    send.add_argument("--url", required=True, help="the callback URL as registered")
    send.add_argument("--key", default="", help="the callback key")
    send.add_argument("--auth", choices=[t.value for t in AuthType], default="MSS_A_HEAD")
    group = send.add_mutually_exclusive_group()
    group.add_argument(
        "--event",
        action="append",
        metavar="TYPE",
        help=f"send single events of this type (repeatable; e.g. {', '.join(EVENT_TYPES)})",
    )
    group.add_argument("--scenario", choices=SCENARIOS, default=LIVE_SESSION)
    send.add_argument("--rooms", type=int, default=None, help="how many rooms (default: all)")
    send.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="TYPE[:STATE]",
        help="never send these callbacks of the scenario (e.g. RTMP_STREAM_STATE_CHANGE:END)",
    )
    _common(send)
    send.add_argument("--rate", type=_positive, default=None, help="callbacks per second")
    send.add_argument("--count", type=int, default=None, help="how many callbacks in all")
    send.add_argument("--concurrency", type=int, default=8, help="requests in flight at most")
    send.add_argument("--insecure", action="store_true", help="skip TLS verification")
    send.set_defaults(func=_run_send)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``simulate api`` and ``simulate send`` to a ``receiver`` command parser."""
    simulate = commands.add_parser("simulate", help="local MetaStudio simulator")
    sub = simulate.add_subparsers(dest="simulate_command", required=True)
    _api_parser(sub)
    _send_parser(sub)

"""``receiver routes test``: which routes an event matches, and where it would be delivered.

The event is a file holding either a MetaStudio callback body (``{"event_type", "message"}``,
the message a JSON string), turned into its envelope as the receiver does (not enriched:
``data.job`` is null), or an envelope as a sink receives it (``specversion`` present; its
``data.job`` and ``data.enrichment`` are used as they are). Nothing is published.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import orjson

from receiver.config import ConfigError, Settings, load_settings
from receiver.envelope import build_envelope, event_id, render
from receiver.events import BadEvent, parse_callback
from receiver.redaction import redact_url
from receiver.routing import Router
from receiver.sink_settings import (
    HttpSinkSettings,
    RabbitMqSinkSettings,
    SinkSettings,
    StdoutSinkSettings,
)

# The settings field of each sink type that names where an event goes.
DESTINATION_FIELDS = {
    "jsonl": "path",
    "nats": "subject",
    "rabbitmq": "routing_key",
    "redis": "stream",
    "kafka": "topic",
}
MAX_EVENT_BYTES = 1024 * 1024


class BadInput(Exception):
    """The event file is neither a callback body nor an envelope."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``routes test`` to a ``receiver`` parser."""
    routes = commands.add_parser("routes", help="try the configured routes")
    actions = routes.add_subparsers(dest="routes_command", required=True)
    tester = actions.add_parser(
        "test", help="print the routes an event matches and the sinks and destinations it gets"
    )
    tester.add_argument(
        "--config", "-c", default=None, help="TOML file (default: $RECEIVER_CONFIG or built-in)"
    )
    tester.add_argument("file", type=Path, help="a callback body or an envelope (JSON)")
    tester.add_argument("--json", action="store_true", help="print one JSON document")
    tester.set_defaults(func=run_test_command)


def load_envelope(data: bytes, settings: Settings) -> dict[str, Any]:
    """The envelope of a callback body, or the envelope itself; BadInput if neither."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise BadInput(f"not JSON: {error.msg}") from None
    if isinstance(document, dict) and "specversion" in document:
        return _checked_envelope(document)
    try:
        callback = parse_callback(data)
    except BadEvent as error:
        raise BadInput(f"not a callback body ({error.code}): {error.detail}") from None
    source = settings.server.callback_url.split("?", 1)[0]
    return build_envelope(callback, event_id(data), time.time(), source)


def _checked_envelope(envelope: dict[str, Any]) -> dict[str, Any]:
    data = envelope.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("event_type"), str):
        raise BadInput("envelope: data.event_type must be a string")
    if not isinstance(data.get("message"), dict):
        raise BadInput("envelope: data.message must be an object")
    enrichment = data.get("enrichment")
    if not isinstance(enrichment, dict) or not isinstance(enrichment.get("status"), str):
        raise BadInput("envelope: data.enrichment.status must be a string")
    for key in ("id", "roomid", "jobid"):
        if not isinstance(envelope.get(key), str):
            raise BadInput(f"envelope: {key} must be a string")
    return envelope


def destination(sink: SinkSettings, envelope: dict[str, Any]) -> str:
    """Where ``sink`` would put ``envelope``: the rendered template, or the URL (redacted)."""
    if isinstance(sink, HttpSinkSettings):
        return f"url={redact_url(sink.url)}"
    if isinstance(sink, StdoutSinkSettings):
        return "standard output"
    field = DESTINATION_FIELDS[sink.type]
    rendered = f"{field}={render(str(getattr(sink, field)), envelope)}"
    if isinstance(sink, RabbitMqSinkSettings):
        return f"exchange={sink.exchange} {rendered}"
    return rendered


def route_report(settings: Settings, envelope: dict[str, Any]) -> dict[str, Any]:
    """What the configured routes do with ``envelope``, as a JSON-ready document."""
    erred: dict[int, str] = {}
    router = Router(settings.routes, erred.__setitem__, log_errors=False)
    matching = router.matching(envelope)
    routes = []
    for index, route in enumerate(settings.routes):
        routes.append(
            {
                "route": index,
                "matches": index in matching,
                "condition": route.condition,
                "condition_error": erred.get(index),
                "sinks": route.sinks,
            }
        )
    by_name = {sink.name: sink for sink in settings.sinks}
    chosen = dict.fromkeys(name for index in matching for name in settings.routes[index].sinks)
    sinks = [
        {
            "sink": name,
            "type": by_name[name].type,
            "destination": destination(by_name[name], envelope),
        }
        for name in chosen
    ]
    return {
        "event_type": envelope["data"]["event_type"],
        "room_id": envelope["roomid"],
        "job_id": envelope["jobid"],
        "enrichment": envelope["data"]["enrichment"]["status"],
        "routes": routes,
        "sinks": sinks,
    }


def print_report(report: dict[str, Any], out: TextIO) -> None:
    """The report as lines for a terminal."""
    out.write(
        f"event {report['event_type']} room {report['room_id'] or '-'} "
        f"job {report['job_id'] or '-'} enrichment {report['enrichment']}\n"
    )
    for route in report["routes"]:
        outcome = "match" if route["matches"] else "no match"
        condition = f"  condition {route['condition']!r}" if route["condition"] else ""
        if route["condition_error"]:
            condition += f" erred ({route['condition_error']})"
        out.write(
            f"routes[{route['route']}]  {outcome:<8}  sinks {','.join(route['sinks'])}{condition}\n"
        )
    if not report["sinks"]:
        out.write("no route matches: the event would go to no sink\n")
    for sink in report["sinks"]:
        out.write(f"-> {sink['sink']} ({sink['type']}) {sink['destination']}\n")


def run_test_command(args: argparse.Namespace) -> int:
    """Run ``routes test``: 0 if the event reaches a sink, 1 if none, 2 on bad input."""
    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return 2
    try:
        with args.file.open("rb") as handle:
            data = handle.read(MAX_EVENT_BYTES + 1)
        if len(data) > MAX_EVENT_BYTES:
            raise BadInput(f"over {MAX_EVENT_BYTES} bytes")
        envelope = load_envelope(data, settings)
    except (OSError, BadInput) as error:
        print(f"{args.file}: {error}", file=sys.stderr)
        return 2
    report = route_report(settings, envelope)
    if args.json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print_report(report, sys.stdout)
    return 0 if report["sinks"] else 1

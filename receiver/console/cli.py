"""``receiver rooms``: the live rooms of a running receiver, from its console's API.

It asks the admin listener of the configuration (``admin.host``/``admin.port``; an
any-address host is reached on loopback) with the token in ``$RECEIVER_CONSOLE_TOKEN`` or
``--token-file`` (none needed on a loopback console without tokens).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from receiver import tables
from receiver.config import ConfigError, load_settings

COLUMNS = ("room", "name", "stream", "since", "job", "job state", "script", "last event")
TOKEN_ENV = "RECEIVER_CONSOLE_TOKEN"  # noqa: S105 - the name of a variable


def _ago(when: float | None) -> str | None:
    return None if when is None else f"{max(0.0, time.time() - when):.0f}s ago"


def _row(room: dict[str, Any]) -> list[Any]:
    return [
        room["room_id"], room.get("room_name") or None, room.get("stream_state"),
        _ago(room.get("stream_state_since")), room.get("job_id") or None,
        room.get("job_state"), room.get("script"), _ago(room.get("last_event_at")),
    ]  # fmt: skip


def _rooms(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return 2
    admin = settings.admin
    if not admin.enabled:
        print("error: the console is off (admin.enabled = false)", file=sys.stderr)
        return 2
    token = os.environ.get(TOKEN_ENV, "")
    if args.token_file:
        token = Path(args.token_file).read_text(encoding="utf-8").strip()
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(admin.host, admin.host)
    host = f"[{host}]" if ":" in host else host
    scheme = "https" if admin.tls_certfile else "http"
    verify: str | bool = str(admin.tls_certfile) if admin.tls_certfile else True
    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(
            f"{scheme}://{host}:{admin.port}/api/rooms", headers=headers, verify=verify, timeout=10
        )
    except httpx.HTTPError as error:
        print(f"error: the console did not answer: {type(error).__name__}", file=sys.stderr)
        return 1
    if response.status_code != 200:
        print(f"error: the console answered {response.status_code}", file=sys.stderr)
        return 1
    rooms = response.json()["rooms"]
    if args.json:
        # ASCII only: a room name cannot put raw C1 or bidi characters on the terminal.
        print(json.dumps(rooms, indent=2, ensure_ascii=True))
    else:
        tables.print_table(COLUMNS, [_row(room) for room in rooms], sys.stdout)
        print(f"{len(rooms)} room(s)")
    return 0


def register(commands: Any) -> None:
    """Add ``rooms`` to the ``receiver`` subcommands."""
    parser = commands.add_parser("rooms", help="the live rooms of a running receiver")
    parser.add_argument(
        "--config", "-c", default=None, help="TOML file (default: $RECEIVER_CONFIG or built-in)"
    )
    parser.add_argument("--json", action="store_true", help="JSON instead of a table")
    parser.add_argument("--token-file", help=f"the console token (default: ${TOKEN_ENV})")
    parser.set_defaults(func=_rooms)

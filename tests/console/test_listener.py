"""The admin listener in a real process: its own port, the live tail, a clean SIGTERM."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.console.conftest import OPERATOR, VIEWER, tokens_file
from tests.helpers import KEY, free_port, running, write_config


def admin_config(directory: Path, port: int, admin_port: int) -> Path:
    tokens = tokens_file(directory)
    extra = f'\n[admin]\nenabled = true\nport = {admin_port}\ntokens_file = "{tokens}"\n'
    return write_config(directory, port, extra=extra)


def send(url: str, count: int, rooms: int = 2) -> None:
    subprocess.run(
        [sys.executable, "-m", "receiver.cli", "simulate", "send", "--url", url, "--key", KEY, "--auth", "MSS_A_HEAD",
         "--scenario", "live-session", "--rooms", str(rooms), "--count", str(count)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip


def test_the_console_listens_apart_and_tails_live(tmp_path: Path) -> None:
    port, admin_port = free_port(), free_port()
    with running(admin_config(tmp_path, port, admin_port), port) as receiver:
        admin = f"http://127.0.0.1:{admin_port}"
        # the callback port has none of the console, the admin port none of the callbacks
        assert httpx.get(f"{receiver.base}/api/session").status_code == 404
        assert httpx.get(f"{admin}/callbacks/metastudio").status_code in (303, 401, 404)
        assert httpx.get(f"{admin}/readyz").status_code in (303, 404)
        received: list[dict[str, Any]] = []
        ready = threading.Event()

        def tail() -> None:
            headers = {"authorization": f"Bearer {VIEWER}"}
            with httpx.stream("GET", f"{admin}/api/events/stream", headers=headers) as stream:
                for line in stream.iter_lines():
                    ready.set()
                    if line.startswith("data: "):
                        received.append(orjson.loads(line[6:]))
                        if len(received) >= 3:
                            return

        thread = threading.Thread(target=tail, daemon=True)
        thread.start()
        assert ready.wait(10)
        send(f"{receiver.base}/callbacks/metastudio", 3)
        thread.join(15)
        assert len(received) >= 3
        assert {event["event_type"] for event in received} <= {
            "RTMP_STREAM_STATE_CHANGE", "SHOOT_SCRIPT_SWITCH", "REPLY_COMMAND_FINISH"
        }  # fmt: skip
        operator = {"authorization": f"Bearer {OPERATOR}"}
        rooms = httpx.get(f"{admin}/api/rooms", headers=operator).json()["rooms"]
        assert rooms and all(room["room_id"] for room in rooms)
        table = subprocess.run(
            [sys.executable, "-m", "receiver.cli", "rooms", "-c", str(receiver.config)],
            env={**os.environ, "RECEIVER_CONSOLE_TOKEN": VIEWER},
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert table.returncode == 0, table.stderr
        assert table.stdout.splitlines()[0].split()[:3] == ["room", "name", "stream"]
        assert rooms[0]["room_id"] in table.stdout
        as_json = subprocess.run(
            [sys.executable, "-m", "receiver.cli", "rooms", "-c", str(receiver.config), "--json"],
            env={**os.environ, "RECEIVER_CONSOLE_TOKEN": VIEWER},
            capture_output=True, timeout=30,
        )  # fmt: skip
        assert {r["room_id"] for r in orjson.loads(as_json.stdout)} == {r["room_id"] for r in rooms}
        refused = subprocess.run(
            [sys.executable, "-m", "receiver.cli", "rooms", "-c", str(receiver.config)],
            env={k: v for k, v in os.environ.items() if k != "RECEIVER_CONSOLE_TOKEN"},
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert refused.returncode == 1 and "401" in refused.stderr
        started = time.monotonic()
        assert receiver.terminate(timeout=30) == 0
        assert time.monotonic() - started < 15

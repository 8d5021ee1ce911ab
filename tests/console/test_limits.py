"""What a hostile body or a careless client cannot do to the console: memory, CPU, secrets."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from receiver.app import ReceiverApp
from receiver.config import ConfigError, load_settings
from receiver.console.history import MAX_SUBSCRIBERS, EventHistory
from receiver.console.rooms import RoomBoard
from receiver.console.views import _origin
from receiver.tables import cell
from tests.console.conftest import OPERATOR, VIEWER, Console
from tests.helpers import write_config


def envelope(index: int, size: int = 0) -> dict[str, Any]:
    return {
        "id": f"e{index}", "type": "t", "roomid": "r", "jobid": "j",
        "data": {"event_type": "X", "message": {"pad": "x" * size}, "enrichment": {}},
    }  # fmt: skip


def test_history_is_bounded_by_bytes_and_keeps_bodies_not_objects() -> None:
    history = EventHistory(max_events=10_000, max_age_seconds=3600, max_bytes=1024 * 1024)
    for index in range(200):
        item = envelope(index, 30_000)
        history.add(item, orjson.dumps(item), ["out"], time.time())
    assert len(history) < 40  # about 1 MiB of 30 kB bodies
    newest = history.get("e199")
    assert newest is not None and newest.detail()["envelope"]["id"] == "e199"
    assert history.get("e0") is None


def test_live_tails_are_capped() -> None:
    history = EventHistory(10, 60, 1024 * 1024)
    queues = [history.subscribe() for _ in range(MAX_SUBSCRIBERS)]
    assert all(q is not None for q in queues) and history.subscribe() is None


def test_room_counts_and_states_do_not_grow_with_hostile_values() -> None:
    board = RoomBoard(10)
    for index in range(1000):
        item = envelope(index)
        item["data"]["event_type"] = f"NEW_TYPE_{index}"
        board.update(item, time.time())
    rtmp = envelope(0)
    rtmp["data"] = {"event_type": "RTMP_STREAM_STATE_CHANGE", "message": {"state": "x y"}}
    board.update(rtmp, time.time())
    (room,) = board.rooms()
    assert room.counts == {"other": 1000, "RTMP_STREAM_STATE_CHANGE": 1}
    assert room.stream_state == "other"


def test_urls_in_the_configuration_show_where_not_how() -> None:
    assert _origin("https://hooks.example.com/services/T0/B0/SECRET") == (
        "https://hooks.example.com/[redacted]"
    )
    assert _origin("nats://user:pw@nats:4222") == "nats://nats:4222"


def test_table_cells_hide_bidi_and_invisible_characters() -> None:
    assert cell("room\u202eevil\u200b\x1b[31m") == "room?evil??[31m"
    assert cell("直播间") == "直播间"


def test_the_admin_port_is_never_the_callback_port(tmp_path: Path) -> None:
    config = write_config(tmp_path, 9180, extra="\n[admin]\nenabled = true\nport = 9180\n")
    with pytest.raises(ConfigError, match=r"admin\.port must differ"):
        load_settings(config)


async def test_a_bad_tokens_file_fails_the_start_before_anything_runs(tmp_path: Path) -> None:
    (tmp_path / "tokens").write_text("admin nope\n")
    extra = f'\n[admin]\nenabled = true\ntokens_file = "{tmp_path / "tokens"}"\n'
    app = ReceiverApp(load_settings(write_config(tmp_path, 8999, extra=extra)))
    sent: list[dict[str, Any]] = []
    messages = iter([{"type": "lifespan.startup"}])

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app._lifespan(receive, send)
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert "nope" not in sent[0]["message"]
    assert not app.service.started


async def test_bad_numbers_head_and_csrf_bytes_are_clear_refusals(console: Console) -> None:
    viewer, operator = console.as_role(VIEWER), console.as_role(OPERATOR)
    for path in ("/api/events?limit=inf", "/api/events?cursor=nan", "/api/dead-letters?limit=inf"):
        response = await console.http.get(path, headers=viewer)
        assert response.status_code == 400, path
    await console.receiver.service.dead_letters.add("e", "out", b"{}", 1, "x", 1.0, 2.0)
    head = await console.http.request(
        "HEAD", "/api/dead-letters/replay", headers=operator, content=b'{"expected": 1}'
    )
    assert head.status_code == 200
    assert await console.receiver.service.dead_letters.count() == 1  # nothing replayed
    login = await console.http.post("/login", data={"token": OPERATOR})
    assert login.status_code == 303
    odd = await console.http.post("/logout", headers={"x-csrf-token": b"\xff"})
    assert odd.status_code == 403
    config = (await console.http.get("/api/config", headers=viewer)).json()
    assert config["register"]["key_hints"] == []  # fingerprints are the operator's

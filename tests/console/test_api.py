"""The console's JSON API: events with filters and paging, rooms, dead letters, config."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson

from tests.console.conftest import OPERATOR, VIEWER, Console, start_console
from tests.helpers import callback_body, read_jsonl, signed_headers

URL = "http://127.0.0.1:8999/callbacks/metastudio"
PATH = "/callbacks/metastudio"


async def send(console: Console, event_type: str, room: str, **fields: Any) -> str:
    body = callback_body(event_type, room, **fields)
    response = await console.public.post(PATH, content=body, headers=signed_headers(URL))
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def settled(console: Console, count: int) -> list[dict[str, Any]]:
    headers = console.as_role(VIEWER)
    async with asyncio.timeout(10):
        while True:
            events = (await console.http.get("/api/events", headers=headers)).json()["events"]
            if len(events) >= count and all(e["outcome"] == "delivered" for e in events):
                return list(events)
            await asyncio.sleep(0.02)


async def test_events_rooms_filters_paging_and_detail(console: Console) -> None:
    await send(console, "RTMP_STREAM_STATE_CHANGE", "room-a", state="CONNECTED", stream_key="sk")
    await send(console, "SHOOT_SCRIPT_SWITCH", "room-a", shoot_script_title="Intro")
    switched = await send(console, "RTMP_STREAM_STATE_CHANGE", "room-b", state="END")
    events = await settled(console, 3)
    assert [e["room_id"] for e in events] == ["room-b", "room-a", "room-a"]  # newest first
    assert events[0]["sinks"] == {
        "out": {
            "outcome": "delivered",
            "attempts": 1,
            "error": "",
            "at": events[0]["sinks"]["out"]["at"],
        }
    }
    headers = console.as_role(VIEWER)
    get = console.http.get
    only_a = (await get("/api/events?room=room-a", headers=headers)).json()["events"]
    assert {e["room_id"] for e in only_a} == {"room-a"} and len(only_a) == 2
    typed = (await get("/api/events?type=SHOOT_SCRIPT_SWITCH", headers=headers)).json()
    assert [e["event_type"] for e in typed["events"]] == ["SHOOT_SCRIPT_SWITCH"]
    none = (await get(f"/api/events?since={time.time() + 60}", headers=headers)).json()
    assert none["events"] == []
    first = (await get("/api/events?limit=2", headers=headers)).json()
    assert len(first["events"]) == 2 and first["next_cursor"] is not None
    rest = (await get(f"/api/events?limit=2&cursor={first['next_cursor']}", headers=headers)).json()
    assert [e["id"] for e in rest["events"]] == [events[2]["id"]] and rest["next_cursor"] is None
    bad = await get("/api/events?since=yesterday", headers=headers)
    assert bad.status_code == 400 and set(bad.json()) == {"error", "detail"}

    detail = (await get(f"/api/events/{switched}", headers=headers)).json()
    assert detail["envelope"]["data"]["message"]["state"] == "END"
    first_id = events[2]["id"]
    with_key = (await get(f"/api/events/{first_id}", headers=headers)).text
    assert "sk" not in orjson.loads(with_key)["envelope"]["data"]["message"].values()
    assert (await get("/api/events/nope", headers=headers)).status_code == 404

    rooms = (await get("/api/rooms", headers=headers)).json()["rooms"]
    by_id = {room["room_id"]: room for room in rooms}
    assert by_id["room-a"]["stream_state"] == "CONNECTED"
    assert by_id["room-a"]["script"] == "Intro"
    assert by_id["room-b"]["stream_state"] == "END"
    room = (await get("/api/rooms/room-a", headers=headers)).json()
    assert [e["event_type"] for e in room["timeline"]] == [
        "RTMP_STREAM_STATE_CHANGE",
        "SHOOT_SCRIPT_SWITCH",
    ]  # oldest first
    assert (await get("/api/rooms/nowhere", headers=headers)).status_code == 404


async def add_letter(console: Console, room: str) -> int:
    envelope = {
        "specversion": "1.0", "id": f"dead-{room}", "source": "urn:test",
        "type": "com.huaweicloud.metastudio.live.X",
        "subject": room, "time": "2026-12-02T00:00:00.000Z", "roomid": room, "jobid": "j",
        "knowntype": False, "datacontenttype": "application/json",
        "data": {"event_type": "X", "message": {}, "job": None,
                 "enrichment": {"status": "disabled"}},
    }  # fmt: skip
    store = console.receiver.service.dead_letters
    return await store.add(envelope["id"], "out", orjson.dumps(envelope), 3, "boom", 1.0, 2.0)


async def test_dead_letters_list_detail_replay_preview_and_purge(console: Console) -> None:
    operator, viewer = console.as_role(OPERATOR), console.as_role(VIEWER)
    http = console.http
    one = await add_letter(console, "r1")
    await add_letter(console, "r2")
    listed = (await http.get("/api/dead-letters", headers=viewer)).json()
    assert listed["total"] == 2 and listed["dead_letters"][0]["last_error"] == "boom"
    detail = (await http.get(f"/api/dead-letters/{one}", headers=viewer)).json()
    assert detail["envelope"]["roomid"] == "r1"
    refused = await http.post(f"/api/dead-letters/{one}/replay", headers=viewer)
    assert refused.status_code == 403
    store = console.receiver.service.dead_letters
    assert await store.claim(one)  # another replay holds it: refused, kept
    held = await http.post(f"/api/dead-letters/{one}/replay", headers=operator)
    assert held.status_code == 502 and "another replay" in held.json()["detail"]
    await store.release(one)
    replayed = await http.post(f"/api/dead-letters/{one}/replay", headers=operator)
    assert replayed.json() == {"replayed": 1}
    out = read_jsonl(console.directory / "out.jsonl")
    assert [line["id"] for line in out] == ["dead-r1"]
    preview = (await http.get("/api/dead-letters/replay?sink=out", headers=viewer)).json()
    assert preview == {"sink": "out", "count": 1}
    stale = await http.post(
        "/api/dead-letters/replay", headers=operator, json={"sink": "out", "expected": 5}
    )
    assert stale.status_code == 409 and stale.json()["error"] == "count_changed"
    bad = await http.post("/api/dead-letters/replay", headers=operator, content=b"[")
    assert bad.status_code == 400
    done = await http.post(
        "/api/dead-letters/replay", headers=operator, json={"sink": "out", "expected": 1}
    )
    assert done.json() == {"replayed": 1, "failed": []}
    assert (await http.get("/api/dead-letters", headers=viewer)).json()["total"] == 0
    await add_letter(console, "r3")
    assert (await http.delete("/api/dead-letters", headers=operator)).json() == {"purged": 1}
    assert (await http.get("/api/dead-letters/999", headers=viewer)).status_code == 404


async def test_configuration_is_redacted_and_says_what_to_register(console: Console) -> None:
    config = (await console.http.get("/api/config", headers=console.as_role(OPERATOR))).json()
    register = config["register"]
    assert register["live_event_type_callback_url"] == URL
    assert register["auth_types"] == ["MSS_A", "MSS_A_HEAD"]
    assert register["key_hints"][0].startswith("sha256:")
    text = orjson.dumps(config).decode()
    assert "test-key" not in text  # the callback key itself never appears
    assert config["signing_rules_seen"] == {}
    await send(console, "REPLY_COMMAND_FINISH", "room-c")
    again = (await console.http.get("/api/config", headers=console.as_role(VIEWER))).json()
    assert again["signing_rules_seen"] == {"MSS_A_HEAD host_path_query": 1}
    assert again["keys_file_age_seconds"] is None
    page = await console.http.get("/config", headers=console.as_role(VIEWER))
    assert "MSS_A_HEAD host_path_query: 1" in page.text


async def test_routes_test_says_where_an_event_would_go(console: Console) -> None:
    body = callback_body("RTMP_STREAM_STATE_CHANGE", "room-r", state="END")
    report = await console.http.post(
        "/api/routes/test", content=body, headers=console.as_role(VIEWER)
    )
    assert report.status_code == 200
    assert report.json()["sinks"][0]["sink"] == "out"
    assert report.json()["routes"][0]["matches"] is True
    bad = await console.http.post(
        "/api/routes/test", content=b"{}", headers=console.as_role(VIEWER)
    )
    assert bad.status_code == 400 and bad.json()["error"] == "bad_event"


async def test_history_and_rooms_survive_a_restart(tmp_path: Path) -> None:
    async for console in start_console(tmp_path, ""):
        first = await send(console, "RTMP_STREAM_STATE_CHANGE", "room-r", state="CONNECTED")
        await settled(console, 1)
    async for console in start_console(tmp_path, ""):  # the same data directory
        events = (await console.http.get("/api/events")).json()["events"]
        assert [(e["id"], e["outcome"]) for e in events] == [(first, "delivered")]
        rooms = (await console.http.get("/api/rooms")).json()["rooms"]
        assert [(r["room_id"], r["stream_state"]) for r in rooms] == [("room-r", "CONNECTED")]

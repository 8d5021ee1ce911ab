"""``receiver routes test``: matching routes, chosen sinks, rendered destinations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from receiver.cli import main
from receiver.envelope import build_envelope
from receiver.events import parse_callback

CONFIG = """
[[sinks]]
name = "archive"
type = "jsonl"
path = "data/{room_id}/{event_type}.jsonl"

[[sinks]]
name = "pager"
type = "http"
url = "https://pager.example/hook?token=pager-token-123"

[[sinks]]
name = "bus"
type = "rabbitmq"
routing_key = "live.{state}.{room_id}"

[[routes]]
sinks = ["archive"]

[[routes]]
event_types = ["RTMP_STREAM_STATE_CHANGE"]
condition = 'data.message.state == "DISCONNECTED"'
sinks = ["pager"]

[[routes]]
condition = 'data.enrichment.status == "ok" && data.job.state == "PROCESSING"'
sinks = ["bus"]
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "receiver.toml"
    path.write_text(CONFIG)
    return path


def body(state: str, room: str = "room-1") -> bytes:
    message = {"room_id": room, "job_id": "job-1", "state": state}
    return orjson.dumps(
        {"event_type": "RTMP_STREAM_STATE_CHANGE", "message": orjson.dumps(message).decode()}
    )


def run(
    config: Path, event: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str], *flags: str
) -> tuple[int, str, str]:
    path = tmp_path / "event.json"
    path.write_bytes(event)
    code = main(["routes", "test", "-c", str(config), str(path), *flags])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_disconnect_goes_to_the_pager(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(config, body("DISCONNECTED"), tmp_path, capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[1].startswith("routes[0]  match ")
    assert lines[2].startswith("routes[1]  match ")
    assert lines[3].startswith("routes[2]  no match ")
    assert "-> archive (jsonl) path=data/room-1/RTMP_STREAM_STATE_CHANGE.jsonl" in lines
    assert "-> pager (http) url=https://pager.example/hook?token=[redacted]" in lines
    assert "pager-token-123" not in out


def test_a_connect_does_not(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(config, body("CONNECTED"), tmp_path, capsys, "--json")
    report = orjson.loads(out)
    assert code == 0
    assert [r["matches"] for r in report["routes"]] == [True, False, False]
    assert [s["sink"] for s in report["sinks"]] == ["archive"]


def test_an_enriched_envelope_is_routed_as_it_is(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    envelope: dict[str, Any] = build_envelope(
        parse_callback(body("CONNECTED")), "id-1", 1_800_000_000.0, "src"
    )
    envelope["data"]["job"] = {"job_id": "job-1", "state": "PROCESSING"}
    envelope["data"]["enrichment"] = {"status": "ok", "source": "api"}
    code, out, _ = run(config, orjson.dumps(envelope), tmp_path, capsys, "--json")
    report = orjson.loads(out)
    assert code == 0
    assert report["enrichment"] == "ok"
    assert report["sinks"][1] == {
        "sink": "bus",
        "type": "rabbitmq",
        "destination": "exchange=metastudio routing_key=live.CONNECTED.room-1",
    }
    assert all(r["condition_error"] is None for r in report["routes"])


def test_a_condition_that_errs_is_shown(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, err = run(config, body("END"), tmp_path, capsys)
    assert "condition 'data.enrichment.status" in out
    assert err == ""


def test_hostile_values_are_rendered_safe(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(config, body("END", room="../../etc/passwd"), tmp_path, capsys)
    archive = next(line for line in out.splitlines() if line.startswith("-> archive"))
    assert "../" not in archive.split("path=", 1)[1].removeprefix("data/")


def test_no_matching_route_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "only-pager.toml"
    config.write_text(
        CONFIG.split("[[routes]]")[0] + '[[routes]]\nroom_ids = ["x"]\nsinks = ["pager"]\n'
    )
    code, out, _ = run(config, body("END"), tmp_path, capsys)
    assert code == 1
    assert "no route matches" in out


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (b"{not json", "not JSON"),
        (b'{"event_type": "X"}', "not a callback body"),
        (b'{"specversion": "1.0", "data": {}}', "data.event_type"),
    ],
)
def test_bad_events_exit_2(
    config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    event: bytes,
    message: str,
) -> None:
    code, _, err = run(config, event, tmp_path, capsys)
    assert code == 2
    assert message in err


def test_a_bad_condition_exits_2_naming_the_route(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(CONFIG.replace('state == "DISCONNECTED"', 'state == "DISCONNECTED" &&'))
    code, _, err = run(config, body("END"), tmp_path, capsys)
    assert code == 2
    assert "routes[1].condition: cannot parse" in err

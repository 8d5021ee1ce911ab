"""The envelopes' JSON Schemas: generated from the models, committed, served, and strict."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from receiver.app import ReceiverApp
from receiver.cli import main
from receiver.config import load_settings
from receiver.contract.schemas import SCHEMA_NAMES, schema_documents
from receiver.envelope import build_envelope
from receiver.events import parse_callback
from receiver.reconcile.events import JobStateChanged, state_envelope
from tests.envelope_schema import SCHEMAS, envelope_errors
from tests.helpers import callback_body, write_config


def callback_envelope(event_type: str, **fields: Any) -> dict[str, Any]:
    callback = parse_callback(callback_body(event_type, "room-1", **fields))
    return build_envelope(callback, "id-1", time.time(), "https://receiver.example/cb")


def job_state_envelope() -> dict[str, Any]:
    data = JobStateChanged(
        job_id="job-1",
        room_id="room-1",
        room_name="直播间",
        state="SUCCEED",
        previous_state="PROCESSING",
        update_time="2026-12-02T10:00:00Z",
        create_time=None,
        start_time=None,
        end_time=None,
        duration=12.5,
        block_reason=None,
        error_info=None,
        job={"job_id": "job-1", "state": "SUCCEED"},
    )
    return state_envelope(data, time.time())


CASES = {
    "shoot-script-switch": lambda: callback_envelope("SHOOT_SCRIPT_SWITCH"),
    "rtmp-stream-state-change": lambda: callback_envelope(
        "RTMP_STREAM_STATE_CHANGE", state="END", stream_key="sk-1"
    ),
    "reply-command-finish": lambda: callback_envelope("REPLY_COMMAND_FINISH"),
    "unknown-event": lambda: callback_envelope("NEW_KIND_OF_EVENT"),
    "job-state-changed": job_state_envelope,
}


def test_committed_schemas_are_the_models_schemas() -> None:
    assert main(["schemas", "--check", "--out", str(SCHEMAS)]) == 0
    for name, document in schema_documents().items():
        Draft202012Validator.check_schema(document)
        assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert (SCHEMAS / f"{name}.schema.json").is_file()


def test_check_fails_when_a_committed_schema_differs(tmp_path: Path) -> None:
    assert main(["schemas", "--out", str(tmp_path)]) == 0
    assert main(["schemas", "--check", "--out", str(tmp_path)]) == 0
    path = tmp_path / "job-state-changed.schema.json"
    path.write_text(path.read_text().replace('"job_id"', '"job"', 1))
    assert main(["schemas", "--check", "--out", str(tmp_path)]) == 1


@pytest.mark.parametrize("name", list(CASES))
def test_each_event_type_validates_under_its_schema_and_the_envelope(name: str) -> None:
    envelope = CASES[name]()
    assert envelope_errors(envelope, name) == []
    assert envelope_errors(envelope) == []


@pytest.mark.parametrize("name", [n for n in CASES if n != "unknown-event"])
def test_a_type_is_refused_by_another_types_schema(name: str) -> None:
    other = "job-state-changed" if name != "job-state-changed" else "shoot-script-switch"
    assert envelope_errors(CASES[name](), other) != []


BREAKAGES = {
    "no id": lambda e: e.pop("id"),
    "old specversion": lambda e: e.update(specversion="0.3"),
    "time not RFC 3339": lambda e: e.update(time="yesterday"),
    "unknown attribute": lambda e: e.update(extra="x"),
    "unknown enrichment status": lambda e: e["data"]["enrichment"].update(status="fine"),
    "no message": lambda e: e["data"].pop("message"),
    "state not text": lambda e: e["data"]["message"].update(state=["END"]),
}


@pytest.mark.parametrize("change", BREAKAGES.values(), ids=BREAKAGES.keys())
def test_a_broken_envelope_is_refused(change: Any) -> None:
    envelope = copy.deepcopy(CASES["rtmp-stream-state-change"]())
    change(envelope)
    assert envelope_errors(envelope, "rtmp-stream-state-change") != []
    assert envelope_errors(envelope) != []


async def test_the_receiver_serves_every_schema(tmp_path: Path) -> None:
    app = ReceiverApp(load_settings(write_config(tmp_path, 8999)))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8999") as http:
        index = (await http.get("/schemas/")).json()["schemas"]
        assert index == [f"/schemas/{name}.schema.json" for name in SCHEMA_NAMES]
        for path in index:
            response = await http.get(path)
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/schema+json"
            assert response.content == (SCHEMAS / path.rsplit("/", 1)[1]).read_bytes()
        missing = await http.get("/schemas/../config.toml")
        assert missing.status_code == 404
        assert set(missing.json()) == {"error", "detail"}

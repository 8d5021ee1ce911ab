"""Payload shapes: structured by default, binary with the attributes as headers."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import orjson
import pytest
from pydantic import TypeAdapter, ValidationError

from receiver.envelope import MEDIA_TYPE
from receiver.sink_settings import SinkSettings
from receiver.sinks.payload import HTTP, KAFKA, PayloadShape, shape_payload
from tests.brokers import make_event
from tests.contract.test_schemas import job_state_envelope

SETTINGS: TypeAdapter[SinkSettings] = TypeAdapter(SinkSettings)


def test_cloudevent_is_the_envelope_unchanged() -> None:
    envelope, body = make_event("room-1", 1)
    payload = shape_payload(PayloadShape.CLOUDEVENT, envelope, body)
    assert payload.body is body and payload.content_type == MEDIA_TYPE
    assert not payload.binary


def test_data_and_message_carry_every_attribute_but_data() -> None:
    envelope, body = make_event("room-1", 1)
    data = shape_payload(PayloadShape.DATA, envelope, body)
    assert orjson.loads(data.body) == envelope["data"]
    assert data.content_type == "application/json"
    expected = {k for k in envelope if k not in ("data", "datacontenttype")}
    assert set(data.attributes) == expected
    assert data.attributes["knowntype"] == "false"
    message = shape_payload(PayloadShape.MESSAGE, envelope, body)
    assert orjson.loads(message.body) == envelope["data"]["message"]


def test_a_job_state_event_has_no_message_so_message_sends_its_data() -> None:
    envelope = job_state_envelope()
    payload = shape_payload(PayloadShape.MESSAGE, envelope, orjson.dumps(envelope))
    assert orjson.loads(payload.body) == envelope["data"]
    assert payload.attributes["type"] == "com.receiver.reconcile.job.state_changed"


def test_headers_are_percent_encoded_where_the_binding_says_so() -> None:
    attributes = {"subject": '直播间 "1" 100%', "id": "abc"}
    http = HTTP.headers(attributes)
    assert http["ce-id"] == "abc"
    assert http["ce-subject"].isascii() and " " not in http["ce-subject"]
    assert unquote(http["ce-subject"]) == attributes["subject"]
    assert KAFKA.headers(attributes) == {"ce_subject": attributes["subject"], "ce_id": "abc"}


@pytest.mark.parametrize("kind", ["jsonl", "stdout"])
def test_a_sink_without_headers_refuses_binary_mode(kind: str, tmp_path: Path) -> None:
    extra = {"path": str(tmp_path / "x.jsonl")} if kind == "jsonl" else {}
    with pytest.raises(ValidationError, match="no headers to carry the CloudEvents attributes"):
        SETTINGS.validate_python({"name": "s", "type": kind, "payload": "data", **extra})


def test_an_unknown_payload_is_refused() -> None:
    with pytest.raises(ValidationError, match="payload"):
        SETTINGS.validate_python({"name": "s", "type": "http", "url": "http://x", "payload": "xml"})

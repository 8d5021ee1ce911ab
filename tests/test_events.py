import contextlib

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver.events import BadEvent, parse_callback
from receiver.redaction import REDACTED


def body(event_type: str, message: object) -> bytes:
    return orjson.dumps({"event_type": event_type, "message": orjson.dumps(message).decode()})


def test_shoot_script_switch_keeps_its_fields() -> None:
    message = {
        "room_id": "r1",
        "job_id": "j1",
        "scene_script_name": "s",
        "shoot_script_sequence_no": "2",
        "shoot_script_title": "t",
        "extra_field": 5,
    }
    callback = parse_callback(body("SHOOT_SCRIPT_SWITCH", message))
    assert callback.message["shoot_script_sequence_no"] == "2"
    assert callback.message["extra_field"] == 5
    assert (callback.room_id, callback.job_id, callback.known) == ("r1", "j1", True)


def test_rtmp_state_change_redacts_the_stream_key() -> None:
    message = {
        "room_id": "r",
        "job_id": "j",
        "output_url": "rtmp://x/live",
        "stream_key": "s3cr3t",
        "state": "END",
    }
    callback = parse_callback(body("RTMP_STREAM_STATE_CHANGE", message))
    assert callback.state == "END"
    assert callback.message["stream_key"] == REDACTED
    assert b"s3cr3t" not in orjson.dumps(callback.message)


def test_reply_command_finish_is_known() -> None:
    callback = parse_callback(
        body("REPLY_COMMAND_FINISH", {"room_id": "r", "job_id": "j", "reply_id": "x"})
    )
    assert callback.known and callback.message["reply_id"] == "x"


def test_unknown_event_type_is_kept_and_marked() -> None:
    callback = parse_callback(body("NEW_THING", {"whatever": 1}))
    assert not callback.known
    assert callback.event_type == "NEW_THING" and callback.message == {"whatever": 1}


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"not json", "invalid_json"),
        (b"[]", "invalid_event"),
        (b'{"message": "{}"}', "invalid_event"),
        (b'{"event_type": "", "message": "{}"}', "invalid_event"),
        (b'{"event_type": 3, "message": "{}"}', "invalid_event"),
        (b'{"event_type": "X", "message": 3}', "invalid_event"),
        (b'{"event_type": "X", "message": "nope"}', "invalid_json"),
        (b'{"event_type": "X", "message": "[1]"}', "invalid_event"),
        (body("SHOOT_SCRIPT_SWITCH", {"job_id": "j"}), "invalid_event"),
        (body("REPLY_COMMAND_FINISH", {"room_id": "r", "job_id": ["j"]}), "invalid_event"),
        (b'{"event_type": "X", "message": "' + b"[" * 5000 + b'"}', "invalid_json"),
        (b"[" * 100_000, "invalid_json"),
    ],
)
def test_bad_bodies_raise_bad_event_with_a_code(raw: bytes, code: str) -> None:
    with pytest.raises(BadEvent) as caught:
        parse_callback(raw)
    assert caught.value.code == code


@given(st.binary(max_size=300))
def test_parser_only_ever_raises_bad_event(raw: bytes) -> None:
    with contextlib.suppress(BadEvent):
        parse_callback(raw)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=10),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=20,
    ),
    st.sampled_from(
        ["SHOOT_SCRIPT_SWITCH", "RTMP_STREAM_STATE_CHANGE", "REPLY_COMMAND_FINISH", "OTHER"]
    ),
)
def test_parser_handles_any_json_message(message: object, event_type: str) -> None:
    with contextlib.suppress(BadEvent):
        parse_callback(body(event_type, message))

import logging

import orjson

from receiver.logs import JsonFormatter, TextFormatter, escape_controls


def record(**extra: object) -> logging.LogRecord:
    item = logging.LogRecord("receiver.access", logging.INFO, __file__, 1, "callback", None, None)
    item.__dict__.update(extra)
    return item


def test_json_lines_carry_the_extra_fields() -> None:
    document = orjson.loads(JsonFormatter().format(record(event_id="e1", request_id="r1")))
    assert document["message"] == "callback" and document["logger"] == "receiver.access"
    assert (document["event_id"], document["request_id"]) == ("e1", "r1")
    assert document["time"].endswith("Z") and document["level"] == "INFO"


def test_text_lines_carry_the_extra_fields() -> None:
    line = TextFormatter().format(record(event_id="e1", status=200))
    assert line.endswith("callback event_id=e1 status=200")


def test_exceptions_are_one_field() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        item = record()
        item.exc_info = sys.exc_info()
    document = orjson.loads(JsonFormatter().format(item))
    assert "ValueError: boom" in document["exception"]


def test_uvicorns_coloured_copy_is_left_out() -> None:
    document = orjson.loads(JsonFormatter().format(record(color_message="\x1b[36mx\x1b[0m")))
    assert "color_message" not in document


def test_text_lines_escape_control_characters() -> None:
    forged = "r1\n2026-12-02T00:00:00 INFO receiver.callback accepted\x1b[2K\x85\u2028"
    item = record(room_id=forged)
    item.msg = "callback for %s"
    item.args = (forged,)
    line = TextFormatter().format(item)
    assert len(line.splitlines()) == 1
    assert "room_id=r1\\n2026-12-02T00:00:00 INFO" in line
    assert "\\x1b[2K\\x85\\u2028" in line


def test_text_tracebacks_stay_on_the_records_line() -> None:
    try:
        raise ValueError("bad room\nforged line")
    except ValueError:
        import sys

        item = record()
        item.exc_info = sys.exc_info()
    line = TextFormatter().format(item)
    assert len(line.splitlines()) == 1
    assert "ValueError: bad room\\nforged line" in line


def test_printable_text_is_returned_as_is() -> None:
    text = "room-1 é 中 plain"
    assert escape_controls(text) is text
    assert escape_controls("a\tb\rc\x00\x7f") == "a\\tb\\rc\\x00\\x7f"

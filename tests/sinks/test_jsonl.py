from pathlib import Path

import orjson

from receiver.sink_settings import JsonlSinkSettings
from receiver.sinks.jsonl import JsonlSink


def envelope(event_id: str, event_type: str = "REPLY_COMMAND_FINISH") -> dict[str, object]:
    return {
        "id": event_id,
        "roomid": "r",
        "jobid": "j",
        "data": {"event_type": event_type, "message": {}, "job": None},
    }


async def publish(sink: JsonlSink, event_id: str, event_type: str = "REPLY_COMMAND_FINISH") -> None:
    item = envelope(event_id, event_type)
    await sink.publish(item, orjson.dumps(item))


def ids(path: Path) -> list[str]:
    return [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]


async def test_lines_written_once_even_across_restart(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = JsonlSink(JsonlSinkSettings(name="f", type="jsonl", path=path))
    await sink.start()
    await publish(sink, "a")
    await publish(sink, "b")
    await publish(sink, "a")
    await sink.close()
    again = JsonlSink(JsonlSinkSettings(name="f", type="jsonl", path=path))
    await again.start()
    await publish(again, "b")
    await publish(again, "c")
    await again.close()
    assert ids(path) == ["a", "b", "c"]


async def test_torn_last_line_is_cut_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(orjson.dumps(envelope("a")) + b"\n" + b'{"id": "half-writ')
    sink = JsonlSink(JsonlSinkSettings(name="f", type="jsonl", path=path))
    await sink.start()
    await publish(sink, "b")
    await sink.close()
    assert ids(path) == ["a", "b"]


async def test_path_template_splits_files(tmp_path: Path) -> None:
    sink = JsonlSink(
        JsonlSinkSettings(name="f", type="jsonl", path=tmp_path / "{event_type}.jsonl")
    )
    await sink.start()
    await publish(sink, "a", "SHOOT_SCRIPT_SWITCH")
    await publish(sink, "b", "REPLY_COMMAND_FINISH")
    await sink.close()
    assert ids(tmp_path / "SHOOT_SCRIPT_SWITCH.jsonl") == ["a"]
    assert ids(tmp_path / "REPLY_COMMAND_FINISH.jsonl") == ["b"]

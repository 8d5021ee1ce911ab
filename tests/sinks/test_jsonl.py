import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from receiver.sink_settings import JsonlSinkSettings
from receiver.sinks.base import DeliveryError, InvalidDestination
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


def room_event(room: str, event_id: str) -> tuple[dict[str, object], bytes]:
    item = envelope(event_id)
    item["roomid"] = room
    return item, orjson.dumps(item)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def files_under(directory: Path) -> list[Path]:
    return sorted(path for path in directory.rglob("*") if path.is_file())


async def test_hostile_room_id_stays_in_the_sink_directory(tmp_path: Path) -> None:
    rooms = tmp_path / "sink" / "rooms"
    sink = JsonlSink(JsonlSinkSettings(name="f", type="jsonl", path=rooms / "{room_id}.jsonl"))
    await sink.start()
    try:
        for index, room in enumerate(["../escape", "../../escape", "/abs", "..", "."]):
            await sink.publish(*room_event(room, str(index)))
    finally:
        await sink.close()
    files = files_under(tmp_path)
    assert len(files) == 5
    assert all(path.parent == rooms for path in files), files


async def test_a_rendered_name_too_long_for_a_file_is_an_invalid_destination(
    tmp_path: Path,
) -> None:
    template = tmp_path / "{room_id}{job_id}.jsonl"  # two values of 128: over NAME_MAX
    sink = JsonlSink(JsonlSinkSettings(name="f", type="jsonl", path=template))
    await sink.start()
    try:
        item = envelope("a")
        item["roomid"] = item["jobid"] = "字" * 8000
        (outcome,) = await sink.publish_batch([(item, orjson.dumps(item))])
    finally:
        await sink.close()
    assert isinstance(outcome, InvalidDestination)
    assert not outcome.retryable
    assert "over 255 bytes" in outcome.detail


@pytest.mark.parametrize("fsync", [True, False])
async def test_open_files_stay_within_max_open_files(tmp_path: Path, fsync: bool) -> None:
    settings = JsonlSinkSettings(
        name="f", type="jsonl", path=tmp_path / "{room_id}.jsonl", max_open_files=8, fsync=fsync
    )
    sink = JsonlSink(settings)
    await sink.start()
    before = open_fds()
    try:
        for index in range(40):
            await sink.publish(*room_event(f"room-{index}", f"one-{index}"))
            assert open_fds() - before <= 8
        await sink.publish_batch([room_event(f"room-{i}", f"two-{i}") for i in range(40)])
        assert open_fds() - before <= 8
        # a file closed and opened again still knows the ids it holds
        await sink.publish(*room_event("room-0", "one-0"))
    finally:
        await sink.close()
    assert open_fds() <= before
    assert ids(tmp_path / "room-0.jsonl") == ["one-0", "two-0"]
    assert all(len(ids(tmp_path / f"room-{i}.jsonl")) == 2 for i in range(40))


async def test_remembered_ids_of_templated_files_are_bounded(tmp_path: Path) -> None:
    settings = JsonlSinkSettings(
        name="f", type="jsonl", path=tmp_path / "{room_id}.jsonl", max_open_files=2
    )
    sink = JsonlSink(settings)
    await sink.start()
    try:
        for batch in range(12):
            await sink.publish_batch(
                [room_event(f"room-{batch % 3}", f"{batch}-{i}") for i in range(256)]
            )
        remembered = sum(len(written) for written in sink._written.values())
    finally:
        await sink.close()
    assert remembered <= 2 * 1_000


def failing_for(name: str, real: Callable[..., Any], error: int) -> Callable[..., Any]:
    """``real``, failing with ``error`` for a descriptor of a file called ``name``."""

    def call(fd: int, *args: Any) -> Any:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(name):
            raise OSError(error, os.strerror(error))
        return real(fd, *args)

    return call


@pytest.mark.parametrize("call", ["write", "fdatasync"])
async def test_a_file_that_fails_fails_only_its_own_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    sink = JsonlSink(JsonlSinkSettings(name="f", type="jsonl", path=tmp_path / "{room_id}.jsonl"))
    await sink.start()
    batch = [room_event(room, f"{room}-{i}") for i in range(3) for room in ("a", "bad", "b")]
    try:
        monkeypatch.setattr(os, call, failing_for("bad.jsonl", getattr(os, call), errno.ENOSPC))
        outcomes = await sink.publish_batch(batch)
        monkeypatch.undo()
        assert ids(tmp_path / "bad.jsonl") == []  # cut back: nothing unconfirmed stays
        again = await sink.publish_batch([batch[1], batch[4], batch[7]])
    finally:
        await sink.close()
    rooms = [item["roomid"] for item, _ in batch]
    failed = [room for room, outcome in zip(rooms, outcomes, strict=True) if outcome]
    assert failed == ["bad"] * 3
    assert all(isinstance(o, DeliveryError) and o.retryable for o in outcomes if o)
    assert again == [None] * 3
    assert ids(tmp_path / "a.jsonl") == ["a-0", "a-1", "a-2"]
    assert ids(tmp_path / "b.jsonl") == ["b-0", "b-1", "b-2"]
    assert ids(tmp_path / "bad.jsonl") == ["bad-0", "bad-1", "bad-2"]


async def test_a_directory_that_cannot_be_made_fails_only_its_own_events(
    tmp_path: Path,
) -> None:
    (tmp_path / "bad").write_text("a file where a directory should be")
    sink = JsonlSink(
        JsonlSinkSettings(name="f", type="jsonl", path=tmp_path / "{room_id}" / "out.jsonl")
    )
    await sink.start()
    try:
        outcomes = await sink.publish_batch([room_event(r, r) for r in ("a", "bad", "b")])
    finally:
        await sink.close()
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], DeliveryError) and outcomes[1].retryable
    assert ids(tmp_path / "a" / "out.jsonl") == ["a"]
    assert ids(tmp_path / "b" / "out.jsonl") == ["b"]


async def test_an_envelope_that_cannot_be_rendered_fails_on_its_own(tmp_path: Path) -> None:
    sink = JsonlSink(JsonlSinkSettings(name="f", type="jsonl", path=tmp_path / "{room_id}.jsonl"))
    await sink.start()
    broken = {"id": "broken"}  # no data: nothing to render the path from
    try:
        outcomes = await sink.publish_batch(
            [room_event("a", "a"), (broken, orjson.dumps(broken)), room_event("b", "b")]
        )
    finally:
        await sink.close()
    assert outcomes[0] is None and outcomes[2] is None
    assert outcomes[1] is not None and not isinstance(outcomes[1], DeliveryError)
    assert ids(tmp_path / "a.jsonl") == ["a"]
    assert ids(tmp_path / "b.jsonl") == ["b"]

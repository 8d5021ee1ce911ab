"""One event's failure, at any stage, ends that event's way in a dead letter: never a lane's.

Each test makes one room's event fail at one stage and checks that the event is
dead-lettered (or forwarded flagged) with the reason, that the intake is drained, and that
every other event, of other rooms and of the same lane after it, is delivered.
"""

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson

from receiver.config import PipelineSettings, RouteSettings
from receiver.intake import IntakeRecord
from receiver.intake.sqlite import SqliteIntake
from receiver.metrics import Metrics
from receiver.pipeline import UNROUTED, Pipeline
from receiver.routing import Router
from receiver.sink_settings import JsonlSinkSettings
from receiver.sinks import Sink
from receiver.sinks.jsonl import JsonlSink
from tests.pipeline.support import (
    FAST_RETRY,
    MemoryDeadLetters,
    RecordingSink,
    callback_payload,
    run_pipeline,
)

# Every room in the same lane of a one-lane pipeline would hide nothing; four lanes and
# rooms spread over them show that neither the failing lane nor the others stop.
ROOMS = [f"room{n}" for n in range(6)]
EVENTS = [("REPLY_COMMAND_FINISH", ROOMS[n % len(ROOMS)], n) for n in range(30)]


class RaisingSink(RecordingSink):
    """Raises ``error`` (not a DeliveryError) for every event of ``room``."""

    def __init__(self, name: str, room: str, error: Exception) -> None:
        super().__init__(name)
        self.room = room
        self.error = error

    async def publish(self, envelope: dict[str, Any], body: bytes) -> None:
        self.attempts += 1
        if envelope["roomid"] == self.room:
            raise self.error
        self.received.append(envelope)


def delivered_ids(sink: RecordingSink) -> set[str]:
    return {e["id"] for e in sink.received}


def expected_ids(skip_room: str = "") -> set[str]:
    return {f"{room}-{n}" for _, room, n in EVENTS if room != skip_room}


async def test_an_unexpected_sink_error_dead_letters_at_once(tmp_path: Path) -> None:
    sink = RaisingSink("broken", "room2", ValueError("routing key too long"))
    dead = MemoryDeadLetters()
    intake = await run_pipeline(
        tmp_path, {"broken": sink}, [RouteSettings(sinks=["broken"])], EVENTS, dead
    )
    failing = expected_ids() - expected_ids("room2")
    assert delivered_ids(sink) == expected_ids("room2")
    # each failing event tried once (not retried for an hour), then kept with the reason
    assert sorted(letter[0] for letter in dead.letters) == sorted(failing)
    assert {letter[2] for letter in dead.letters} == {1}
    assert all("ValueError: routing key too long" in letter[3] for letter in dead.letters)
    assert sink.attempts == len(EVENTS)
    assert intake.depth() == 0
    await intake.close()


async def test_an_enrichment_that_raises_forwards_the_event_unavailable(tmp_path: Path) -> None:
    async def enrich(envelope: dict[str, Any]) -> None:
        if envelope["roomid"] == "room3":
            raise RuntimeError("a bug in a lookup")
        envelope["data"]["enrichment"] = {"status": "ok"}

    sink = RecordingSink("out")
    intake = await run_pipeline(
        tmp_path, {"out": sink}, [RouteSettings(sinks=["out"])], EVENTS, enrich=enrich
    )
    assert delivered_ids(sink) == expected_ids()
    statuses = {e["roomid"]: e["data"]["enrichment"] for e in sink.received}
    assert statuses["room3"] == {
        "status": "unavailable",
        "source": "api",
        "error": "internal error: RuntimeError",
    }
    assert statuses["room1"] == {"status": "ok"}
    assert intake.depth() == 0
    await intake.close()


class RaisingRouter(Router):
    """A router whose rule evaluation raises for one room."""

    def __init__(self, routes: list[RouteSettings], room: str) -> None:
        super().__init__(routes)
        self.room = room

    def sinks_for(self, envelope: dict[str, Any]) -> list[str]:
        if envelope["roomid"] == self.room:
            raise KeyError("data")
        return super().sinks_for(envelope)


async def _run_with(
    tmp_path: Path,
    sink: Sink,
    router: Router,
    payloads: list[tuple[str, str, bytes]],
    dead: MemoryDeadLetters,
    *,
    enrich: Any = None,
    intake: SqliteIntake | None = None,
    observer: Any = None,
) -> SqliteIntake:
    intake = intake or SqliteIntake(
        tmp_path / "intake.db", max_pending=1000, fsync=False, batch_max=64
    )
    await intake.start()
    for event_id, room, payload in payloads:
        await intake.append(event_id, room, time.time(), payload, time.time() + 60)
    pipeline = Pipeline(
        intake,
        {sink.name: sink},
        router,
        dead,
        PipelineSettings(lanes=4, max_in_flight=7, retry=FAST_RETRY),
        Metrics(),
        enrich=enrich,
        observer=observer,
    )
    pipeline.start()
    async with asyncio.timeout(20):
        while intake.depth():
            await asyncio.sleep(0.01)
    await pipeline.stop(1)
    return intake


def stored() -> list[tuple[str, str, bytes]]:
    """EVENTS as (event id, room, stored envelope)."""
    payloads = []
    for event_type, room, n in EVENTS:
        event_id, payload = callback_payload(event_type, room, n)
        payloads.append((event_id, room, payload))
    return payloads


async def test_a_route_that_raises_dead_letters_the_event_unrouted(tmp_path: Path) -> None:
    sink = RecordingSink("out")
    dead = MemoryDeadLetters()
    payloads = stored()
    for enrich in (None, _ok_enrichment):  # routed at once, and routed in the route lanes
        sink.received.clear()
        dead.letters.clear()
        intake = await _run_with(
            tmp_path / str(enrich is None),
            sink,
            RaisingRouter([RouteSettings(sinks=["out"], room_ids=["room*"])], "room4"),
            payloads,
            dead,
            enrich=enrich,
        )
        assert delivered_ids(sink) == expected_ids("room4")
        assert {letter[1] for letter in dead.letters} == {UNROUTED}
        assert sorted(letter[0] for letter in dead.letters) == sorted(
            expected_ids() - expected_ids("room4")
        )
        assert all(letter[3] == "route: KeyError: 'data'" for letter in dead.letters)
        assert intake.depth() == 0
        await intake.close()


class Told:
    """An observer that remembers what it was told."""

    def __init__(self) -> None:
        self.sinks_of: dict[str, list[str]] = {}
        self.outcomes: list[tuple[str, str, str]] = []

    def routed(self, envelope: dict[str, Any], body: bytes, sinks: list[str]) -> None:
        self.sinks_of[envelope["id"]] = sinks

    def settled(self, event_id: str, sink: str, outcome: str, error: str = "") -> None:
        self.outcomes.append((event_id, sink, outcome))


async def test_an_event_that_failed_before_routing_is_still_observed(tmp_path: Path) -> None:
    told = Told()
    dead = MemoryDeadLetters()
    router = RaisingRouter([RouteSettings(sinks=["out"], room_ids=["room*"])], "room4")
    intake = await _run_with(tmp_path, RecordingSink("out"), router, stored(), dead, observer=told)
    failed = expected_ids() - expected_ids("room4")
    assert failed and all(told.sinks_of[event_id] == [] for event_id in failed)
    assert {(e, s, o) for e, s, o in told.outcomes if e in failed} == {
        (event_id, UNROUTED, "dead_lettered") for event_id in failed
    }
    await intake.close()


async def _ok_enrichment(envelope: dict[str, Any]) -> None:
    envelope["data"]["enrichment"] = {"status": "ok"}


async def test_a_stored_record_that_does_not_decode_is_dead_lettered(tmp_path: Path) -> None:
    sink = RecordingSink("out")
    dead = MemoryDeadLetters()
    payloads = stored()
    payloads.insert(3, ("torn", "room1", b'{"specversion": "1.0", "da'))
    payloads.insert(7, ("listed", "room2", orjson.dumps(["not", "an", "envelope"])))
    intake = await _run_with(tmp_path, sink, Router([RouteSettings(sinks=["out"])]), payloads, dead)
    assert delivered_ids(sink) == expected_ids()
    assert sorted((letter[0], letter[1]) for letter in dead.letters) == [
        ("listed", UNROUTED),
        ("torn", UNROUTED),
    ]
    assert all(letter[3].startswith("decode: ") for letter in dead.letters)
    assert intake.depth() == 0
    await intake.close()


async def test_a_jsonl_file_that_cannot_be_written_fails_only_its_own_events(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "room2").write_text("a file where the room's directory should be")
    settings = JsonlSinkSettings(name="files", type="jsonl", path=out / "{room_id}" / "e.jsonl")
    sink = JsonlSink(settings)
    dead = MemoryDeadLetters()
    intake = await run_pipeline(
        tmp_path, {"files": sink}, [RouteSettings(sinks=["files"])], EVENTS, dead
    )
    written = {
        orjson.loads(line)["id"]
        for path in out.glob("*/e.jsonl")
        for line in path.read_bytes().splitlines()
    }
    assert written == expected_ids("room2")
    # the room's own events are retried and kept once the attempts run out, no others
    assert sorted(letter[0] for letter in dead.letters) == sorted(
        expected_ids() - expected_ids("room2")
    )
    assert {letter[2] for letter in dead.letters} == {FAST_RETRY.max_attempts}
    assert intake.depth() == 0
    await intake.close()


class DefectiveIntake(SqliteIntake):
    """Hands the record of ``defective`` out as an entry that could not be read back."""

    defective = ""

    async def take(self, limit: int, wait_seconds: float) -> list[IntakeRecord]:
        records = await super().take(limit, wait_seconds)
        for record in records:
            if record.event_id == self.defective:
                record.defect = "ValueError('bad Receiver-At header')"
        return records


async def test_a_stored_entry_with_a_defect_is_dead_lettered(tmp_path: Path) -> None:
    """A broker entry whose fields did not read back is dead-lettered, however its payload."""
    sink = RecordingSink("out")
    dead = MemoryDeadLetters()
    payloads = stored()
    intake = DefectiveIntake(tmp_path / "intake.db", max_pending=1000, fsync=False, batch_max=64)
    intake.defective = payloads[4][0]
    await _run_with(
        tmp_path, sink, Router([RouteSettings(sinks=["out"])]), payloads, dead, intake=intake
    )
    assert delivered_ids(sink) == expected_ids() - {f"{ROOMS[4]}-4"}
    ((event_id, sink_name, _, error),) = dead.letters
    assert (event_id, sink_name) == (payloads[4][0], UNROUTED)
    assert error.startswith("decode: ") and "malformed" in error
    assert intake.depth() == 0
    await intake.close()

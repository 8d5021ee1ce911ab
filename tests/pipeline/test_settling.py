"""How events leave the pipeline: acked when done, dropped when their partition moved on.

The acks of events that finished are not lost to a shutdown's cancellation, and an event
whose intake record this process no longer holds (a replicated intake's partition that
was lost or handed off) is neither published again nor acked: it is given back.
"""

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from receiver.config import PipelineSettings, RetrySettings, RouteSettings
from receiver.intake import IntakeRecord
from receiver.intake.sqlite import SqliteIntake
from receiver.metrics import Metrics
from receiver.pipeline import Pipeline
from receiver.routing import Router
from receiver.sinks import DeliveryError
from tests.pipeline.support import MemoryDeadLetters, RecordingSink, callback_payload


class SlowAckIntake(SqliteIntake):
    """Its first ``ack_many`` takes ``delay`` seconds (a slow commit)."""

    delay = 1.0

    async def ack_many(self, records: Sequence[IntakeRecord]) -> None:
        delay, self.delay = self.delay, 0.0
        await asyncio.sleep(delay)
        await super().ack_many(records)


async def store(intake: SqliteIntake, rooms: Sequence[str], per_room: int) -> None:
    for n in range(per_room):
        for room in rooms:
            event_id, payload = callback_payload("REPLY_COMMAND_FINISH", room, n)
            await intake.append(event_id, room, time.time(), payload, time.time() + 60)


async def test_stop_acks_what_finished_before_the_drain_ran_out(tmp_path: Path) -> None:
    intake = SlowAckIntake(tmp_path / "intake.db", max_pending=100, fsync=False, batch_max=64)
    await intake.start()
    await store(intake, ["a", "b"], 3)
    sink = RecordingSink("out")
    pipeline = Pipeline(
        intake,
        {"out": sink},
        Router([RouteSettings(sinks=["out"])]),
        MemoryDeadLetters(),
        PipelineSettings(lanes=2),
        Metrics(),
    )
    pipeline.start()
    async with asyncio.timeout(10):
        while len(sink.received) < 6:
            await asyncio.sleep(0.01)
    await pipeline.stop(0.1)  # the drain ends while the ack is still under way
    assert intake.depth() == 0
    await intake.close()
    reopened = SqliteIntake(tmp_path / "intake.db", max_pending=100, fsync=False, batch_max=64)
    await reopened.start()
    assert await reopened.take(100, wait_seconds=0) == []  # nothing delivered again
    await reopened.close()


class MovingIntake(SqliteIntake):
    """A stand-in for a replicated intake: the records of ``moved`` rooms stop being held."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, max_pending=100, fsync=False, batch_max=64)
        self.moved: set[str] = set()
        self.dropped: list[str] = []
        self.acked: list[str] = []

    def holds(self, record: IntakeRecord) -> bool:
        return record.room_id not in self.moved

    def drop(self, records: Sequence[IntakeRecord]) -> None:
        self.dropped.extend(record.event_id for record in records)

    async def ack_many(self, records: Sequence[IntakeRecord]) -> None:
        self.acked.extend(record.event_id for record in records)
        await super().ack_many(records)


class FailingUntilMovedSink(RecordingSink):
    """Fails every publish of room ``lost`` (retryably) and moves that room away at once."""

    def __init__(self, name: str, intake: MovingIntake) -> None:
        super().__init__(name)
        self.intake = intake
        self.tried: list[str] = []

    async def publish(self, envelope: dict[str, Any], body: bytes) -> None:
        self.tried.append(envelope["id"])
        if envelope["roomid"] == "lost":
            self.intake.moved.add("lost")
            raise DeliveryError("broker timeout")
        self.received.append(envelope)


async def test_events_of_a_partition_that_moved_on_are_dropped_not_retried(
    tmp_path: Path,
) -> None:
    intake = MovingIntake(tmp_path / "intake.db")
    await intake.start()
    await store(intake, ["kept", "lost"], 4)
    sink = FailingUntilMovedSink("out", intake)
    other = RecordingSink("other")
    dead = MemoryDeadLetters()
    pipeline = Pipeline(
        intake,
        {"out": sink, "other": other},
        Router([RouteSettings(sinks=["out", "other"])]),
        dead,
        PipelineSettings(
            lanes=2, retry=RetrySettings(initial_backoff_seconds=0.01, max_backoff_seconds=0.02)
        ),
        Metrics(),
    )
    pipeline.start()
    async with asyncio.timeout(10):
        while len(intake.acked) < 4 or len(intake.dropped) < 4:
            await asyncio.sleep(0.01)
    await pipeline.stop(1)
    lost = {f"lost-{n}" for n in range(4)}
    assert set(intake.dropped) == lost
    assert set(intake.acked) == {f"kept-{n}" for n in range(4)}
    # the failed event was not tried again once its partition had moved, nor the others
    assert [event for event in sink.tried if event.startswith("lost")] == ["lost-0"]
    assert dead.letters == []
    assert pipeline.in_flight == 0
    await intake.close()

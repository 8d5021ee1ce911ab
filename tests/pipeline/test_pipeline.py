from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from receiver.config import RouteSettings
from receiver.sink_settings import JsonlSinkSettings
from receiver.sinks import DeliveryError, Sink
from receiver.sinks.base import Delivery
from receiver.sinks.jsonl import JsonlSink
from tests.pipeline.support import MemoryDeadLetters, RecordingSink, run_pipeline


async def test_order_per_room_and_intake_drained(tmp_path: Path) -> None:
    jsonl = JsonlSink(JsonlSinkSettings(name="file", type="jsonl", path=tmp_path / "out.jsonl"))
    flaky = RecordingSink("flaky", failures=2)
    events = [("REPLY_COMMAND_FINISH", f"room{n % 5}", n) for n in range(60)]
    intake = await run_pipeline(
        tmp_path, {"file": jsonl, "flaky": flaky}, [RouteSettings(sinks=["file", "flaky"])], events
    )
    lines = [orjson.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert len(lines) == 60 and len(flaky.received) == 60
    for delivered in (lines, flaky.received):
        for room in range(5):
            sequence = [
                int(e["data"]["message"]["reply_id"])
                for e in delivered
                if e["roomid"] == f"room{room}"
            ]
            assert sequence == sorted(sequence) and len(sequence) == 12
    assert flaky.attempts == 62
    assert await intake.take(100, wait_seconds=0) == []
    await intake.close()


async def test_exhausted_retries_dead_letter_and_ack(tmp_path: Path) -> None:
    down = RecordingSink("down", failures=10**6)
    healthy = RecordingSink("healthy")
    dead = MemoryDeadLetters()
    events = [("REPLY_COMMAND_FINISH", "r", n) for n in range(3)]
    intake = await run_pipeline(
        tmp_path,
        {"down": down, "healthy": healthy},
        [RouteSettings(sinks=["down", "healthy"])],
        events,
        dead,
    )
    assert [letter[:3] for letter in dead.letters] == [
        ("r-0", "down", 3),
        ("r-1", "down", 3),
        ("r-2", "down", 3),
    ]
    assert len(healthy.received) == 3
    assert intake.depth() == 0
    await intake.close()


async def test_non_retryable_failure_dead_letters_at_once(tmp_path: Path) -> None:
    refusing = RecordingSink("refusing", failures=1, retryable=False)
    dead = MemoryDeadLetters()
    intake = await run_pipeline(
        tmp_path,
        {"refusing": refusing},
        [RouteSettings(sinks=["refusing"])],
        [("REPLY_COMMAND_FINISH", "r", 1)],
        dead,
    )
    assert dead.letters == [("r-1", "refusing", 1, "broker said no")]
    assert refusing.attempts == 1
    await intake.close()


@pytest.mark.parametrize("unrouted_type", ["SHOOT_SCRIPT_SWITCH"])
async def test_routes_pick_sinks_by_event_type(tmp_path: Path, unrouted_type: str) -> None:
    replies = RecordingSink("replies")
    everything = RecordingSink("everything")
    routes = [
        RouteSettings(event_types=["REPLY_COMMAND_FINISH"], sinks=["replies"]),
        RouteSettings(room_ids=["vip-*"], sinks=["everything"]),
    ]
    events = [
        ("REPLY_COMMAND_FINISH", "vip-1", 1),
        (unrouted_type, "plain", 2),
        ("NEW_TYPE", "vip-2", 3),
    ]
    intake = await run_pipeline(
        tmp_path, {"replies": replies, "everything": everything}, routes, events
    )
    assert [e["id"] for e in replies.received] == ["vip-1-1"]
    assert sorted(e["id"] for e in everything.received) == ["vip-1-1", "vip-2-3"]
    assert intake.depth() == 0
    await intake.close()


class BatchFailingSink(Sink):
    """Confirms whole batches (one lane); fails the first ``failures`` batches entirely."""

    lanes = 1

    def __init__(self, name: str, failures: int) -> None:
        super().__init__(name)
        self.failures = failures
        self.batches: list[int] = []
        self.received: list[dict[str, Any]] = []

    async def publish(self, envelope: dict[str, Any], body: bytes) -> None:
        raise AssertionError("the pipeline publishes batches")

    async def publish_batch(self, batch: Sequence[Delivery]) -> list[BaseException | None]:
        self.batches.append(len(batch))
        if self.failures:
            self.failures -= 1
            return [DeliveryError("disk full")] * len(batch)
        self.received.extend(envelope for envelope, _ in batch)
        return [None] * len(batch)


async def test_a_batch_sink_gets_batches_and_a_failed_batch_is_retried_whole(
    tmp_path: Path,
) -> None:
    sink = BatchFailingSink("batch", failures=2)
    events = [("REPLY_COMMAND_FINISH", f"room{n % 3}", n) for n in range(7)]
    intake = await run_pipeline(tmp_path, {"batch": sink}, [RouteSettings(sinks=["batch"])], events)
    assert [int(e["data"]["message"]["reply_id"]) for e in sink.received] == list(range(7))
    assert max(sink.batches) > 1  # one lane: the events went together
    assert sum(sink.batches[:2]) == 2 * sink.batches[0]  # the failed batch, retried whole
    assert intake.depth() == 0
    await intake.close()


class PrefixSink(RecordingSink):
    """Fails one chosen event once; the default publish_batch stops there."""

    def __init__(self, name: str, fail_reply: str) -> None:
        super().__init__(name)
        self.fail_reply = fail_reply
        self.tried: list[str] = []

    async def publish(self, envelope: dict[str, Any], body: bytes) -> None:
        reply = envelope["data"]["message"]["reply_id"]
        self.tried.append(reply)
        if reply == self.fail_reply:
            self.fail_reply = ""
            raise DeliveryError("timeout")
        self.received.append(envelope)


async def test_after_a_failure_in_a_batch_the_rest_waits_and_keeps_its_order(
    tmp_path: Path,
) -> None:
    sink = PrefixSink("prefix", fail_reply="2")
    events = [("REPLY_COMMAND_FINISH", "room", n) for n in range(6)]
    intake = await run_pipeline(
        tmp_path, {"prefix": sink}, [RouteSettings(sinks=["prefix"])], events
    )
    delivered = [e["data"]["message"]["reply_id"] for e in sink.received]
    assert delivered == ["0", "1", "2", "3", "4", "5"]
    assert sink.tried.count("2") == 2 and sink.tried.count("3") == 1  # 3 waited, tried once
    await intake.close()

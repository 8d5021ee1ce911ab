"""Pipeline test helpers: recording sinks, in-memory dead letters, a pipeline run."""

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson

from receiver.config import PipelineSettings, RetrySettings, RouteSettings
from receiver.envelope import build_envelope
from receiver.events import parse_callback
from receiver.intake.sqlite import SqliteIntake
from receiver.metrics import Metrics
from receiver.pipeline import Enrich, Pipeline
from receiver.routing import Router
from receiver.sinks import DeliveryError, Sink


class RecordingSink(Sink):
    """Fails its first ``failures`` publishes, then records envelopes in order."""

    def __init__(self, name: str, failures: int = 0, retryable: bool = True) -> None:
        super().__init__(name)
        self.failures = failures
        self.retryable = retryable
        self.attempts = 0
        self.received: list[dict[str, Any]] = []

    async def publish(self, envelope: dict[str, Any], body: bytes) -> None:
        self.attempts += 1
        if self.failures:
            self.failures -= 1
            raise DeliveryError("broker said no", retryable=self.retryable)
        assert orjson.loads(body) == envelope
        self.received.append(envelope)


class MemoryDeadLetters:
    def __init__(self) -> None:
        self.letters: list[tuple[str, str, int, str]] = []

    async def add(
        self,
        event_id: str,
        sink: str,
        body: bytes,
        attempts: int,
        last_error: str,
        first_attempt_at: float,
        dead_at: float,
    ) -> int:
        self.letters.append((event_id, sink, attempts, last_error))
        return len(self.letters)


def callback_payload(event_type: str, room: str, n: int) -> tuple[str, bytes]:
    message = orjson.dumps({"room_id": room, "job_id": f"job-{room}", "reply_id": str(n)}).decode()
    callback = parse_callback(orjson.dumps({"event_type": event_type, "message": message}))
    event_id = f"{room}-{n}"
    return event_id, orjson.dumps(build_envelope(callback, event_id, time.time(), "https://x/cb"))


FAST_RETRY = RetrySettings(max_attempts=3, initial_backoff_seconds=0.001, max_backoff_seconds=0.002)


async def run_pipeline(
    tmp_path: Path,
    sinks: dict[str, Sink],
    routes: list[RouteSettings],
    events: list[tuple[str, str, int]],
    dead: MemoryDeadLetters | None = None,
    *,
    intake: SqliteIntake | None = None,
    enrich: Enrich | None = None,
) -> SqliteIntake:
    """Store ``events``, run a pipeline over them until the intake is empty, stop it."""
    intake = intake or SqliteIntake(
        tmp_path / "intake.db", max_pending=10_000, fsync=False, batch_max=64
    )
    await intake.start()
    for event_type, room, n in events:
        event_id, payload = callback_payload(event_type, room, n)
        await intake.append(event_id, room, time.time(), payload, time.time() + 60)
    for sink in sinks.values():
        await sink.start()
    pipeline = Pipeline(
        intake,
        sinks,
        Router(routes),
        dead or MemoryDeadLetters(),
        PipelineSettings(lanes=4, max_in_flight=7, retry=FAST_RETRY),
        Metrics(),
        enrich=enrich,
    )
    pipeline.start()
    async with asyncio.timeout(20):
        while intake.depth():
            await asyncio.sleep(0.01)
    await pipeline.stop(1)
    for sink in sinks.values():
        await sink.close()
    return intake

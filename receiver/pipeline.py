"""Workers that move events from the intake to the sinks, in order per room.

An event taken from the intake goes to a lane chosen by its room (so one room's events
stay in order), is enriched and routed there, then handed to one queue per routed sink and
lane: a sink that is down holds back only its own queues. The intake entry is acked when
every routed sink confirmed it or it was dead-lettered for that sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from receiver.config import EnrichmentSettings, PipelineSettings, RetrySettings
from receiver.intake import Intake, IntakeRecord
from receiver.metrics import Metrics
from receiver.routing import Router
from receiver.sink_settings import BaseSinkSettings
from receiver.sinks import DeliveryError, Sink
from receiver.tracing import Tracing

log = logging.getLogger("receiver.pipeline")

Enrich = Callable[[dict[str, Any]], Awaitable[None]]


class DeadLetters(Protocol):
    """Where events that exhausted their retries are kept."""

    async def add(
        self,
        event_id: str,
        sink: str,
        body: bytes,
        attempts: int,
        last_error: str,
        first_attempt_at: float,
        dead_at: float,
    ) -> int: ...


@dataclass(slots=True)
class _Event:
    record: IntakeRecord
    envelope: dict[str, Any] = field(default_factory=dict)
    body: bytes = b""
    pending: int = 0


@dataclass(frozen=True, slots=True)
class _Policy:
    max_attempts: int
    max_age_seconds: float
    initial_backoff: float
    max_backoff: float

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, initial * 2**attempt)]."""
        return random.uniform(
            0, min(self.max_backoff, self.initial_backoff * 2 ** min(attempt, 30))
        )


def _policy(retry: RetrySettings, sink: BaseSinkSettings | None) -> _Policy:
    max_attempts = (sink.max_attempts if sink else None) or retry.max_attempts
    max_age = (sink.max_age_seconds if sink else None) or retry.max_age_seconds
    return _Policy(max_attempts, max_age, retry.initial_backoff_seconds, retry.max_backoff_seconds)


class Pipeline:
    """Consumes the intake until stopped; see the module docstring."""

    def __init__(
        self,
        intake: Intake,
        sinks: Mapping[str, Sink],
        router: Router,
        dead_letters: DeadLetters,
        settings: PipelineSettings,
        metrics: Metrics,
        enrich: Enrich | None = None,
        enrichment: EnrichmentSettings | None = None,
        sink_settings: Sequence[BaseSinkSettings] = (),
        tracing: Tracing | None = None,
    ) -> None:
        self._intake = intake
        self._sinks = dict(sinks)
        self._router = router
        self._dead_letters = dead_letters
        self._settings = settings
        self._metrics = metrics
        self._enrich = enrich
        self._tracing = tracing or Tracing()
        self._enrichment = enrichment or EnrichmentSettings()
        overrides = {item.name: item for item in sink_settings}
        self._policies = {
            name: _policy(settings.retry, overrides.get(name)) for name in self._sinks
        }
        lanes = settings.lanes
        self._lanes: list[asyncio.Queue[_Event]] = [asyncio.Queue() for _ in range(lanes)]
        self._sink_lanes = {
            name: [asyncio.Queue[_Event]() for _ in range(lanes)] for name in self._sinks
        }
        self._in_flight = 0
        self._room = asyncio.Condition()
        self._acks: list[IntakeRecord] = []
        self._ack_tasks: set[asyncio.Task[None]] = set()
        self._delivered = metrics.events_delivered
        self._publish_seconds = {name: metrics.sink_publish_seconds.labels(name) for name in sinks}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._cancelled = False

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def start(self) -> None:
        """Start the feeder and the lane workers on the running loop."""
        spawn = asyncio.get_running_loop().create_task
        self._tasks.append(spawn(self._feed(), name="pipeline-feed"))
        for index, lane in enumerate(self._lanes):
            self._tasks.append(spawn(self._route_lane(index, lane), name=f"pipeline-lane-{index}"))
        for name, queues in self._sink_lanes.items():
            for index, lane in enumerate(queues):
                task = spawn(self._sink_lane(name, lane), name=f"pipeline-{name}-{index}")
                self._tasks.append(task)

    async def stop(self, drain_seconds: float) -> None:
        """Stop taking events, let what is in flight finish for a while, then cancel.

        Whatever is not acked by then stays in the intake and is delivered after restart.
        """
        self._stopping = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(drain_seconds), self._room:
                await self._room.wait_for(lambda: self._in_flight == 0)
        self._cancelled = True
        for task in self._tasks:
            task.cancel()
        # A client library may turn the cancellation into an ordinary error that a retry
        # loop catches; ``_cancelled`` ends those loops, and the wait is bounded anyway.
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5.0)
        self._tasks.clear()

    async def _feed(self) -> None:
        window = self._settings.max_in_flight
        while not self._stopping:
            async with self._room:
                await self._room.wait_for(lambda: self._in_flight < window)
            try:
                records = await self._intake.take(window - self._in_flight, wait_seconds=0.5)
            except Exception:
                log.exception("intake read failed; retrying")
                await asyncio.sleep(1.0)
                continue
            for record in records:
                self._in_flight += 1
                lane = zlib.crc32(record.room_id.encode()) % len(self._lanes)
                self._lanes[lane].put_nowait(_Event(record))

    async def _route_lane(self, index: int, lane: asyncio.Queue[_Event]) -> None:
        while True:
            event = await lane.get()
            event.envelope = event.record.envelope or orjson.loads(event.record.payload)
            if self._enrich is not None:
                await self._enrich(event.envelope)
            event.body = orjson.dumps(event.envelope)
            targets = [
                name for name in self._router.sinks_for(event.envelope) if name in self._sinks
            ]
            status = event.envelope["data"]["enrichment"]["status"]
            refused = (
                status == "not_found" and self._enrichment.on_not_found == "dead_letter"
            ) or (status == "mismatch" and self._enrichment.on_mismatch == "dead_letter")
            if not targets:
                log.info("no route", extra={"event_id": event.record.event_id})
                await self._finish(event)
                continue
            if refused:
                now = time.time()
                for name in targets:
                    await self._dead_letter(event, name, 0, f"enrichment: {status}", now, status)
                await self._finish(event)
                continue
            event.pending = len(targets)
            for name in targets:
                self._sink_lanes[name][index].put_nowait(event)

    async def _sink_lane(self, name: str, lane: asyncio.Queue[_Event]) -> None:
        sink = self._sinks[name]
        while True:
            event = await lane.get()
            await self._deliver(sink, event)
            event.pending -= 1
            if event.pending == 0:
                await self._finish(event)

    async def _deliver(self, sink: Sink, event: _Event) -> None:
        policy = self._policies[sink.name]
        first = time.time()
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            attributes = {"sink": sink.name, "event_id": event.record.event_id, "attempt": attempt}
            try:
                with self._tracing.span(
                    f"publish {sink.name}", attributes, event.envelope.get("traceparent")
                ):
                    await sink.publish(event.envelope, event.body)
            except Exception as error:  # a sink bug must not kill the lane either
                detail = error.detail if isinstance(error, DeliveryError) else repr(error)
                retryable = not isinstance(error, DeliveryError) or error.retryable
                self._metrics.sink_failures.labels(sink.name, str(retryable).lower()).inc()
                exhausted = attempt >= policy.max_attempts
                too_old = time.time() - first >= policy.max_age_seconds
                if not retryable or exhausted or too_old:
                    reason = "rejected" if not retryable else "exhausted"
                    await self._dead_letter(event, sink.name, attempt, detail, first, reason)
                    return
                log.warning(
                    "publish failed; retrying",
                    extra={
                        "sink": sink.name,
                        "event_id": event.record.event_id,
                        "attempt": attempt,
                        "error": detail,
                    },
                )
                if self._cancelled:
                    raise asyncio.CancelledError from error
                await asyncio.sleep(policy.backoff(attempt))
                continue
            self._publish_seconds[sink.name].observe(time.perf_counter() - started)
            return

    async def _dead_letter(
        self, event: _Event, sink: str, attempts: int, error: str, first: float, reason: str
    ) -> None:
        backoff = 0.5
        while True:
            try:
                await self._dead_letters.add(
                    event.record.event_id, sink, event.body, attempts, error, first, time.time()
                )
                break
            except Exception:  # the event stays in the intake until this succeeds
                log.exception("dead letter store failed; retrying")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
        self._metrics.dead_letters.labels(sink, reason).inc()
        log.warning(
            "dead-lettered",
            extra={"sink": sink, "event_id": event.record.event_id, "error": error},
        )

    async def _finish(self, event: _Event) -> None:
        """Queue the event's ack; acks that finish together go to the intake at once."""
        self._acks.append(event.record)
        if len(self._acks) == 1:
            self._ack_tasks.add(asyncio.get_running_loop().create_task(self._ack_batch()))

    async def _ack_batch(self) -> None:
        await asyncio.sleep(0)  # let the acks of this loop iteration join the batch
        batch, self._acks = self._acks, []
        backoff = 0.1
        while True:
            try:
                await self._intake.ack_many(batch)
                break
            except Exception:
                log.exception("intake ack failed; retrying")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
        self._delivered.inc(len(batch))
        async with self._room:
            self._in_flight -= len(batch)
            self._room.notify_all()
        task = asyncio.current_task()
        if task is not None:
            self._ack_tasks.discard(task)

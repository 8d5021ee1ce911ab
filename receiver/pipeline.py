"""Workers that move events from the intake to the sinks, in order per room.

Events taken from the intake are routed (enriched first when enrichment is on; then in
lanes by room, so a room's events stay in order and a slow lookup holds back only its
lane) and queued in each routed sink's lane for their room. A sink has ``pipeline.lanes``
lanes, or one when it confirms a whole batch at once (a file). A lane publishes what has
queued in it as one batch, in order, and retries what failed before anything after it:
a room's events keep their order, and a sink that is down holds back only its own lanes.
The intake entry is acked when every routed sink confirmed the event or dead-lettered it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import zlib
from collections import deque
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

_MAX_BATCH = 256  # events per publish_batch call


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


@dataclass(slots=True, eq=False)
class _Event:
    record: IntakeRecord
    lane: int  # of ``pipeline.lanes``, by room
    envelope: dict[str, Any]
    body: bytes  # the envelope's JSON encoding
    pending: int = 0  # sinks still to confirm


@dataclass(slots=True, eq=False)
class _Try:
    """An event's failed attempts at one sink."""

    attempts: int
    first: float
    error: str = ""


@dataclass(slots=True, eq=False)
class _Lane:
    queue: deque[_Event] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)


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
        self._lanes = settings.lanes
        # With enrichment, events are routed in lanes (a lookup may wait); without, at once.
        self._route_lanes: list[asyncio.Queue[_Event]] = (
            [asyncio.Queue() for _ in range(self._lanes)] if enrich is not None else []
        )
        self._sink_lanes = {
            name: [_Lane() for _ in range(sink.lanes or self._lanes)]
            for name, sink in self._sinks.items()
        }
        self._in_flight = 0
        self._space = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._finished: list[IntakeRecord] = []
        self._finished_any = asyncio.Event()
        self._delivered = metrics.events_delivered
        self._publish_seconds = {name: metrics.sink_publish_seconds.labels(name) for name in sinks}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._cancelled = False

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def start(self) -> None:
        """Start the feeder, the acknowledger and the lane workers on the running loop."""
        spawn = asyncio.get_running_loop().create_task
        self._tasks.append(spawn(self._feed(), name="pipeline-feed"))
        self._tasks.append(spawn(self._acknowledge(), name="pipeline-ack"))
        for index, queue in enumerate(self._route_lanes):
            self._tasks.append(spawn(self._route_lane(queue), name=f"pipeline-route-{index}"))
        for name, lanes in self._sink_lanes.items():
            for index, lane in enumerate(lanes):
                task = spawn(
                    self._sink_lane(self._sinks[name], lane), name=f"pipeline-{name}-{index}"
                )
                self._tasks.append(task)

    async def stop(self, drain_seconds: float) -> None:
        """Stop taking events, let what is in flight finish for a while, then cancel.

        Whatever is not acked by then stays in the intake and is delivered after restart.
        """
        self._stopping = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(drain_seconds):
                await self._idle.wait()
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
        route_lanes = self._route_lanes
        lanes = self._lanes
        while not self._stopping:
            if self._in_flight >= window:
                self._space.clear()
                await self._space.wait()
                continue
            try:
                records = await self._intake.take(window - self._in_flight, wait_seconds=0.5)
            except Exception:
                log.exception("intake read failed; retrying")
                await asyncio.sleep(1.0)
                continue
            if records:
                self._in_flight += len(records)
                self._idle.clear()
            for record in records:
                lane = zlib.crc32(record.room_id.encode()) % lanes
                envelope = record.envelope or orjson.loads(record.payload)
                event = _Event(record, lane, envelope, record.payload)
                if route_lanes:
                    route_lanes[lane].put_nowait(event)
                else:
                    self._dispatch(event, self._router.sinks_for(envelope))

    async def _route_lane(self, queue: asyncio.Queue[_Event]) -> None:
        assert self._enrich is not None
        while True:
            event = await queue.get()
            await self._enrich(event.envelope)
            event.body = orjson.dumps(event.envelope)
            targets = self._router.sinks_for(event.envelope)
            status = event.envelope["data"]["enrichment"]["status"]
            refused = (
                status == "not_found" and self._enrichment.on_not_found == "dead_letter"
            ) or (status == "mismatch" and self._enrichment.on_mismatch == "dead_letter")
            if refused and targets:
                now = time.time()
                for name in targets:
                    await self._dead_letter(
                        event, name, _Try(0, now, f"enrichment: {status}"), status
                    )
                targets = []
            self._dispatch(event, targets)

    def _dispatch(self, event: _Event, targets: Sequence[str]) -> None:
        targets = [name for name in targets if name in self._sinks]
        if not targets:
            log.debug("no route", extra={"event_id": event.record.event_id})
            self._finish(event)
            return
        event.pending = len(targets)
        for name in targets:
            lanes = self._sink_lanes[name]
            lane = lanes[event.lane % len(lanes)]
            lane.queue.append(event)
            lane.wake.set()

    async def _sink_lane(self, sink: Sink, lane: _Lane) -> None:
        queue = lane.queue
        while True:
            if not queue:
                lane.wake.clear()
                await lane.wake.wait()
                continue
            count = min(len(queue), _MAX_BATCH)
            await self._deliver(sink, [queue.popleft() for _ in range(count)])

    async def _deliver(self, sink: Sink, batch: list[_Event]) -> None:
        """Publish ``batch`` in order until each event is confirmed or dead-lettered."""
        policy = self._policies[sink.name]
        tries: dict[int, _Try] = {}
        pending = batch
        while pending:
            started = time.perf_counter()
            spans = self._spans(sink, pending, tries)
            try:
                outcomes = await sink.publish_batch([(e.envelope, e.body) for e in pending])
            except Exception as error:  # a sink bug must not kill the lane either
                outcomes = [error] * len(pending)
            for span in spans:
                span.end()
            now = time.time()
            finished: list[_Event] = []
            retry: list[_Event] = []
            confirmed = backoff_attempt = 0
            for position, event in enumerate(pending):
                outcome = outcomes[position] if position < len(outcomes) else False
                if outcome is None:
                    finished.append(event)
                    confirmed += 1
                    continue
                if outcome is False:  # not tried: after a failure
                    retry.append(event)
                    continue
                attempt = tries.setdefault(id(event), _Try(0, now))
                attempt.attempts += 1
                attempt.error = (
                    outcome.detail if isinstance(outcome, DeliveryError) else repr(outcome)
                )
                retryable = not isinstance(outcome, DeliveryError) or outcome.retryable
                self._metrics.sink_failures.labels(sink.name, str(retryable).lower()).inc()
                exhausted = attempt.attempts >= policy.max_attempts
                if not retryable or exhausted or now - attempt.first >= policy.max_age_seconds:
                    await self._dead_letter(
                        event, sink.name, attempt, "rejected" if not retryable else "exhausted"
                    )
                    finished.append(event)
                    continue
                log.warning(
                    "publish failed; retrying",
                    extra={
                        "sink": sink.name,
                        "event_id": event.record.event_id,
                        "attempt": attempt.attempts,
                        "error": attempt.error,
                    },
                )
                backoff_attempt = max(backoff_attempt, attempt.attempts)
                retry.append(event)
            if confirmed:  # each confirmed event took the batch's time
                elapsed = time.perf_counter() - started
                observe = self._publish_seconds[sink.name].observe
                for _ in range(confirmed):
                    observe(elapsed)
            if finished:
                self._confirmed(finished)
            pending = retry
            if pending and backoff_attempt:
                if self._cancelled:
                    raise asyncio.CancelledError
                await asyncio.sleep(policy.backoff(backoff_attempt))

    def _spans(self, sink: Sink, events: list[_Event], tries: dict[int, _Try]) -> list[Any]:
        if not self._tracing.enabled:
            return []
        return [
            self._tracing.start_span(
                f"publish {sink.name}",
                {
                    "sink": sink.name,
                    "event_id": event.record.event_id,
                    "attempt": (tries[id(event)].attempts if id(event) in tries else 0) + 1,
                },
                event.envelope.get("traceparent"),
            )
            for event in events
        ]

    async def _dead_letter(self, event: _Event, sink: str, attempt: _Try, reason: str) -> None:
        backoff = 0.5
        while True:
            try:
                await self._dead_letters.add(
                    event.record.event_id,
                    sink,
                    event.body,
                    attempt.attempts,
                    attempt.error,
                    attempt.first,
                    time.time(),
                )
                break
            except Exception:  # the event stays in the intake until this succeeds
                log.exception("dead letter store failed; retrying")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
        self._metrics.dead_letters.labels(sink, reason).inc()
        log.warning(
            "dead-lettered",
            extra={"sink": sink, "event_id": event.record.event_id, "error": attempt.error},
        )

    def _confirmed(self, events: list[_Event]) -> None:
        for event in events:
            event.pending -= 1
            if event.pending == 0:
                self._finish(event)

    def _finish(self, event: _Event) -> None:
        """Queue the event's ack; the acks that gather meanwhile go to the intake at once."""
        self._finished.append(event.record)
        self._finished_any.set()

    async def _acknowledge(self) -> None:
        window = self._settings.max_in_flight
        while True:
            await self._finished_any.wait()
            self._finished_any.clear()
            batch, self._finished = self._finished, []
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
            self._in_flight -= len(batch)
            if self._in_flight < window:
                self._space.set()
            if self._in_flight == 0:
                self._idle.set()

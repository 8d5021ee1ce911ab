"""The pipeline: the feeder, the route lanes, the acknowledger; see the package docstring."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any

import orjson

from receiver.config import EnrichmentSettings, PipelineSettings, RetrySettings
from receiver.intake import Intake, IntakeRecord
from receiver.metrics import Metrics
from receiver.pipeline.delivery import SinkDelivery, describe
from receiver.pipeline.work import UNROUTED, Attempts, DeadLetters, InFlight, Observer
from receiver.retry import Backoff, RetryPolicy, retry_until_done
from receiver.routing import Router
from receiver.sink_settings import BaseSinkSettings
from receiver.sinks import Sink
from receiver.tracing import Tracing

log = logging.getLogger("receiver.pipeline")

Enrich = Callable[[dict[str, Any]], Awaitable[None]]

# Steps nothing can go on without: retried until they work.
_INTAKE_BACKOFF = Backoff(0.1, 10.0)
_DEAD_LETTER_BACKOFF = Backoff(0.5, 30.0)
_STOP_SECONDS = 5.0  # for the workers to end, then for the last acks


def _policy(retry: RetrySettings, sink: BaseSinkSettings | None) -> RetryPolicy:
    max_attempts = (sink.max_attempts if sink else None) or retry.max_attempts
    max_age = (sink.max_age_seconds if sink else None) or retry.max_age_seconds
    backoff = Backoff(retry.initial_backoff_seconds, retry.max_backoff_seconds)
    return RetryPolicy(backoff, max_attempts, max_age)


class Pipeline:
    """Consumes the intake until stopped; see the package docstring."""

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
        observer: Observer | None = None,
    ) -> None:
        self._intake = intake
        self._observer = observer
        self._router = router
        self._dead_letters = dead_letters
        self._settings = settings
        self._metrics = metrics
        self._enrich = enrich
        self._enrichment = enrichment or EnrichmentSettings()
        self._lanes = settings.lanes
        overrides = {item.name: item for item in sink_settings}
        tracing = tracing or Tracing()
        self._deliveries = {
            name: SinkDelivery(
                sink,
                sink.lanes or self._lanes,
                _policy(settings.retry, overrides.get(name)),
                self,
                metrics,
                tracing,
            )
            for name, sink in sinks.items()
        }
        # With enrichment, events are routed in lanes (a lookup may wait); without, at once.
        self._route_lanes: list[asyncio.Queue[InFlight]] = (
            [asyncio.Queue() for _ in range(self._lanes)] if enrich is not None else []
        )
        # A single node holds every record; only a replicated intake needs asking.
        self._partitioned = type(intake).holds is not Intake.holds
        self._in_flight = 0
        self._space = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._finished: list[IntakeRecord] = []
        self._finished_any = asyncio.Event()
        self._delivered = metrics.events_delivered
        self._tasks: set[asyncio.Task[None]] = set()
        self._acknowledger: asyncio.Task[None] | None = None
        self._stopping = False
        self._closing = False
        self._cancelled = False

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def start(self) -> None:
        """Start the feeder, the acknowledger and the lane workers on the running loop."""
        self._spawn(self._feed(), "pipeline-feed")
        self._acknowledger = asyncio.get_running_loop().create_task(
            self._acknowledge(), name="pipeline-ack"
        )
        for index, queue in enumerate(self._route_lanes):
            self._spawn(self._route_lane(queue), f"pipeline-route-{index}")
        for delivery in self._deliveries.values():
            delivery.workers(self._spawn)

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def stop(self, drain_seconds: float) -> None:
        """Stop taking events, let what is in flight finish for a while, then cancel.

        What finished by then is acked; whatever is not stays in the intake and is
        delivered after restart.
        """
        self._stopping = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(drain_seconds):
                await self._idle.wait()
        self._cancelled = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        # A client library may turn the cancellation into an ordinary error that a retry
        # loop catches; ``_cancelled`` ends those loops, and the wait is bounded anyway.
        if tasks:
            await asyncio.wait(tasks, timeout=_STOP_SECONDS)
        acknowledger, self._acknowledger = self._acknowledger, None
        if acknowledger is not None:  # it acks what finished, then ends
            self._closing = True
            self._finished_any.set()
            done, _ = await asyncio.wait([acknowledger], timeout=_STOP_SECONDS)
            if not done:
                acknowledger.cancel()
                await asyncio.wait([acknowledger], timeout=1.0)

    # Taking events in
    async def _feed(self) -> None:
        window = self._settings.max_in_flight
        retry = 0
        while not self._stopping:
            if self._in_flight >= window:
                self._space.clear()
                await self._space.wait()
                continue
            try:
                records = await self._intake.take(window - self._in_flight, wait_seconds=0.5)
            except Exception as error:
                log.warning("intake read failed; retrying", extra={"error": repr(error)})
                await asyncio.sleep(_INTAKE_BACKOFF.delay(retry))
                retry += 1
                continue
            retry = 0
            if records:
                self._in_flight += len(records)
                self._idle.clear()
            for record in records:
                self._admit(record)

    def _admit(self, record: IntakeRecord) -> None:
        """Decode a taken record and send it on its way (or to the dead letters)."""
        room = record.room_id.encode("utf-8", "surrogatepass")
        event = InFlight(record, zlib.crc32(room) % self._lanes, {}, record.payload)
        try:
            if record.defect:
                raise ValueError(f"the stored entry is malformed: {record.defect}")
            envelope = record.envelope or orjson.loads(record.payload)
            if type(envelope) is not dict:
                raise TypeError("the stored event is not a JSON object")
        except Exception as error:
            self._spawn(self._unrouted(event, "decode", error), "pipeline-unrouted")
            return
        event.envelope = envelope
        if self._route_lanes:
            self._route_lanes[event.lane].put_nowait(event)
            return
        try:
            targets = self._targets(event)
        except Exception as error:
            self._spawn(self._unrouted(event, "route", error), "pipeline-unrouted")
            return
        self._dispatch(event, targets)

    async def _route_lane(self, queue: asyncio.Queue[InFlight]) -> None:
        while True:
            event = await queue.get()
            if not self.held(event):
                event.abandoned = True
                self._finish(event)
                continue
            try:
                targets = await self._enriched_targets(event)
            except Exception as error:
                await self._unrouted(event, "route", error)
                continue
            self._dispatch(event, targets)

    async def _enriched_targets(self, event: InFlight) -> list[str]:
        assert self._enrich is not None
        envelope = event.envelope
        try:
            await self._enrich(envelope)
        except Exception as error:  # the event goes on without its job
            log.exception("enrichment failed", extra={"event_id": event.record.event_id})
            envelope["data"]["enrichment"] = {
                "status": "unavailable",
                "source": "api",
                "error": f"internal error: {type(error).__name__}",
            }
        event.body = orjson.dumps(envelope)
        targets = self._targets(event)
        status = envelope["data"]["enrichment"]["status"]
        enrichment = self._enrichment
        refused = (status == "not_found" and enrichment.on_not_found == "dead_letter") or (
            status == "mismatch" and enrichment.on_mismatch == "dead_letter"
        )
        if refused and targets:
            self._routed(event, targets)
            now = time.time()
            for name in targets:
                await self.dead_letter(
                    event, name, Attempts(0, now, f"enrichment: {status}"), status
                )
            return []
        return targets

    def _targets(self, event: InFlight) -> list[str]:
        return [n for n in self._router.sinks_for(event.envelope) if n in self._deliveries]

    async def _unrouted(self, event: InFlight, stage: str, error: Exception) -> None:
        """An event that failed before it had its sinks: a dead letter that says why."""
        log.error(
            "event failed at %s",
            stage,
            extra={"event_id": event.record.event_id, "error": describe(error)},
            exc_info=error,
        )
        failure = Attempts(1, time.time(), f"{stage}: {describe(error)}")
        self._routed(event, [])  # the console and the callback record still see it
        await self.dead_letter(event, UNROUTED, failure, stage)
        self._finish(event)

    def _routed(self, event: InFlight, targets: Sequence[str]) -> None:
        """Tell the observer (once per event) where the event goes."""
        if self._observer is not None and not event.observed:
            event.observed = True
            try:
                self._observer.routed(event.envelope, event.body, list(targets))
            except Exception:  # the console must not stop a delivery
                log.exception("observer failed", extra={"event_id": event.record.event_id})

    def _dispatch(self, event: InFlight, targets: Sequence[str]) -> None:
        self._routed(event, targets)
        if not targets:
            log.debug("no route", extra={"event_id": event.record.event_id})
            self._finish(event)
            return
        event.pending = len(targets)
        for name in targets:
            self._deliveries[name].queue(event)

    # Settling (called by the sinks' deliveries)
    def held(self, event: InFlight) -> bool:
        """Whether the event's intake record is still this process's to deliver."""
        return not self._partitioned or self._intake.holds(event.record)

    def observe(self, event: InFlight, sink: str, outcome: str, error: str = "") -> None:
        if self._observer is not None:
            try:
                self._observer.settled(event.record.event_id, sink, outcome, error)
            except Exception:
                log.exception("observer failed", extra={"event_id": event.record.event_id})

    def settle(self, events: list[InFlight]) -> None:
        for event in events:
            event.pending -= 1
            if event.pending == 0:
                self._finish(event)

    async def dead_letter(
        self, event: InFlight, sink: str, attempts: Attempts, reason: str
    ) -> None:
        """Store the event as a dead letter of ``sink`` (retried until the store takes it)."""
        await retry_until_done(
            lambda: self._dead_letters.add(
                event.record.event_id,
                sink,
                event.body,
                attempts.count,
                attempts.error,
                attempts.first,
                time.time(),
            ),
            _DEAD_LETTER_BACKOFF,
            what="dead letter store",
            logger=log,
        )
        self._metrics.dead_letters.labels(sink, reason).inc()
        self.observe(event, sink, "dead_lettered", attempts.error)
        log.warning(
            "dead-lettered",
            extra={"sink": sink, "event_id": event.record.event_id, "error": attempts.error},
        )

    def _finish(self, event: InFlight) -> None:
        """Queue the event's ack (a drop if it was given up); acks gathered go at once."""
        if event.abandoned:
            self._intake.drop([event.record])
            self._release(1)
            return
        self._finished.append(event.record)
        self._finished_any.set()

    def _release(self, count: int) -> None:
        self._in_flight -= count
        if self._in_flight < self._settings.max_in_flight:
            self._space.set()
        if self._in_flight == 0:
            self._idle.set()

    async def _acknowledge(self) -> None:
        while True:
            await self._finished_any.wait()
            self._finished_any.clear()
            if self._finished:
                batch, self._finished = self._finished, []
                await retry_until_done(
                    functools.partial(self._intake.ack_many, batch),
                    _INTAKE_BACKOFF,
                    what="intake ack",
                    logger=log,
                )
                self._delivered.inc(len(batch))
                self._release(len(batch))
            if self._closing and not self._finished:
                return

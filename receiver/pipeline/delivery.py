"""One sink's side of the pipeline: its lanes, batched publishes, retries, giving up.

A lane publishes what has queued in it as one batch, in order, and retries what failed
before anything after it. Each outcome is judged per event: confirmed; retried with the
one backoff (:mod:`receiver.retry`) while the sink's policy allows; or, for a refusal that
no retry can cure (``DeliveryError(retryable=False)``, and any exception that is not a
``DeliveryError``: a destination that cannot be rendered, a value the client library
refuses), dead-lettered at once with the reason. An event whose intake partition moved on
is given up without a publish.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from receiver.metrics import Metrics
from receiver.pipeline.work import Attempts, InFlight, Lane
from receiver.retry import RetryPolicy
from receiver.sinks import DeliveryError, Sink
from receiver.tracing import Tracing

log = logging.getLogger("receiver.pipeline")

MAX_BATCH = 256  # events per publish_batch call


class Settlement(Protocol):
    """What a sink's delivery reports back to the pipeline."""

    @property
    def cancelled(self) -> bool:
        """Whether the pipeline is being torn down: end retry loops now."""
        ...

    def held(self, event: InFlight) -> bool:
        """Whether the event may still be delivered (its intake partition is ours)."""
        ...

    def settle(self, events: list[InFlight]) -> None:
        """These events are done at one sink (confirmed, dead-lettered or given up)."""
        ...

    def observe(self, event: InFlight, sink: str, outcome: str, error: str = "") -> None:
        """Tell the observer (if any) of one attempt's outcome."""
        ...

    async def dead_letter(
        self, event: InFlight, sink: str, attempts: Attempts, reason: str
    ) -> None:
        """Keep the event as a dead letter of ``sink``."""
        ...


def describe(error: BaseException) -> str:
    """The text a failed attempt is recorded with (a DeliveryError's detail, else its repr)."""
    if isinstance(error, DeliveryError):
        return error.detail
    return f"{type(error).__name__}: {error}"[:500]


class SinkDelivery:
    """The lanes of one sink and the workers that drain them."""

    def __init__(
        self,
        sink: Sink,
        lanes: int,
        policy: RetryPolicy,
        settlement: Settlement,
        metrics: Metrics,
        tracing: Tracing,
    ) -> None:
        self.sink = sink
        self.lanes = [Lane() for _ in range(lanes)]
        self._policy = policy
        self._settlement = settlement
        self._metrics = metrics
        self._tracing = tracing
        self._observe = metrics.sink_publish_seconds.labels(sink.name).observe

    def queue(self, event: InFlight) -> None:
        """Queue ``event`` in the lane of its room."""
        lane = self.lanes[event.lane % len(self.lanes)]
        lane.queue.append(event)
        lane.wake.set()

    def workers(
        self, spawn: Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None]]
    ) -> None:
        """Start one worker per lane with ``spawn(coroutine, name)``."""
        for index, lane in enumerate(self.lanes):
            spawn(self._work(lane), f"pipeline-{self.sink.name}-{index}")

    async def _work(self, lane: Lane) -> None:
        queue = lane.queue
        while True:
            if not queue:
                lane.wake.clear()
                await lane.wake.wait()
                continue
            count = min(len(queue), MAX_BATCH)
            await self.deliver([queue.popleft() for _ in range(count)])

    async def deliver(self, batch: list[InFlight]) -> None:
        """Publish ``batch`` in order until each event is settled at this sink."""
        sink, settlement = self.sink, self._settlement
        tries: dict[int, Attempts] = {}
        pending = batch
        while pending:
            pending = self._still_held(pending)
            if not pending:
                return
            started = time.perf_counter()
            spans = self._spans(pending, tries)
            try:
                outcomes = await sink.publish_batch([(e.envelope, e.body) for e in pending])
            except Exception as error:  # a sink bug must not kill the lane either
                outcomes = [error] * len(pending)
            for span in spans:
                span.end()
            now = time.time()
            settled: list[InFlight] = []
            retry: list[InFlight] = []
            confirmed = backoff_retry = 0
            for position, event in enumerate(pending):
                if position >= len(outcomes):  # not tried: after a failure
                    retry.append(event)
                    continue
                outcome = outcomes[position]
                if outcome is None:
                    settled.append(event)
                    confirmed += 1
                    settlement.observe(event, sink.name, "delivered")
                    continue
                attempt = tries.setdefault(id(event), Attempts(0, now))
                attempt.count += 1
                attempt.error = describe(outcome)
                retryable = isinstance(outcome, DeliveryError) and outcome.retryable
                self._metrics.sink_failures.labels(sink.name, str(retryable).lower()).inc()
                if not retryable or self._policy.exhausted(attempt.count, now - attempt.first):
                    reason = "exhausted" if retryable else "rejected"
                    await settlement.dead_letter(event, sink.name, attempt, reason)
                    settled.append(event)
                    continue
                log.warning(
                    "publish failed; retrying",
                    extra={
                        "sink": sink.name,
                        "event_id": event.record.event_id,
                        "attempt": attempt.count,
                        "error": attempt.error,
                    },
                )
                backoff_retry = max(backoff_retry, attempt.count)
                retry.append(event)
                settlement.observe(event, sink.name, "retrying", attempt.error)
            if confirmed:  # each confirmed event took the batch's time
                elapsed = time.perf_counter() - started
                for _ in range(confirmed):
                    self._observe(elapsed)
            if settled:
                settlement.settle(settled)
            pending = retry
            if pending and backoff_retry:
                if settlement.cancelled:
                    raise asyncio.CancelledError
                await asyncio.sleep(self._policy.backoff.delay(backoff_retry - 1))

    def _still_held(self, events: list[InFlight]) -> list[InFlight]:
        """The events still to deliver; the others (partition moved on) are given up."""
        settlement = self._settlement
        given_up = [e for e in events if e.abandoned or not settlement.held(e)]
        if not given_up:
            return events
        for event in given_up:
            event.abandoned = True
        settlement.settle(given_up)
        return [e for e in events if not e.abandoned]

    def _spans(self, events: list[InFlight], tries: dict[int, Attempts]) -> list[Any]:
        if not self._tracing.enabled:
            return []
        name = self.sink.name
        return [
            self._tracing.start_span(
                f"publish {name}",
                {
                    "sink": name,
                    "event_id": event.record.event_id,
                    "attempt": (tries[id(event)].count if id(event) in tries else 0) + 1,
                },
                event.envelope.get("traceparent"),
            )
            for event in events
        ]

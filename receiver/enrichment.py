"""The enrichment step: put each event's live job (secrets removed) into its envelope.

``data.job`` is the job, ``data.enrichment`` says how it was found:
``{"status": "ok" | "not_found" | "mismatch" | "unavailable", "source": "cache" | "api",
"looked_up_at": RFC 3339, "error"?}``. A lookup failure never drops an event: it is retried
until ``enrichment.deadline_seconds`` (enforced as a timeout over the whole lookup; 0 makes
one attempt), then the event goes on as ``unavailable`` and the API is taken as *down*.
While it is down, cached jobs are still answered, one lookup at a time probes the API with a
single attempt, and every other miss goes on as ``unavailable`` at once, so an outage does
not slow the pipeline; the first answered probe ends it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from receiver.config import EnrichmentSettings, Settings
from receiver.envelope import rfc3339
from receiver.events import EventType, StreamState
from receiver.metastudio.cache import JobCache, Lookup
from receiver.metastudio.client import MetaStudioClient
from receiver.metastudio.errors import MetaStudioError
from receiver.metrics import Metrics
from receiver.reconcile.events import EVENT_TYPE as JOB_STATE_CHANGED
from receiver.retry import Backoff
from receiver.tasks import stop_task

log = logging.getLogger("receiver.enrichment")

# Stream states after which the job's own state has changed: look it up afresh.
_REFRESHING_STATES = frozenset({StreamState.END, StreamState.DISCONNECTED})
_BACKOFF = Backoff(base=0.2, cap=5.0)


class _Unavailable(Exception):
    """The lookup gives up: the API is down and this was its one attempt."""


class Enricher:
    """Fills ``data.job`` and ``data.enrichment``; sweeps the tenant's jobs in the background."""

    def __init__(
        self,
        cache: JobCache,
        settings: EnrichmentSettings,
        metrics: Metrics,
        client: MetaStudioClient | None = None,
        leads: Callable[[], bool] = lambda: True,
    ) -> None:
        self.cache = cache
        self._leads = leads  # whether this replica sweeps (one per deployment)
        self._settings = settings
        self._metrics = metrics
        self._client = client
        self._sweeper: asyncio.Task[None] | None = None
        self._api_down = False
        self._probing = False
        self._last_error = ""

    async def start(self) -> None:
        """Start the periodic sweep (its first run warms the cache)."""
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def close(self) -> None:
        await stop_task(self._sweeper)
        if self._client is not None:
            await self._client.aclose()

    async def enrich(self, envelope: dict[str, Any]) -> None:
        """Look the event's job up and record the outcome in the envelope."""
        data = envelope["data"]
        if data["event_type"] == JOB_STATE_CHANGED:
            return  # the job list gave the job already
        job_id, room_id = envelope["jobid"], envelope["roomid"]
        if not job_id or not room_id:
            data["enrichment"] = self._outcome("not_found", "cache", "no job_id or room_id")
            return
        if data["event_type"] == EventType.RTMP_STREAM_STATE_CHANGE and (
            data["message"].get("state") in _REFRESHING_STATES
        ):
            self.cache.invalidate(job_id)
        result, error = await self._lookup(job_id, room_id)
        if result is None:
            data["enrichment"] = self._outcome("unavailable", "api", error)
            return
        data["job"] = result.job
        data["enrichment"] = self._outcome(result.status, result.source)

    def _outcome(self, status: str, source: str, error: str | None = None) -> dict[str, Any]:
        self._metrics.enrichment.labels(status, source).inc()
        outcome: dict[str, Any] = {
            "status": status,
            "source": source,
            "looked_up_at": rfc3339(time.time()),
        }
        if error:
            outcome["error"] = error
        return outcome

    async def _lookup(self, job_id: str, room_id: str) -> tuple[Lookup | None, str]:
        cached = self.cache.peek(job_id, room_id)
        if cached is not None:
            return cached, ""
        if self._api_down and self._probing:
            return None, f"API down: {self._last_error}"
        self._probing = self._api_down
        if not self._api_down:
            self._last_error = ""
        deadline = self._settings.deadline_seconds
        try:
            async with asyncio.timeout(deadline if deadline > 0 else None):
                result = await self._retrying(job_id, room_id, once=self._api_down or not deadline)
        except (TimeoutError, _Unavailable):
            self._api_down = True
            message = self._last_error or f"no answer within {deadline}s"
            log.warning("job lookup unavailable", extra={"job_id": job_id, "error": message})
            return None, message
        finally:
            self._probing = False
        self._api_down = False
        return result, ""

    async def _retrying(self, job_id: str, room_id: str, *, once: bool) -> Lookup:
        retry = 0
        while True:
            try:
                return await self.cache.lookup(job_id, room_id)
            except MetaStudioError as error:
                self._last_error = str(error)
                if once:
                    raise _Unavailable from None
            await asyncio.sleep(_BACKOFF.delay(retry))
            retry += 1

    async def _sweep_forever(self) -> None:
        while True:
            try:
                if self._leads():
                    await self.cache.sweep()
            except MetaStudioError as error:
                log.warning("job sweep failed", extra={"error": str(error)})
            await asyncio.sleep(self._settings.sweep_interval_seconds)


def shared_client(settings: Settings) -> MetaStudioClient | None:
    """The one MetaStudio client (and rate limiter) of enrichment and reconciliation."""
    if not (settings.enrichment.enabled or settings.reconcile.enabled):
        return None
    return MetaStudioClient(settings.metastudio)


def build_enricher(
    settings: Settings,
    metrics: Metrics,
    client: MetaStudioClient | None = None,
    leads: Callable[[], bool] = lambda: True,
) -> Enricher | None:
    """The enricher for these settings, or None when enrichment is disabled.

    It closes ``client`` when it closes (made here when not given).
    """
    if not settings.enrichment.enabled:
        return None
    client = client or MetaStudioClient(settings.metastudio)
    cache = JobCache(
        client,
        ttl_seconds=settings.enrichment.ttl_seconds,
        negative_ttl_seconds=settings.enrichment.negative_ttl_seconds,
        max_entries=settings.enrichment.cache_size,
        on_call=lambda operation, outcome: metrics.api_calls.labels(operation, outcome).inc(),
    )
    return Enricher(cache, settings.enrichment, metrics, client, leads)

"""The job watcher: list the tenant's jobs newest-updated first and emit each state change.

Each sweep pages ``list_jobs`` by ``update_time`` descending until a page reaches jobs
updated before the watermark minus the overlap, so a quiet tenant costs one call a sweep.
With a :class:`~receiver.reconcile.callbacks.CallbackLog` each event also says which
callbacks the job got and which it missed (:mod:`receiver.reconcile.missed`), and a job
PROCESSING without any callback for ``silent_after_seconds`` gets one event of its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime
from typing import Any, Protocol

from receiver.metastudio.models import ListJobsResponse, SmartLiveJob
from receiver.metrics import Metrics
from receiver.reconcile.callbacks import CallbackLog, JobCallbacks
from receiver.reconcile.events import JobStateChanged, state_envelope
from receiver.reconcile.misrouted import classify
from receiver.reconcile.missed import (
    ENDED_STATES,
    CallbackReport,
    MissingCallback,
    missing_end,
    missing_start,
    report,
)
from receiver.reconcile.settings import ReconcileSettings
from receiver.reconcile.state import StateStore, WatchState

log = logging.getLogger(__name__)

Append = Callable[[dict[str, Any]], Awaitable[None]]


class JobLister(Protocol):
    """The part of :class:`receiver.metastudio.client.MetaStudioClient` the watcher uses."""

    async def list_jobs(self, query: Any = None, **params: Any) -> ListJobsResponse:
        """One page of the tenant's jobs."""


def seconds_of(text: str | None) -> float | None:
    """An RFC 3339 time as Unix seconds; ``None`` when absent or unreadable."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def update_seconds(job: SmartLiveJob) -> float | None:
    """The job's ``lastupdate_time`` as Unix seconds; ``None`` when absent or unreadable."""
    return seconds_of(job.lastupdate_time)


class JobWatcher:
    """Compare listed jobs with their last known state and append one event per change."""

    def __init__(
        self,
        settings: ReconcileSettings,
        client: JobLister,
        store: StateStore,
        append: Append,
        clock: Callable[[], float] = time.time,
        callback_url: str = "",
        accepted_auth: Collection[str] = (),
        callbacks: CallbackLog | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.store = store
        self.append = append
        self.clock = clock
        self.callback_url = callback_url
        self.accepted_auth = accepted_auth
        self.callbacks = callbacks
        self.metrics = metrics
        self.started = clock()
        self.restored = False
        self.warned: set[str] = set()
        self.calls = 0
        self.emitted = 0

    async def _changed_jobs(self, since: float | None) -> list[SmartLiveJob]:
        jobs: list[SmartLiveJob] = []
        floor = None if since is None else since - self.settings.overlap_seconds
        limit = self.settings.page_size
        for page in range(self.settings.max_pages):
            answer = await self.client.list_jobs(
                offset=page * limit, limit=limit, sort_key="update_time", sort_dir="desc"
            )
            self.calls += 1
            jobs.extend(answer.smart_live_jobs)
            last = answer.smart_live_jobs[-1:] or []
            older = floor is not None and any(
                (seconds := update_seconds(job)) is not None and seconds < floor for job in last
            )
            end = page * limit + len(answer.smart_live_jobs) >= answer.count
            if older or end or len(answer.smart_live_jobs) < limit:
                break
        return jobs

    async def sweep(self) -> int:
        """One sweep; the number of events appended."""
        state = await self.store.load()
        if self.callbacks is not None and not self.restored:
            self.callbacks.restore(await self.store.load_callbacks())
            self.restored = True
        emit = state.initialised or self.settings.emit_on_first_run
        jobs = await self._changed_jobs(state.watermark)
        emitted = 0
        # Oldest update first, so a job's transitions and the events keep their order.
        for job in sorted(jobs, key=lambda j: update_seconds(j) or 0.0):
            if not job.job_id:
                continue
            seconds = update_seconds(job)
            if seconds is not None and (state.watermark is None or seconds > state.watermark):
                state.watermark = seconds
            known = state.jobs.get(job.job_id)
            current = (job.state, job.lastupdate_time)
            entry = self._listed(job)
            if known is not None and known[0] == job.state:
                state.jobs[job.job_id] = current
                continue
            if emit:
                previous = None if known is None else known[0]
                await self.append(self._event(job, previous, entry))
                emitted += 1
            state.jobs[job.job_id] = current
        if emit:
            emitted += await self._report_silent(state)
        state.initialised = True
        await self.store.save(state)
        if self.callbacks is not None:
            self.callbacks.forget(self.clock())
            await self.store.save_callbacks(self.callbacks.snapshot())
        self.emitted += emitted
        return emitted

    def _listed(self, job: SmartLiveJob) -> JobCallbacks | None:
        """The job's callback record, with what the list says of it noted."""
        if self.callbacks is None or job.job_id is None:
            return None
        now = self.clock()
        entry = self.callbacks.listed_job(job.job_id, job.room_id, now)
        if job.state == "PROCESSING" and entry.processing_since is None:
            # Silence is measured from when this receiver could have got the callbacks.
            entry.processing_since = max(seconds_of(job.start_time) or now, self.started)
        if job.state in ENDED_STATES and entry.ended_at is None:
            entry.ended_at = now
        return entry

    async def _report_silent(self, state: WatchState) -> int:
        """One event per PROCESSING job without any callback for ``silent_after_seconds``."""
        if self.callbacks is None:
            return 0
        now = self.clock()
        silent = [
            (job_id, entry)
            for job_id, entry in self.callbacks.listed.items()
            if not entry.counts
            and not entry.silent_reported
            and entry.processing_since is not None
            and now - entry.processing_since >= self.settings.silent_after_seconds
            and state.jobs.get(job_id, (None, None))[0] == "PROCESSING"
        ]
        for job_id, entry in silent:
            assert entry.processing_since is not None
            missing = missing_start(now - entry.processing_since)
            data = JobStateChanged(
                job_id=job_id,
                room_id=entry.room_id,
                room_name=None,
                state="PROCESSING",
                previous_state="PROCESSING",
                update_time=state.jobs[job_id][1],
                create_time=None,
                start_time=None,
                end_time=None,
                duration=None,
                block_reason=None,
                error_info=None,
                job={"job_id": job_id, "room_id": entry.room_id, "state": "PROCESSING"},
                callbacks=self._count(report(entry, missing)),
            )
            await self.append(state_envelope(data, now, kind="silent"))
            entry.silent_reported = True
        return len(silent)

    def _count(self, callbacks: CallbackReport) -> CallbackReport:
        if self.metrics is not None:
            for missing in callbacks.missing:
                self.metrics.missed_callbacks.labels(missing.expected).inc()
        return callbacks

    def _misrouted(self, job: SmartLiveJob) -> str:
        if not self.callback_url:
            return ""
        reason, why = classify(job, self.callback_url, self.accepted_auth)
        if why and job.job_id not in self.warned:
            self.warned.add(str(job.job_id))
            if self.metrics is not None:
                self.metrics.misrouted_jobs.labels(reason).inc()
            log.warning(
                "misrouted job", extra={"job_id": job.job_id, "room_id": job.room_id, "why": why}
            )
        return why

    def _callback_report(
        self, job: SmartLiveJob, previous: str | None, entry: JobCallbacks | None
    ) -> CallbackReport | None:
        if self.callbacks is None:
            return None
        was_live = bool(job.start_time) or previous == "PROCESSING"
        was_live |= entry is not None and entry.processing_since is not None
        missing: list[MissingCallback] = missing_end(job.state, was_live, entry)
        return self._count(report(entry, missing))

    def _event(
        self, job: SmartLiveJob, previous: str | None, entry: JobCallbacks | None = None
    ) -> dict[str, Any]:
        error = job.error_info.model_dump(mode="json") if job.error_info else None
        data = JobStateChanged(
            job_id=job.job_id or "",
            room_id=job.room_id,
            room_name=job.room_name,
            state=job.state,
            previous_state=previous,
            update_time=job.lastupdate_time,
            create_time=job.create_time,
            start_time=job.start_time,
            end_time=job.end_time,
            duration=job.duration,
            block_reason=job.block_reason,
            error_info=error,
            job=job.redacted(),
            misrouted=self._misrouted(job),
            callbacks=self._callback_report(job, previous, entry),
        )
        return state_envelope(data, self.clock())

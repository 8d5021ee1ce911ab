"""The job watcher: list the tenant's jobs newest-updated first and emit each state change.

Each sweep pages ``list_jobs`` by ``update_time`` descending until a page reaches jobs
updated before the watermark minus the overlap, so a quiet tenant costs one call a sweep.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime
from typing import Any, Protocol

from receiver.metastudio.models import ListJobsResponse, SmartLiveJob
from receiver.reconcile.events import JobStateChanged, state_envelope
from receiver.reconcile.misrouted import misrouting
from receiver.reconcile.settings import ReconcileSettings
from receiver.reconcile.state import StateStore

log = logging.getLogger(__name__)

Append = Callable[[dict[str, Any]], Awaitable[None]]


class JobLister(Protocol):
    """The part of :class:`receiver.metastudio.client.MetaStudioClient` the watcher uses."""

    async def list_jobs(self, query: Any = None, **params: Any) -> ListJobsResponse:
        """One page of the tenant's jobs."""


def update_seconds(job: SmartLiveJob) -> float | None:
    """The job's ``lastupdate_time`` as Unix seconds; ``None`` when absent or unreadable."""
    if not job.lastupdate_time:
        return None
    try:
        return datetime.fromisoformat(job.lastupdate_time.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


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
    ) -> None:
        self.settings = settings
        self.client = client
        self.store = store
        self.append = append
        self.clock = clock
        self.callback_url = callback_url
        self.accepted_auth = accepted_auth
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
            if known is not None and known[0] == job.state:
                state.jobs[job.job_id] = current
                continue
            if emit:
                await self.append(self._event(job, None if known is None else known[0]))
                emitted += 1
            state.jobs[job.job_id] = current
        state.initialised = True
        await self.store.save(state)
        self.emitted += emitted
        return emitted

    def _misrouted(self, job: SmartLiveJob) -> str:
        if not self.callback_url:
            return ""
        why = misrouting(job, self.callback_url, self.accepted_auth)
        if why and job.job_id not in self.warned:
            self.warned.add(str(job.job_id))
            log.warning(
                "misrouted job", extra={"job_id": job.job_id, "room_id": job.room_id, "why": why}
            )
        return why

    def _event(self, job: SmartLiveJob, previous: str | None) -> dict[str, Any]:
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
        )
        return state_envelope(data, self.clock())

"""Which callbacks the receiver accepted, per job: counts per type and the last stream state.

Updated in memory from the journal (every replica's routed callbacks, so the watching
replica knows the callbacks any replica took), saved by the watcher at sweep time. Job ids
in a callback body are hostile: an id longer than :data:`MAX_JOB_ID_CHARS` is not
remembered, and jobs the watcher has not (yet) seen in the
job list are capped at ``max_jobs``, the least recently updated forgotten first. Jobs the
watcher listed are capped at ``max_jobs`` too, and forgotten ``forget_after`` seconds after
they ended or after their last news.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace

from receiver.events import EventType, StreamState

MAX_JOB_ID_CHARS = 128
_TYPES = frozenset(EventType)
_STATES = frozenset(StreamState)


@dataclass(slots=True)
class JobCallbacks:
    """What one job's accepted callbacks were, and what the watcher knows of the job.

    ``counts`` holds the documented event types only; ``last_stream_state`` a documented
    stream state only. ``processing_since``, ``ended_at`` and ``silent_reported`` are the
    watcher's: when it first saw the job PROCESSING, when it saw it end, and whether the
    silence of a PROCESSING job was reported.
    """

    counts: dict[str, int] = field(default_factory=dict)
    last_stream_state: str | None = None
    last_stream_state_at: float | None = None
    updated_at: float = 0.0
    room_id: str | None = None
    processing_since: float | None = None
    ended_at: float | None = None
    silent_reported: bool = False

    def merge(self, other: JobCallbacks) -> None:
        """Merge ``other`` (saved before a restart) into this record (kept since).

        The journal a restarted replica follows again holds some of the callbacks the saved
        record counted: per type the larger count is kept, never the sum.
        """
        for kind, count in other.counts.items():
            self.counts[kind] = max(self.counts.get(kind, 0), count)
        if other.last_stream_state_at is not None and (
            self.last_stream_state_at is None
            or other.last_stream_state_at > self.last_stream_state_at
        ):
            self.last_stream_state = other.last_stream_state
            self.last_stream_state_at = other.last_stream_state_at
        self.updated_at = max(self.updated_at, other.updated_at)
        self.room_id = self.room_id or other.room_id
        self.processing_since = self.processing_since or other.processing_since
        self.ended_at = self.ended_at or other.ended_at
        self.silent_reported = self.silent_reported or other.silent_reported


class CallbackLog:
    """Per-job records of accepted callbacks, bounded against hostile job ids."""

    def __init__(self, max_jobs: int = 10_000, forget_after: float = 86_400.0) -> None:
        self.max_jobs = max_jobs
        self.forget_after = forget_after
        # Jobs only callbacks named, least recently updated first; and jobs the watcher listed.
        self.unlisted: OrderedDict[str, JobCallbacks] = OrderedDict()
        self.listed: OrderedDict[str, JobCallbacks] = OrderedDict()

    def __len__(self) -> int:
        return len(self.unlisted) + len(self.listed)

    def get(self, job_id: str) -> JobCallbacks | None:
        """The job's record, if one is remembered."""
        return self.listed.get(job_id) or self.unlisted.get(job_id)

    def record(self, job_id: str, event_type: str, state: str | None, now: float) -> None:
        """Remember one accepted callback (the hot path: a few dict operations)."""
        if len(job_id) > MAX_JOB_ID_CHARS:
            return
        entry = self.listed.get(job_id)
        if entry is None:
            entry = self.unlisted.get(job_id)
            if entry is None:
                entry = self.unlisted[job_id] = JobCallbacks()
                if len(self.unlisted) > self.max_jobs:
                    self.unlisted.popitem(last=False)
            else:
                self.unlisted.move_to_end(job_id)
        if event_type in _TYPES:
            entry.counts[event_type] = entry.counts.get(event_type, 0) + 1
        if event_type == EventType.RTMP_STREAM_STATE_CHANGE and state in _STATES:
            entry.last_stream_state = state
            entry.last_stream_state_at = now
        entry.updated_at = now

    def listed_job(self, job_id: str, room_id: str | None, now: float) -> JobCallbacks:
        """The record of a job the watcher listed (created, or taken from the unlisted)."""
        entry = self.listed.get(job_id)
        if entry is None:
            entry = self.unlisted.pop(job_id, None) or JobCallbacks(updated_at=now)
            self.listed[job_id] = entry
            if len(self.listed) > self.max_jobs:
                self.listed.popitem(last=False)
        entry.room_id = room_id
        entry.updated_at = max(entry.updated_at, now)
        return entry

    def restore(self, saved: dict[str, tuple[bool, JobCallbacks]]) -> None:
        """Merge records saved before a restart (``job id -> (listed, record)``)."""
        for job_id, (listed, entry) in saved.items():
            current = self.get(job_id)
            if current is not None:
                current.merge(entry)
                entry = current
            if listed:
                self.unlisted.pop(job_id, None)
                self.listed[job_id] = entry
            elif job_id not in self.listed:
                self.unlisted[job_id] = entry
        while len(self.unlisted) > self.max_jobs:
            self.unlisted.popitem(last=False)
        while len(self.listed) > self.max_jobs:
            self.listed.popitem(last=False)

    def forget(self, now: float) -> None:
        """Forget jobs that ended, or had no news, more than ``forget_after`` seconds ago."""
        horizon = now - self.forget_after
        for records in (self.listed, self.unlisted):
            stale = [
                job_id
                for job_id, entry in records.items()
                if (entry.ended_at is not None and entry.ended_at < horizon)
                or (entry.ended_at is None and entry.updated_at < horizon)
            ]
            for job_id in stale:
                del records[job_id]

    def snapshot(self) -> dict[str, tuple[bool, JobCallbacks]]:
        """A copy of every record, for saving (``job id -> (listed, record)``)."""
        saved = {job_id: (False, _copy(entry)) for job_id, entry in self.unlisted.items()}
        saved.update({job_id: (True, _copy(entry)) for job_id, entry in self.listed.items()})
        return saved


def _copy(entry: JobCallbacks) -> JobCallbacks:
    return replace(entry, counts=dict(entry.counts))

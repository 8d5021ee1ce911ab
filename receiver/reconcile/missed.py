"""Missed callbacks: what a job's ``JOB_STATE_CHANGED`` event says of the callbacks it got.

Two cases are reported, each with the documented event MetaStudio should have sent:

- a job that ended (SUCCEED, FAILED, BLOCKED) after it was live (it has a ``start_time``,
  was seen PROCESSING, or sent a callback) while the last stream state accepted for it is
  neither END nor DISCONNECTED: ``RTMP_STREAM_STATE_CHANGE`` with END or DISCONNECTED;
- a job PROCESSING for longer than ``reconcile.silent_after_seconds`` without any callback
  accepted: ``RTMP_STREAM_STATE_CHANGE`` with CONNECTING or CONNECTED (a live pushing its
  stream reports its connection), reported once per job.
"""

from __future__ import annotations

from pydantic import BaseModel

from receiver.envelope import rfc3339
from receiver.events import EventType, StreamState
from receiver.reconcile.callbacks import JobCallbacks

ENDED_STATES = frozenset({"SUCCEED", "FAILED", "BLOCKED"})
STREAM_ENDED = (StreamState.END.value, StreamState.DISCONNECTED.value)
STREAM_STARTED = (StreamState.CONNECTING.value, StreamState.CONNECTED.value)


class MissingCallback(BaseModel):
    """A callback MetaStudio should have sent and this receiver did not accept."""

    expected: str  # a documented event type (the metric's label)
    state: list[str]  # the message states any one of which would have satisfied it
    reason: str


class CallbackReport(BaseModel):
    """``data.callbacks`` of a ``JOB_STATE_CHANGED`` event."""

    counts: dict[str, int] = {}
    last_stream_state: str | None = None
    last_stream_state_at: str | None = None
    missing: list[MissingCallback] = []


def report(entry: JobCallbacks | None, missing: list[MissingCallback]) -> CallbackReport:
    """The job's accepted callbacks and what is missing."""
    if entry is None:
        return CallbackReport(missing=missing)
    at = entry.last_stream_state_at
    return CallbackReport(
        counts=dict(entry.counts),
        last_stream_state=entry.last_stream_state,
        last_stream_state_at=None if at is None else rfc3339(at),
        missing=missing,
    )


def missing_end(
    state: str | None, was_live: bool, entry: JobCallbacks | None
) -> list[MissingCallback]:
    """The stream's end, when a job that was live ended without it."""
    if state not in ENDED_STATES:
        return []
    got_any = entry is not None and bool(entry.counts)
    if not (was_live or got_any):
        return []
    last = entry.last_stream_state if entry is not None else None
    if last in STREAM_ENDED:
        return []
    seen = f"the last stream state accepted was {last}" if last else "no stream state accepted"
    return [
        MissingCallback(
            expected=EventType.RTMP_STREAM_STATE_CHANGE.value,
            state=list(STREAM_ENDED),
            reason=f"the job is {state} and {seen}",
        )
    ]


def missing_start(silent_seconds: float) -> list[MissingCallback]:
    """The stream's start, when a PROCESSING job sent no callback at all."""
    return [
        MissingCallback(
            expected=EventType.RTMP_STREAM_STATE_CHANGE.value,
            state=list(STREAM_STARTED),
            reason=f"the job is PROCESSING for {silent_seconds:.0f} s and no callback was accepted",
        )
    ]

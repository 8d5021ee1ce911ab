"""The ``JOB_STATE_CHANGED`` event: its typed data, its stable id and its envelope."""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel

from receiver.envelope import rfc3339
from receiver.reconcile.missed import CallbackReport

EVENT_TYPE = "JOB_STATE_CHANGED"
CLOUDEVENT_TYPE = "com.receiver.reconcile.job.state_changed"
SOURCE = "/metastudio/v1/smart-live-jobs"


class JobStateChanged(BaseModel):
    """The data of a ``JOB_STATE_CHANGED`` event (a JSON Schema comes from this model)."""

    event_type: str = EVENT_TYPE
    job_id: str
    room_id: str | None
    room_name: str | None
    state: str | None
    previous_state: str | None
    update_time: str | None
    create_time: str | None
    start_time: str | None
    end_time: str | None
    duration: float | None
    block_reason: str | None
    error_info: dict[str, Any] | None
    job: dict[str, Any]
    # Why this job's callbacks do not reach this receiver as accepted (empty: they do).
    misrouted: str = ""
    # The callbacks accepted for the job and those missed (None: callbacks are not recorded).
    callbacks: CallbackReport | None = None
    # The same shape as a callback's enrichment outcome: the job came from the list itself.
    enrichment: dict[str, str] = {"status": "ok", "source": "list"}


def state_event_id(job_id: str, state: str | None, update_time: str | None, kind: str = "") -> str:
    """A stable id from (job, state, update time): a second emission is dropped as a replay.

    ``kind`` tells apart an event of another kind about the same state (``silent``).
    """
    text = f"{job_id}\x00{state or ''}\x00{update_time or ''}" + (f"\x00{kind}" if kind else "")
    digest = hashlib.sha256(text.encode())
    return "job-" + digest.hexdigest()[:28]


def state_envelope(data: JobStateChanged, observed_at: float, kind: str = "") -> dict[str, Any]:
    """The CloudEvents envelope of one state change, in the same shape as a callback's."""
    return {
        "specversion": "1.0",
        "id": state_event_id(data.job_id, data.state, data.update_time, kind),
        "source": SOURCE,
        "type": CLOUDEVENT_TYPE,
        "subject": data.room_id or data.job_id,
        "time": rfc3339(observed_at),
        "datacontenttype": "application/json",
        "roomid": data.room_id or "",
        "jobid": data.job_id,
        "knowntype": True,
        "data": data.model_dump(mode="json"),
    }

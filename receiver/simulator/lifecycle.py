"""Jobs that change state over time, as a tenant's live jobs do.

With a :class:`Lifecycle` every job starts ``WAITING`` when the simulator starts, goes
``PROCESSING`` at its own offset within ``wait_seconds`` and ends ``live_seconds`` later:
``SUCCEED``, or, for about one job in ten each, ``FAILED`` with ``error_info`` or
``BLOCKED`` with a ``block_reason`` (chosen from the seed, so runs repeat). Jobs are moved
when the API is asked, never by a background task; a job set by the admin call
(``POST /_sim/jobs/{id}/state``) leaves the lifecycle.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Apply = Callable[[dict[str, Any], str, datetime], None]

ERROR_INFO = {"error_code": "MSS.00000003", "error_msg": "the live stream was interrupted"}
BLOCK_REASON = "content review: the live violated the platform's rules"


def _fraction(seed: int | str, job_id: str, what: str) -> float:
    digest = hashlib.sha256(f"{seed}:{job_id}:{what}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def outcome(seed: int | str, job_id: str) -> str:
    """How the job's live ends: ``SUCCEED`` (about 80 %), ``FAILED`` or ``BLOCKED``."""
    draw = _fraction(seed, job_id, "outcome")
    return "FAILED" if draw < 0.1 else "BLOCKED" if draw < 0.2 else "SUCCEED"


@dataclass
class Lifecycle:
    """Moves jobs WAITING → PROCESSING → an end over time (see the module docstring)."""

    wait_seconds: float
    live_seconds: float
    seed: int | str = 0
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0)
    pinned: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def reset(self, jobs: MutableMapping[str, dict[str, Any]], apply: Apply) -> None:
        """Every job WAITING, now."""
        now = datetime.now(UTC)
        for job in jobs.values():
            for name in ("start_time", "end_time", "duration", "error_info", "block_reason"):
                job.pop(name, None)
            apply(job, "WAITING", now)

    def target(self, job_id: str, elapsed: float) -> str:
        """The state ``job_id`` has ``elapsed`` seconds after the start."""
        begins = _fraction(self.seed, job_id, "start") * self.wait_seconds
        if elapsed < begins:
            return "WAITING"
        if elapsed < begins + self.live_seconds:
            return "PROCESSING"
        return outcome(self.seed, job_id)

    def advance(self, jobs: MutableMapping[str, dict[str, Any]], apply: Apply) -> None:
        """Move every job not pinned to the state it has by now, one step at a time."""
        elapsed = self.clock() - self.started
        now = datetime.now(UTC)
        for job_id, job in jobs.items():
            if job_id in self.pinned:
                continue
            wanted = self.target(job_id, elapsed)
            if job["state"] == wanted:
                continue
            if job["state"] == "WAITING" and wanted != "PROCESSING":
                apply(job, "PROCESSING", now)  # a live always starts before it ends
            if wanted == "FAILED":
                job["error_info"] = dict(ERROR_INFO)
            elif wanted == "BLOCKED":
                job["block_reason"] = BLOCK_REASON
            apply(job, wanted, now)

"""The misrouted jobs of the tenant, listed once for ``receiver check``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection

from receiver.metastudio.models import SmartLiveJob
from receiver.reconcile.misrouted import classify, printable

# Jobs looked at, at most (newest-updated first): ten list calls.
MAX_JOBS = 1000


async def misrouted_lines(
    jobs: AsyncIterator[SmartLiveJob], callback_url: str, accepted_auth: Collection[str]
) -> tuple[int, list[str]]:
    """``(jobs looked at, one line per misrouted job)``, names and URLs printed safely.

    A line reads ``room <id> (<name>), job <id>: <why>``: control characters are shown as
    ``?``, a URL's query (which may carry a token) is redacted, the job's key is never shown.
    """
    seen = 0
    lines: list[str] = []
    async for job in jobs:
        seen += 1
        _reason, why = classify(job, callback_url, accepted_auth)
        if why:
            room = printable(job.room_id or "?", 128)
            if job.room_name:
                room += f" ({printable(job.room_name, 64)})"
            lines.append(f"room {room}, job {printable(job.job_id or '?', 128)}: {why}")
        if seen >= MAX_JOBS:
            break
    return seen, lines

"""Stopping a background task within a bound, whatever the code it is running does."""

from __future__ import annotations

import asyncio

STOP_SECONDS = 5.0


async def stop_task(task: asyncio.Task[None] | None, timeout: float = STOP_SECONDS) -> bool:
    """Cancel ``task`` and wait for it for at most ``timeout`` seconds; True if it ended.

    A client library may catch the cancellation of a call it was running and go on (the
    task then stays "cancelling" and is never cancelled again), so the wait is bounded:
    a shutdown must not hang on one loop. Loops should also check a stop flag of their own.
    """
    if task is None:
        return True
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=timeout)
    return bool(done)

"""Appends of one event id in this process, one at a time: a duplicate waits for the first.

A replayed callback can arrive while its first copy is still being stored. Answering it
``duplicate`` at once would acknowledge an event that may still fail to be stored (and
the first copy would then be answered 503). So the second copy waits for the first's
outcome: stored, it is a duplicate; failed, the second copy tries to store it itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class AppendsInProgress:
    """The event ids being appended now, each with the future of its outcome."""

    def __init__(self) -> None:
        # True: stored; False: found stored already; None: the attempt failed.
        self._running: dict[str, asyncio.Future[bool | None]] = {}

    def __len__(self) -> int:
        return len(self._running)

    async def once(self, event_id: str, store: Callable[[], Awaitable[bool]]) -> bool:
        """``store()`` unless a copy of ``event_id`` is stored meanwhile (then False)."""
        while (running := self._running.get(event_id)) is not None:
            if await asyncio.shield(running) is not None:
                return False  # the first copy is stored (or was found stored)
        future: asyncio.Future[bool | None] = asyncio.get_running_loop().create_future()
        self._running[event_id] = future
        outcome: bool | None = None
        try:
            outcome = await store()
        finally:
            del self._running[event_id]
            future.set_result(outcome)
        return outcome

"""A journal backend: writes buffered and flushed in batches, a follower that never stops.

Writing never waits and never raises into the pipeline: :meth:`Journal.write` puts the
entry in a buffer bounded in entries and bytes, a background task flushes it in batches
(retried with the one backoff while the backend is down); an entry that does not fit, or
is too large, is dropped and counted. Following starts ``max_seconds`` back (what a
restarted replica catches up on), resumes where it was after a backend failure, and hands
each entry to the fold, whose errors are logged and skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from receiver.journal.entries import MAX_BLOB as MAX_ENTRY_BYTES
from receiver.retry import Backoff
from receiver.tasks import stop_task

log = logging.getLogger("receiver.journal")

BUFFER_ENTRIES = 20_000
BUFFER_BYTES = 32 * 1024 * 1024
FLUSH_BATCH = 500
FLUSH_PAUSE_SECONDS = 0.05
BACKOFF = Backoff(0.2, 5.0)


@dataclass(frozen=True, slots=True)
class JournalLimits:
    """How much the backend keeps: entries, bytes, seconds."""

    max_entries: int
    max_bytes: int
    max_seconds: float


class Journal(ABC):
    """Entries written by every replica, followed by every replica."""

    def __init__(self, limits: JournalLimits, on_drop: Callable[[], None] = lambda: None) -> None:
        self.limits = limits
        self._on_drop = on_drop
        self._buffer: deque[bytes] = deque()
        self._buffered = 0  # bytes in the buffer
        self._wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None
        self._follower: asyncio.Task[None] | None = None

    def write(self, entry: bytes) -> None:
        """Queue ``entry`` for the backend (dropped and counted when it cannot be kept)."""
        if (
            len(self._buffer) >= BUFFER_ENTRIES
            or len(entry) > MAX_ENTRY_BYTES
            or self._buffered + len(entry) > BUFFER_BYTES
        ):
            self._on_drop()
            return
        self._buffer.append(entry)
        self._buffered += len(entry)
        self._wake.set()

    def start(self, fold: Callable[[bytes], None]) -> None:
        """Start flushing and following; ``fold`` gets every entry of every replica."""
        loop = asyncio.get_running_loop()
        self._flusher = loop.create_task(self._flushing())
        self._follower = loop.create_task(self._following(fold))

    async def close(self) -> None:
        """Flush what is buffered (briefly), stop following and release the backend."""
        await stop_task(self._follower)
        if self._flusher is not None:
            try:
                async with asyncio.timeout(2.0):
                    await self._flush_all()  # after the flusher's own batch, never beside it
            except Exception as error:  # the backend is gone: the entries are lost
                log.debug("journal flush at close failed", extra={"error": repr(error)})
        await stop_task(self._flusher)
        self._flusher = self._follower = None
        await self._release()

    async def _flush_all(self) -> None:
        async with self._flush_lock:
            while self._buffer:
                batch = [self._buffer[i] for i in range(min(FLUSH_BATCH, len(self._buffer)))]
                await self._flush(batch)
                for _ in batch:
                    self._buffered -= len(self._buffer.popleft())

    async def _flushing(self) -> None:
        retry = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._flush_all()
                retry = 0
            except Exception as error:
                log.warning("journal write failed; retrying", extra={"error": repr(error)})
                await asyncio.sleep(BACKOFF.delay(retry))
                retry += 1
                self._wake.set()
                continue
            await asyncio.sleep(FLUSH_PAUSE_SECONDS)  # gather the next batch

    async def _following(self, fold: Callable[[bytes], None]) -> None:
        since = time.time() - self.limits.max_seconds
        retry = 0
        while True:
            try:
                async for batch in self._follow(since):
                    retry = 0
                    for entry in batch:
                        try:
                            fold(entry)
                        except Exception:
                            log.exception("journal entry not folded")
            except Exception as error:
                log.warning("journal read failed; retrying", extra={"error": repr(error)})
            await asyncio.sleep(BACKOFF.delay(retry))
            retry += 1

    @abstractmethod
    async def _flush(self, batch: list[bytes]) -> None:
        """Write ``batch`` to the backend (raises when it could not)."""

    @abstractmethod
    def _follow(self, since: float) -> AsyncIterator[list[bytes]]:
        """Entries from ``since`` (epoch seconds) on, then as they come, forever; after a
        failure a new call resumes after the last entry it yielded."""

    async def _release(self) -> None:
        """Close the backend's connections."""

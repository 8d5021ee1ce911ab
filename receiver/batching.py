"""A dedicated thread that runs blocking work in batches for asyncio callers.

Callers ``await submit(item)``; the thread takes every item that is waiting (up to a
limit), handles them in one call (one SQLite transaction, one fsync) and wakes each caller
with its own result. Concurrent requests so share one commit: group commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

BatchHandler = Callable[[Sequence[Item]], Sequence[Result | BaseException]]


@dataclass(slots=True)
class _Entry(Generic[Item, Result]):
    item: Item
    future: asyncio.Future[Result]
    loop: asyncio.AbstractEventLoop


@dataclass(slots=True)
class _Stop:
    on_stop: Callable[[], None] | None


class BatchThread(Generic[Item, Result]):
    """Run ``handle(batch)`` on one thread; each item's result goes back to its caller."""

    def __init__(self, name: str, handle: BatchHandler[Item, Result], max_batch: int) -> None:
        self._name = name
        self._handle = handle
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Entry[Item, Result] | _Stop] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self, on_start: Callable[[], None] | None = None) -> None:
        """Start the thread; ``on_start`` runs first on it (e.g. to open a connection)."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                if on_start is not None:
                    on_start()
            except BaseException as error:  # handed to the starting caller
                failure.append(error)
                ready.set()
                return
            ready.set()
            self._loop()

        self._thread = threading.Thread(target=run, name=self._name, daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread = None
            raise failure[0]

    def stop(self, on_stop: Callable[[], None] | None = None) -> None:
        """Finish what was submitted, run ``on_stop`` on the thread, and join it."""
        if self._thread is None:
            return
        self._queue.put(_Stop(on_stop))
        self._thread.join()
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    async def submit(self, item: Item) -> Result:
        """Queue ``item`` and wait for its result (or its exception)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._queue.put(_Entry(item, future, loop))
        return await future

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            work = [entry for entry in batch if isinstance(entry, _Entry)]
            if work:
                self._run(work)
            stops = [entry for entry in batch if isinstance(entry, _Stop)]
            if stops:
                if stops[0].on_stop is not None:
                    stops[0].on_stop()
                return

    def _run(self, work: list[_Entry[Item, Result]]) -> None:
        results: Sequence[Result | BaseException]
        try:
            results = self._handle([entry.item for entry in work])
        except BaseException as error:  # every caller learns of the failure
            results = [error] * len(work)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Result], object]]] = {}
        for entry, result in zip(work, results, strict=True):
            by_loop.setdefault(entry.loop, []).append((entry.future, result))
        for loop, pairs in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_settle, pairs)


def _settle(pairs: list[tuple[asyncio.Future[Result], object]]) -> None:
    for future, result in pairs:
        if future.done():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)  # type: ignore[arg-type]

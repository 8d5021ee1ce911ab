"""Durable writes for asyncio callers: a worker thread for blocking calls, group commit.

:class:`WorkerThread` runs one job at a time and hands each outcome back to the event
loop. :class:`GroupCommit` writes batches on the loop and leaves only the ``fdatasync`` to
the thread. Every blocking call gives up the GIL, and a thread that wants it back while
the event loop is busy waits (up to a switch interval) and then forces a switch: so the
thread gets one call per batch, no Python work in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")
Item = TypeVar("Item")
Result = TypeVar("Result")

Done = Callable[[Any], None]
_STOP = object()


class WorkerThread:
    """One thread that runs jobs in the order they were queued."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, on_start: Callable[[], None] | None = None) -> None:
        """Start the thread; ``on_start`` runs on it first and its exception is raised here."""
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
        """Finish the queued jobs, run ``on_stop`` on the thread, and join it."""
        if self._thread is None:
            return
        self._queue.put((_STOP, on_stop, None))
        self._thread.join()
        self._thread = None

    def run_soon(self, job: Callable[[], T], done: Callable[[T | BaseException], None]) -> None:
        """Queue ``job``; ``done`` gets its result, or the exception it raised, on this loop."""
        self._queue.put((job, done, asyncio.get_running_loop()))

    async def run(self, job: Callable[[], T]) -> T:
        """Run ``job`` on the thread and wait for its result."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self.run_soon(job, functools.partial(_settle, future))
        return await future

    def _loop(self) -> None:
        while True:
            job, done, loop = self._queue.get()
            if job is _STOP:
                if done is not None:
                    done()
                return
            try:
                outcome = job()
            except BaseException as error:  # the caller learns of the failure
                outcome = error
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(done, outcome)


def _settle(future: asyncio.Future[Any], outcome: Any) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


class GroupCommit(Generic[Item, Result]):
    """Group commit: ``write`` on the event loop, then ``sync`` on a worker thread.

    ``write(items)`` (an SQLite transaction with ``synchronous=NORMAL``, an ``os.write``:
    quick, into the page cache) returns one result per item, or raises: then every item
    of that batch gets the exception. ``sync()`` (an ``fdatasync``) makes it durable; only
    then do the items' callers get their results. One batch is written and synced at a
    time: what is added meanwhile waits and goes in the next, so the busier the loop, the
    larger the batches. ``extra()``, called when a batch is written, may add items that
    never start a batch of their own (acknowledgements riding along with the next write);
    when that batch's write or sync fails, ``extra_failed`` gets them back with the error,
    so that a later batch can carry them (and a failed sync is known even when only such
    items were in the batch).
    """

    def __init__(
        self,
        write: Callable[[Sequence[Item]], Sequence[Result]],
        sync: Callable[[], None] | None,
        worker: WorkerThread | None,
        max_batch: int,
        extra: Callable[[], list[Item]] | None = None,
        extra_failed: Callable[[list[Item], BaseException], None] | None = None,
    ) -> None:
        self._write = write
        self._sync = sync
        self._worker = worker
        self._max_batch = max_batch
        self._extra = extra
        self._extra_failed = extra_failed
        self._waiting: list[tuple[Item, Done | None]] = []
        self._busy = False
        self._scheduled = False

    @property
    def busy(self) -> bool:
        """Whether a batch is being written or synced now."""
        return self._busy or self._scheduled

    def add(self, item: Item, done: Done | None = None) -> None:
        """Write ``item`` with the next batch; ``done`` gets its result or the exception."""
        self._waiting.append((item, done))
        self._schedule()

    async def submit(self, item: Item) -> Result:
        """:meth:`add` and wait for the item's result."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self.add(item, functools.partial(_settle, future))
        return await future

    def flush(self) -> None:
        """Write a batch of the ``extra()`` items alone, unless a batch is under way."""
        self._schedule()

    def refuse_waiting(self, error: BaseException) -> None:
        """Answer every item not yet written with ``error``, and never write them."""
        waiting, self._waiting = self._waiting, []
        self._answer(waiting, error)

    def _schedule(self) -> None:
        # At the end of this loop iteration: the requests read in it share the batch.
        if not self._busy and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._write_batch)

    def _write_batch(self) -> None:
        self._scheduled = False
        batch, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch :]
        items = [item for item, _ in batch]
        extras = self._extra() if self._extra is not None else []
        items.extend(extras)
        if not items:
            return
        try:
            results: Sequence[Result] | BaseException = self._write(items)
        except Exception as error:  # every caller of the batch learns of the failure
            results = error
        if self._sync is None or self._worker is None or isinstance(results, BaseException):
            self._settle_extras(extras, results)
            self._answer(batch, results)
            if self._waiting:
                self._schedule()
            return
        self._busy = True
        self._worker.run_soon(self._sync, functools.partial(self._synced, batch, extras, results))

    def _synced(
        self,
        batch: list[tuple[Item, Done | None]],
        extras: list[Item],
        results: Sequence[Result],
        failure: BaseException | None,
    ) -> None:
        self._busy = False
        if self._waiting:
            self._schedule()
        outcome = failure if failure is not None else results
        self._settle_extras(extras, outcome)
        self._answer(batch, outcome)

    def _settle_extras(self, extras: list[Item], outcome: object) -> None:
        if extras and isinstance(outcome, BaseException) and self._extra_failed is not None:
            self._extra_failed(extras, outcome)

    @staticmethod
    def _answer(
        batch: list[tuple[Item, Done | None]], results: Sequence[Result] | BaseException
    ) -> None:
        if isinstance(results, BaseException):
            for _, done in batch:
                if done is not None:
                    done(results)
            return
        for (_, done), result in zip(batch, results, strict=False):
            if done is not None:
                done(result)

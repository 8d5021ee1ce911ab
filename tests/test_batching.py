"""Group commit: writes on the loop, one sync on the worker thread per batch."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from receiver.batching import GroupCommit, WorkerThread


class Recorder:
    """A write and a sync that record what they were given, and can be told to fail."""

    def __init__(self) -> None:
        self.writes: list[list[str]] = []
        self.syncs = 0
        self.sync_threads: set[str] = set()
        self.fail_write: Exception | None = None
        self.fail_sync: Exception | None = None
        self.release = threading.Event()
        self.release.set()

    def write(self, items: Sequence[str]) -> list[str]:
        self.writes.append(list(items))
        if self.fail_write is not None:
            raise self.fail_write
        return [f"stored {item}" for item in items]

    def sync(self) -> None:
        self.sync_threads.add(threading.current_thread().name)
        self.release.wait(5)
        self.syncs += 1
        if self.fail_sync is not None:
            raise self.fail_sync


@pytest.fixture
async def worker() -> object:
    thread = WorkerThread("test-worker")
    await asyncio.to_thread(thread.start)
    yield thread
    await asyncio.to_thread(thread.stop)


async def test_items_added_together_share_one_write_and_one_sync(worker: WorkerThread) -> None:
    recorder = Recorder()
    group: GroupCommit[str, str] = GroupCommit(recorder.write, recorder.sync, worker, 100)
    results = await asyncio.gather(*(group.submit(f"e{n}") for n in range(50)))
    assert results == [f"stored e{n}" for n in range(50)]
    assert recorder.writes == [[f"e{n}" for n in range(50)]]
    assert recorder.syncs == 1 and recorder.sync_threads == {"test-worker"}


async def test_items_added_during_a_sync_go_in_the_next_batch(worker: WorkerThread) -> None:
    recorder = Recorder()
    recorder.release.clear()
    group: GroupCommit[str, str] = GroupCommit(recorder.write, recorder.sync, worker, 100)
    first = asyncio.ensure_future(group.submit("a"))
    await asyncio.sleep(0.05)  # "a" is written, its sync is held
    later = [asyncio.ensure_future(group.submit(name)) for name in ("b", "c", "d")]
    await asyncio.sleep(0.05)
    assert recorder.writes == [["a"]] and not first.done()
    recorder.release.set()
    assert await first == "stored a"
    assert await asyncio.gather(*later) == ["stored b", "stored c", "stored d"]
    assert recorder.writes == [["a"], ["b", "c", "d"]]
    assert recorder.syncs == 2


async def test_batches_are_at_most_max_batch(worker: WorkerThread) -> None:
    recorder = Recorder()
    group: GroupCommit[str, str] = GroupCommit(recorder.write, recorder.sync, worker, 4)
    await asyncio.gather(*(group.submit(str(n)) for n in range(10)))
    assert [len(batch) for batch in recorder.writes] == [4, 4, 2]


async def test_a_failed_write_fails_its_batch_only(worker: WorkerThread) -> None:
    recorder = Recorder()
    recorder.fail_write = OSError(28, "No space left on device")
    group: GroupCommit[str, str] = GroupCommit(recorder.write, recorder.sync, worker, 100)
    outcomes = await asyncio.gather(group.submit("a"), group.submit("b"), return_exceptions=True)
    assert all(isinstance(outcome, OSError) for outcome in outcomes)
    assert recorder.syncs == 0
    recorder.fail_write = None
    assert await group.submit("c") == "stored c"


async def test_a_failed_sync_fails_every_item_of_the_batch(worker: WorkerThread) -> None:
    recorder = Recorder()
    recorder.fail_sync = OSError(5, "Input/output error")
    group: GroupCommit[str, str] = GroupCommit(recorder.write, recorder.sync, worker, 100)
    outcomes = await asyncio.gather(group.submit("a"), group.submit("b"), return_exceptions=True)
    assert [type(outcome) for outcome in outcomes] == [OSError, OSError]


async def test_without_a_sync_results_come_after_the_write() -> None:
    recorder = Recorder()
    group: GroupCommit[str, str] = GroupCommit(recorder.write, None, None, 100)
    assert await group.submit("a") == "stored a"
    assert recorder.syncs == 0


async def test_extra_items_ride_along_and_flush_writes_them_alone(worker: WorkerThread) -> None:
    recorder = Recorder()
    riders: list[str] = []

    def extra() -> list[str]:
        taken = riders[:]
        riders.clear()
        return taken

    group: GroupCommit[str, str] = GroupCommit(recorder.write, recorder.sync, worker, 100, extra)
    riders.append("ack-1")
    await asyncio.sleep(0.02)
    assert recorder.writes == []  # a rider never starts a batch by itself
    await group.submit("a")
    assert recorder.writes == [["a", "ack-1"]]
    riders.append("ack-2")
    group.flush()
    while group.busy:
        await asyncio.sleep(0.01)
    assert recorder.writes[-1] == ["ack-2"]
    group.flush()  # nothing to write: no empty batch
    await asyncio.sleep(0.02)
    assert len(recorder.writes) == 2


@pytest.mark.parametrize("failing", ["write", "sync"])
async def test_extra_items_of_a_failed_batch_are_handed_back(
    worker: WorkerThread, failing: str
) -> None:
    recorder = Recorder()
    riders = ["ack-1"]
    handed_back: list[tuple[str, str]] = []

    def extra() -> list[str]:
        taken = riders[:]
        riders.clear()
        return taken

    group: GroupCommit[str, str] = GroupCommit(
        recorder.write,
        recorder.sync,
        worker,
        100,
        extra,
        lambda items, error: handed_back.extend((item, str(error)) for item in items),
    )
    setattr(recorder, f"fail_{failing}", OSError(5, "Input/output error"))
    with pytest.raises(OSError, match="Input/output error"):
        await group.submit("a")
    assert handed_back == [("ack-1", "[Errno 5] Input/output error")]
    setattr(recorder, f"fail_{failing}", None)
    await group.submit("b")
    assert len(handed_back) == 1


async def test_refuse_waiting_answers_what_was_not_written(worker: WorkerThread) -> None:
    recorder = Recorder()
    recorder.release.clear()
    group: GroupCommit[str, str] = GroupCommit(recorder.write, recorder.sync, worker, 100)
    first = asyncio.ensure_future(group.submit("a"))
    await asyncio.sleep(0.05)  # "a" is written, its sync is held
    later = asyncio.ensure_future(group.submit("b"))
    await asyncio.sleep(0.01)
    group.refuse_waiting(OSError(5, "Input/output error"))
    with pytest.raises(OSError, match="Input/output error"):
        await later
    recorder.release.set()
    assert await first == "stored a"
    assert recorder.writes == [["a"]]


async def test_worker_thread_runs_jobs_in_order_and_hands_back_errors(
    worker: WorkerThread,
) -> None:
    seen: list[int] = []
    assert await worker.run(lambda: seen.append(1) or 41 + 1) == 42
    with pytest.raises(ZeroDivisionError):
        await worker.run(lambda: 1 // 0)
    assert seen == [1]

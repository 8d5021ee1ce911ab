"""stop_task: a task that swallows its cancellation does not hang the caller."""

from __future__ import annotations

import asyncio
import contextlib
import time

from receiver.tasks import stop_task


async def test_a_task_that_ends_on_cancel_is_stopped() -> None:
    task = asyncio.get_running_loop().create_task(asyncio.sleep(60))
    await asyncio.sleep(0)
    assert await stop_task(task)
    assert task.cancelled()


async def test_a_task_that_swallows_the_cancel_is_waited_for_a_bounded_time() -> None:
    async def stubborn() -> None:
        with contextlib.suppress(asyncio.CancelledError):  # as some client libraries do
            await asyncio.sleep(60)
        await asyncio.sleep(60)

    task = asyncio.get_running_loop().create_task(stubborn())
    await asyncio.sleep(0)
    started = time.monotonic()
    assert not await stop_task(task, timeout=0.3)
    assert time.monotonic() - started < 2
    task.cancel()  # the second cancel reaches the second sleep
    await asyncio.wait({task}, timeout=1)
    assert task.done()


async def test_no_task_is_nothing_to_stop() -> None:
    assert await stop_task(None)

"""Appends of one event id in one process: a copy waits for the first copy's outcome."""

from __future__ import annotations

import asyncio

import pytest

from receiver.intake.base import IntakeUnavailable
from receiver.intake.in_progress import AppendsInProgress


async def test_a_copy_is_a_duplicate_only_once_the_first_is_stored() -> None:
    appends, gate, stores = AppendsInProgress(), asyncio.Event(), []

    async def store() -> bool:
        stores.append(1)
        await gate.wait()
        return True

    first = asyncio.create_task(appends.once("e", store))
    await asyncio.sleep(0)
    second = asyncio.create_task(appends.once("e", store))
    await asyncio.sleep(0.05)
    assert not second.done()
    gate.set()
    assert await first is True
    assert await second is False
    assert len(stores) == 1 and len(appends) == 0


@pytest.mark.parametrize("failure", [IntakeUnavailable("down"), asyncio.CancelledError()])
async def test_a_copy_of_a_failed_first_stores_it(failure: BaseException) -> None:
    appends, gate = AppendsInProgress(), asyncio.Event()

    async def failing() -> bool:
        await gate.wait()
        raise failure

    async def storing() -> bool:
        return True

    first = asyncio.create_task(appends.once("e", failing))
    await asyncio.sleep(0)
    second = asyncio.create_task(appends.once("e", storing))
    await asyncio.sleep(0.05)
    gate.set()
    with pytest.raises(type(failure)):
        await first
    assert await second is True
    assert len(appends) == 0


async def test_other_ids_do_not_wait() -> None:
    appends, gate = AppendsInProgress(), asyncio.Event()

    async def blocked() -> bool:
        await gate.wait()
        return True

    async def storing() -> bool:
        return True

    first = asyncio.create_task(appends.once("a", blocked))
    await asyncio.sleep(0)
    assert await asyncio.wait_for(appends.once("b", storing), 1.0) is True
    gate.set()
    assert await first

"""The dead-letter contract, run against every store: sqlite, redis and nats."""

from __future__ import annotations

import asyncio

import pytest

from receiver.deadletters import BaseDeadLetterStore, DeadLetter
from tests.deadletters.conftest import Backend

HOSTILE_SINK = "out\r\n*:{evil} ../../x \x00 * > ."


async def add(store: BaseDeadLetterStore, event_id: str, sink: str = "kafka") -> int:
    return await store.add(
        event_id=event_id,
        sink=sink,
        body=b'{"id": "%s"}' % event_id.encode(),
        attempts=8,
        last_error="no acknowledgement within 10s",
        first_attempt_at=1_700_000_000.5,
        dead_at=1_700_000_060.25,
    )


async def test_add_get_list_remove_purge_count(store: BaseDeadLetterStore) -> None:
    first = await add(store, "e1")
    second = await add(store, "e2", sink="redis")
    third = await add(store, "e3")
    assert isinstance(first, int) and first < second < third
    assert await store.count() == 3
    assert await store.count(sink="kafka") == 2
    assert await store.count(sink="nobody") == 0

    assert await store.get(first) == DeadLetter(
        id=first,
        event_id="e1",
        sink="kafka",
        body=b'{"id": "e1"}',
        attempts=8,
        last_error="no acknowledgement within 10s",
        first_attempt_at=1_700_000_000.5,
        dead_at=1_700_000_060.25,
    )
    assert await store.get(third + 1000) is None

    assert [x.event_id for x in await store.list()] == ["e1", "e2", "e3"]
    assert [x.event_id for x in await store.list(sink="kafka")] == ["e1", "e3"]
    assert [x.event_id for x in await store.list(limit=1)] == ["e1"]

    assert await store.remove(first)
    assert not await store.remove(first)
    assert await store.get(first) is None
    assert await store.count(sink="kafka") == 1

    assert await store.purge(sink="redis") == 1
    assert [x.event_id for x in await store.list()] == ["e3"]
    assert await store.purge() == 1
    assert await store.count() == 0
    assert await store.list() == []


async def test_binary_bodies_hostile_names_and_long_errors(store: BaseDeadLetterStore) -> None:
    body = bytes(range(256))
    letter_id = await store.add("ev\r\n*>", HOSTILE_SINK, body, 1, "x" * 10_000, 1.0, 2.0)
    other = await add(store, "plain", sink="out")
    letter = await store.get(letter_id)
    assert letter is not None
    assert (letter.body, letter.sink, letter.event_id) == (body, HOSTILE_SINK, "ev\r\n*>")
    assert 0 < len(letter.last_error) <= 2000
    assert [x.id for x in await store.list(sink=HOSTILE_SINK)] == [letter_id]
    assert await store.count(sink="out") == 1
    assert await store.purge(sink=HOSTILE_SINK) == 1
    assert [x.id for x in await store.list()] == [other]


async def test_a_claim_is_won_once_released_or_lapses(store: BaseDeadLetterStore) -> None:
    letter_id = await add(store, "c1")
    assert await store.claim(letter_id, seconds=60)
    assert not await store.claim(letter_id, seconds=60)
    await store.release(letter_id)
    assert await store.claim(letter_id, seconds=0.2)
    await asyncio.sleep(0.3)
    assert await store.claim(letter_id, seconds=60)  # the lapsed claim is taken over
    assert await store.get(letter_id) is not None  # a claim keeps the letter
    assert await store.remove(letter_id)
    assert not await store.claim(letter_id)  # gone
    assert not await store.claim(letter_id + 1000)


async def test_concurrent_claims_and_removes_each_win_once(backend: Backend) -> None:
    writer = backend.open()
    ids = [await add(writer, f"e{index}") for index in range(20)]
    stores = [backend.open() for _ in range(4)]
    try:
        for operation in ("claim", "remove"):
            results = await asyncio.gather(
                *(getattr(store, operation)(letter_id) for letter_id in ids for store in stores)
            )
            wins = [sum(results[i * 4 : i * 4 + 4]) for i in range(len(ids))]
            assert wins == [1] * len(ids), operation
        assert await writer.count() == 0
    finally:
        for store in [writer, *stores]:
            await store.close()


async def test_a_claim_racing_the_removal_of_its_letter_loses(backend: Backend) -> None:
    replay, late = backend.open(), backend.open()
    try:
        letter_id = await add(replay, "r1")
        assert await replay.claim(letter_id)
        looked_up = late.get

        async def found_then_removed(wanted: int) -> DeadLetter | None:
            found = await looked_up(wanted)
            if found is not None:  # the first replay delivers and removes it meanwhile
                assert await replay.remove(wanted)
            return found

        late.get = found_then_removed  # type: ignore[method-assign]
        assert not await late.claim(letter_id)
        late.get = looked_up  # type: ignore[method-assign]
        if await replay.get(letter_id) is not None:  # a store whose claim never looks
            assert await replay.remove(letter_id)
        assert not await late.claim(letter_id)
        assert await replay.count() == 0
    finally:
        for store in (replay, late):
            await store.close()


async def test_concurrent_adds_get_distinct_ids(store: BaseDeadLetterStore) -> None:
    ids = await asyncio.gather(*(add(store, f"e{index}") for index in range(30)))
    assert len(set(ids)) == 30
    assert await store.count() == 30


async def test_closed_store_refuses_work(backend: Backend) -> None:
    store = backend.open()
    await store.count()
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(RuntimeError):
        await store.count()

"""DeadLetterStore: the SQLite table of events a sink gave up on."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from receiver.config import DeadLetterSettings
from receiver.deadletters import DeadLetter, DeadLetterStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[DeadLetterStore]:
    letters = DeadLetterStore(tmp_path / "nested" / "dir" / "dead.db")
    yield letters
    await letters.close()


async def add(store: DeadLetterStore, event_id: str, sink: str = "kafka") -> int:
    return await store.add(
        event_id=event_id,
        sink=sink,
        body=b'{"id": "%s"}' % event_id.encode(),
        attempts=8,
        last_error="no acknowledgement within 10s",
        first_attempt_at=1_700_000_000.5,
        dead_at=1_700_000_060.25,
    )


async def test_add_get_list_remove_purge_count(store: DeadLetterStore) -> None:
    first = await add(store, "e1")
    second = await add(store, "e2", sink="redis")
    third = await add(store, "e3")
    assert first < second < third
    assert await store.count() == 3
    assert await store.count(sink="kafka") == 2

    letter = await store.get(first)
    assert letter == DeadLetter(
        id=first,
        event_id="e1",
        sink="kafka",
        body=b'{"id": "e1"}',
        attempts=8,
        last_error="no acknowledgement within 10s",
        first_attempt_at=1_700_000_000.5,
        dead_at=1_700_000_060.25,
    )
    assert await store.get(9999) is None

    assert [x.event_id for x in await store.list()] == ["e1", "e2", "e3"]
    assert [x.event_id for x in await store.list(sink="kafka")] == ["e1", "e3"]
    assert [x.event_id for x in await store.list(limit=1)] == ["e1"]

    assert await store.remove(first)
    assert not await store.remove(first)
    assert await store.get(first) is None

    assert await store.purge(sink="redis") == 1
    assert [x.event_id for x in await store.list()] == ["e3"]
    assert await store.purge() == 1
    assert await store.count() == 0


async def test_letters_survive_reopening(tmp_path: Path) -> None:
    path = DeadLetterSettings(path=tmp_path / "data" / "dead.db").path
    store = DeadLetterStore(path)
    letter_id = await add(store, "durable")
    await store.close()

    reopened = DeadLetterStore(path)
    try:
        letter = await reopened.get(letter_id)
        assert letter is not None and letter.event_id == "durable"
        assert await reopened.count() == 1
    finally:
        await reopened.close()

    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_concurrent_adds_get_distinct_ids(store: DeadLetterStore) -> None:
    ids = await asyncio.gather(*(add(store, f"e{index}") for index in range(50)))
    assert len(set(ids)) == 50
    assert await store.count() == 50


async def test_binary_bodies_round_trip_and_long_errors_are_capped(store: DeadLetterStore) -> None:
    body = bytes(range(256))
    letter_id = await store.add("bin", "http", body, 1, "x" * 10_000, 1.0, 2.0)
    letter = await store.get(letter_id)
    assert letter is not None
    assert letter.body == body
    assert 0 < len(letter.last_error) <= 2000


async def test_closed_store_refuses_work(tmp_path: Path) -> None:
    store = DeadLetterStore(tmp_path / "dead.db")
    await store.count()
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(RuntimeError):
        await store.count()

"""Shared dead letters: concurrent replays, other processes, the move of a local file."""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import subprocess
import sys
from typing import Any

import orjson
import pytest

from receiver.deadletters import BaseDeadLetterStore, SqliteDeadLetterStore
from receiver.deadletters.migrate import move_local_letters
from receiver.dlq_cli import _replay
from receiver.service import ReceiverService
from tests.brokers import make_event
from tests.deadletters.conftest import Backend


async def seed(store: BaseDeadLetterStore, count: int, sink: str = "out") -> list[str]:
    ids = []
    for seq in range(count):
        envelope, body = make_event(f"room-{seq % 3}", seq)
        await store.add(envelope["id"], sink, body, 8, "timed out", 1.0, 2.0)
        ids.append(envelope["id"])
    return ids


async def test_two_concurrent_replays_deliver_each_letter_once(
    backend: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    stores = [backend.open(), backend.open()]
    try:
        event_ids = await seed(stores[0], 20)
        args = argparse.Namespace(id=None, sink=None, all=True)
        codes = await asyncio.gather(*(_replay(args, backend.settings, s) for s in stores))
        assert codes == [0, 0]
        assert await stores[0].count() == 0
    finally:
        for store in stores:
            await store.close()
    lines = (backend.settings.sinks[0].model_dump()["path"]).read_bytes().splitlines()
    delivered = [orjson.loads(line)["id"] for line in lines]
    assert sorted(delivered) == sorted(event_ids)  # each once, none lost
    assert "skipped" in capsys.readouterr().out


async def test_a_letter_is_listed_by_another_process_after_the_writer_is_gone(
    shared: Backend,
) -> None:
    data = shared.config.parent / "data"
    data.mkdir()
    store = shared.open()
    letter_id = await store.add("ev-elsewhere", "out", b"{}", 3, "refused", 1.0, 2.0)
    await store.close()
    shutil.rmtree(data)  # the writing pod's volume is gone

    listing = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "receiver.cli", "dlq", "list", "-c", str(shared.config)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert listing.returncode == 0, listing.stderr
    rows = [orjson.loads(line) for line in listing.stdout.splitlines()]
    assert [(row["id"], row["event_id"], row["sink"]) for row in rows] == [
        (letter_id, "ev-elsewhere", "out")
    ]
    assert not shared.settings.dead_letters.path.exists()  # no local file was consulted


async def local_file(backend: Backend, count: int) -> list[str]:
    local = SqliteDeadLetterStore(backend.settings.dead_letters.path)
    try:
        return await seed(local, count, sink="kafka")
    finally:
        await local.close()


async def test_the_local_file_is_moved_into_the_shared_store(shared: Backend) -> None:
    event_ids = await local_file(shared, 5)
    store = shared.open()
    try:
        assert await move_local_letters(shared.settings.dead_letters.path, store) == 5
        moved = await store.list(sink="kafka")
        assert [letter.event_id for letter in moved] == event_ids
        assert (moved[0].attempts, moved[0].last_error, moved[0].dead_at) == (8, "timed out", 2.0)
        assert await move_local_letters(shared.settings.dead_letters.path, store) == 0
    finally:
        await store.close()
    local = SqliteDeadLetterStore(shared.settings.dead_letters.path)
    assert await local.count() == 0
    await local.close()


async def test_a_failed_move_keeps_every_letter_not_yet_moved(shared: Backend) -> None:
    await local_file(shared, 4)
    store = shared.open()
    calls = 0
    add = store.add

    async def failing_add(*args: Any, **kwargs: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise ConnectionError("backend went away")
        return await add(*args, **kwargs)

    store.add = failing_add  # type: ignore[method-assign]
    try:
        with pytest.raises(ConnectionError):
            await move_local_letters(shared.settings.dead_letters.path, store)
        assert await store.count() == 2
    finally:
        await store.close()
    local = SqliteDeadLetterStore(shared.settings.dead_letters.path)
    assert await local.count() == 2  # moved ones removed, the rest kept
    await local.close()


async def test_the_service_moves_local_letters_at_start_up(
    shared: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    await local_file(shared, 3)
    settings = shared.settings.model_copy(
        update={"intake": shared.settings.intake.model_copy(update={"partitions": 1})}
    )
    service = ReceiverService(settings)
    with caplog.at_level(logging.INFO, logger="receiver.deadletters"):
        await service.start()
        try:
            assert await service.dead_letters.count(sink="kafka") == 3
        finally:
            await service.stop()
    assert "moved 3 dead letter(s)" in caplog.text

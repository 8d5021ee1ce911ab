"""A journal follower on NATS goes on after the server restarts (on a server of our own)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from receiver.journal import JournalLimits, Routed, decode, routed_entry
from receiver.journal.nats import NatsJournal
from tests.intake.nats_server import OwnNatsServer, running_nats_server

LIMITS = JournalLimits(1000, 8 * 1024 * 1024, 600.0)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[OwnNatsServer]:
    yield from running_nats_server(tmp_path / "jetstream")


def entry(index: int) -> bytes:
    return routed_entry(b'{"id":"e-%d","data":{}}' % index, [], time.time())


async def test_the_follower_goes_on_after_a_server_restart(server: OwnNatsServer) -> None:
    writer = NatsJournal(server.url, "RESTART", LIMITS)
    follower = NatsJournal(server.url, "RESTART", LIMITS)
    seen: list[bytes] = []
    writer.start(lambda _blob: None)
    follower.start(seen.append)
    try:
        for index in range(3):
            writer.write(entry(index))
        async with asyncio.timeout(15):
            while len(seen) < 3:
                await asyncio.sleep(0.05)
        await asyncio.to_thread(server.restart)
        for index in range(3, 6):
            writer.write(entry(index))
        async with asyncio.timeout(40):
            while len(seen) < 6:
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        ids = [e.envelope["id"] for e in map(decode, seen) if isinstance(e, Routed)]
        assert ids == [f"e-{index}" for index in range(6)]
    finally:
        await writer.close()
        await follower.close()

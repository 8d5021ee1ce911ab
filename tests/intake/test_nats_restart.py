"""What JetStream keeps of ``Nats-Msg-Id`` across a server restart, on a server of our own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.js.api import RetentionPolicy, StorageType, StreamConfig

from receiver.intake.nats import NatsIntake
from tests.intake.nats_server import OwnNatsServer, running_nats_server
from tests.replicas import intake_cases as cases


@pytest.fixture
def server(tmp_path: Path) -> Iterator[OwnNatsServer]:
    yield from running_nats_server(tmp_path / "jetstream")


async def test_work_queue_forgets_acked_msg_ids_across_a_restart(server: OwnNatsServer) -> None:
    """The finding the intake's own replay markers answer: the window does not survive.

    Within one server run an acked (removed) message's id is still a duplicate; after a
    restart the duplicate window is rebuilt from the messages still stored, so the id of
    one that was acked is forgotten and the same id is stored again.
    """
    config = StreamConfig(
        name="PROBE",
        subjects=["probe.>"],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        duplicate_window=300.0,
    )
    client = await nats.connect(server.url)
    js = client.jetstream()
    await js.add_stream(config)
    assert not (await js.publish("probe.a", b"1", headers={"Nats-Msg-Id": "m1"})).duplicate
    sub = await js.pull_subscribe("probe.a", durable="reader")
    (message,) = await sub.fetch(1, timeout=5)
    await message.ack_sync()
    assert (await js.publish("probe.a", b"1", headers={"Nats-Msg-Id": "m1"})).duplicate
    await client.close()
    server.restart()
    client = await nats.connect(server.url)
    js = client.jetstream()
    again = await js.publish("probe.a", b"1", headers={"Nats-Msg-Id": "m1"})
    await client.close()
    assert not again.duplicate


async def test_a_replay_after_a_server_restart_is_still_a_duplicate(server: OwnNatsServer) -> None:
    intake = NatsIntake(
        server.url, stream="RESTART", partitions=1, max_pending=100, lease_ttl=1.5, ack_wait=2.0
    )
    await intake.start()
    try:
        await cases.wait_for(lambda: cases.owned(intake) == {0})
        assert await intake.append("once", "room", 1.0, b"{}", cases.until())
        (record,) = await cases.take_n(intake, 1)
        await intake.ack(record)
    finally:
        await intake.close()
    server.restart()
    again = NatsIntake(server.url, stream="RESTART", partitions=1, max_pending=100)
    await again.start()
    try:
        assert not await again.append("once", "room", 1.0, b"{}", cases.until())
        await again.refresh_stats()
        assert again.depth() == 0
    finally:
        await again.close()

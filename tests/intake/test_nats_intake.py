"""The NATS JetStream intake against a real server on 127.0.0.1:4222 (skips without it)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest

from receiver.intake import Intake, IntakeUnavailable
from receiver.intake.nats import NatsIntake
from receiver.intake.partitions import poll_seconds
from tests.brokers import NATS, NATS_URL, require_service, unique
from tests.replicas import intake_cases as cases

TTL = 1.5


@pytest.fixture
async def stream() -> AsyncIterator[str]:
    require_service("NATS", NATS)
    name = unique("TEST_INTAKE_")
    yield name
    client = await nats.connect(NATS_URL)
    js = client.jetstream()
    for item in (name, f"KV_{name}_leases", f"KV_{name}_seen"):
        with contextlib.suppress(Exception):
            await js.delete_stream(item)
    await client.close()


def maker(stream: str) -> cases.Make:
    def make(**overrides: Any) -> Intake:
        settings: dict[str, Any] = {
            "stream": stream, "partitions": 4, "max_pending": 1000, "lease_ttl": TTL,
            "ack_wait": 2.0,
        }  # fmt: skip
        settings.update(overrides)
        return NatsIntake(NATS_URL, **settings)

    return make


async def die(intake: Intake) -> None:
    """Stop renewing and disconnect without releasing or acking anything (as ``kill -9``)."""
    assert isinstance(intake, NatsIntake) and intake.leases is not None
    assert intake.leases._task is not None and intake._progress is not None
    await cases.halt(intake.leases, [intake.leases._task, intake._progress])
    for part in list(intake._parts.values()):
        part.stopping = True
        if part.task is not None:
            part.task.cancel()
    client: Any = intake._nc
    await client.close()


async def test_append_take_ack(stream: str) -> None:
    await cases.case_append_take_ack(maker(stream))


async def test_duplicate_stored_once_across_replicas(stream: str) -> None:
    await cases.case_duplicates_stored_once(maker(stream))


async def test_full(stream: str) -> None:
    await cases.case_full(maker(stream))


async def test_leases_split_partitions(stream: str) -> None:
    await cases.case_leases_split(maker(stream))


async def test_takeover_redelivers_in_order(stream: str) -> None:
    await cases.case_takeover_after_death(maker(stream), die, TTL)


async def test_one_replica_leads_and_another_after_it_died(stream: str) -> None:
    await cases.case_one_leader(maker(stream), die, TTL)


async def test_stream_settings_and_derived_window(stream: str) -> None:
    intake = maker(stream)(partitions=3, replicas=1)
    await intake.start()
    try:
        client = await nats.connect(NATS_URL)
        info = await client.jetstream().stream_info(stream)
        assert info.config.subjects == [f"{stream}.p.*"]
        assert info.config.storage == "file"
        assert info.config.retention == "workqueue"
        assert info.config.duplicate_window == pytest.approx(241.0)
        now = time.time()
        assert await intake.append("long", "room", now, b"{}", now + 1000)
        info = await client.jetstream().stream_info(stream)
        assert info.config.duplicate_window >= 1000
        await client.close()
    finally:
        await intake.close()


async def test_redelivered_in_hand_is_kept_by_progress_acks(stream: str) -> None:
    """An event held longer than ack_wait is not handed out a second time."""
    intake = maker(stream)(partitions=1, ack_wait=1.0)
    await intake.start()
    try:
        await cases.wait_for(lambda: cases.owned(intake) == {0})
        await intake.append("slow", "room", time.time(), b"{}", cases.until())
        (record,) = await cases.take_n(intake, 1)
        assert await intake.take(5, wait_seconds=3.0) == []
        client = await nats.connect(NATS_URL)
        info = await client.jetstream().consumer_info(stream, intake.consumer(0))
        await client.close()
        assert info.num_redelivered == 0  # progress acks kept it from being redelivered
        await intake.ack(record)
    finally:
        await intake.close()


async def test_broker_down_is_unavailable(stream: str) -> None:
    intake = NatsIntake(
        "nats://127.0.0.1:1", stream=stream, partitions=1, max_pending=10, timeout=0.5
    )
    with pytest.raises(IntakeUnavailable):
        await intake.start()


async def steal(intake: Intake, partition: int) -> None:
    """Another replica's lease on ``partition``, as after this one's expired."""
    assert isinstance(intake, NatsIntake)
    client = await nats.connect(NATS_URL)
    kv = await client.jetstream().key_value(f"{intake._stream}_leases")
    await kv.put(f"p.{partition}", b"thief")
    await client.close()


async def test_lost_partition_is_not_held(stream: str) -> None:
    await cases.case_lost_partition_not_held(maker(stream), steal)


async def test_drain_releases_once_nothing_in_hand(stream: str) -> None:
    await cases.case_drain_releases_once_nothing_in_hand(maker(stream), drain=2.0)


async def test_an_ack_retried_after_a_partial_failure_counts_each_event_once(stream: str) -> None:
    """Acks of a batch retried after one timed out: the ones already acked are done."""
    intake = maker(stream)(partitions=1)
    await intake.start()
    try:
        await cases.wait_for(lambda: cases.owned(intake) == {0})
        await cases.append_events(intake, "a", 4, rooms=1)
        records = await cases.take_n(intake, 4)
        assert isinstance(intake, NatsIntake) and intake.leases is not None
        await intake.ack_many(records[:1])  # the first try got this far, then timed out
        await intake.ack_many(records[:2])  # the retry of the whole batch
        assert intake.leases._in_hand(0) == 2
        await intake.ack_many(records)
        await intake.refresh_stats()
        assert intake.depth() == 0
    finally:
        await intake.close()


async def test_a_malformed_message_does_not_stop_the_partition(stream: str) -> None:
    intake = maker(stream)(partitions=1)
    await intake.start()
    try:
        assert isinstance(intake, NatsIntake)
        await cases.wait_for(lambda: cases.owned(intake) == {0})
        client = await nats.connect(NATS_URL)
        headers = {"Nats-Msg-Id": "bad-at", "Receiver-Room": "room", "Receiver-At": "soon"}
        await client.jetstream().publish(intake.subject(0), b"{}", headers=headers)
        await client.close()
        assert await intake.append("good", "room", time.time(), b"{}", cases.until())
        records = await cases.take_n(intake, 2)
        assert [(r.event_id, bool(r.defect)) for r in records] == [
            ("bad-at", True),
            ("good", False),
        ]
        await intake.ack_many(records)
    finally:
        await intake.close()


def test_a_fetch_ends_within_a_third_of_the_lease() -> None:
    assert poll_seconds(0.6) < 0.2
    assert poll_seconds(30.0) == 1.0


async def test_a_message_that_fails_to_be_held_does_not_end_the_puller(stream: str) -> None:
    """Whatever one message raises, the partition goes on (the message comes back later)."""
    intake = maker(stream)(partitions=1, ack_wait=1.0)
    assert isinstance(intake, NatsIntake)
    hold, failed = intake._hold, []

    def failing_once(part: Any, message: Any) -> None:
        if not failed:
            failed.append(message)
            raise RuntimeError("unreadable")
        hold(part, message)

    intake._hold = failing_once  # type: ignore[method-assign]
    await intake.start()
    try:
        await cases.wait_for(lambda: cases.owned(intake) == {0})
        await cases.append_events(intake, "h", 2, rooms=1)
        records = await cases.take_n(intake, 2)
        assert sorted(r.event_id for r in records) == ["h0", "h1"] and failed
        await intake.ack_many(records)
    finally:
        await intake.close()

"""The watcher's state in Redis and in a NATS bucket: a new leader goes on where the last
one stopped, emitting each change once with the right previous state."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
import redis.asyncio as aioredis

from receiver.reconcile.callbacks import CallbackLog
from receiver.reconcile.settings import ReconcileSettings
from receiver.reconcile.shared import (
    NatsStateStore,
    RedisStateStore,
    SharedStateStore,
    decode_state,
)
from receiver.reconcile.watcher import JobWatcher
from tests.brokers import NATS, NATS_URL, REDIS, REDIS_URL, require_service, unique
from tests.reconcile.test_watcher import Jobs


@pytest.fixture(params=["redis", "nats"])
async def store_factory(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    name = unique("test_reconcile_")
    made: list[SharedStateStore] = []

    def make() -> SharedStateStore:
        store: SharedStateStore
        if request.param == "redis":
            require_service("redis", REDIS)
            store = RedisStateStore(REDIS_URL, name)
        else:
            require_service("nats", NATS)
            store = NatsStateStore(NATS_URL, name)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()
    if request.param == "redis":
        client = aioredis.from_url(REDIS_URL)
        await client.delete(f"{name}:reconcile:state", f"{name}:reconcile:callbacks")
        await client.aclose()
    else:
        connection = await nats.connect(NATS_URL)
        try:
            await connection.jetstream().delete_key_value(f"{name}_reconcile")
        finally:
            await connection.close()


def watcher(jobs: Jobs, store: SharedStateStore, events: list[dict[str, Any]]) -> JobWatcher:
    async def append(envelope: dict[str, Any]) -> None:
        events.append(envelope)

    return JobWatcher(ReconcileSettings(), jobs, store, append, callbacks=CallbackLog())


async def test_a_new_leader_goes_on_where_the_last_stopped(store_factory: Any) -> None:
    jobs, events = Jobs(), []  # type: list[dict[str, Any]]
    jobs.set("job-1", "WAITING")
    first = watcher(jobs, store_factory(), events)
    assert await first.sweep() == 0  # the first run records the present
    jobs.set("job-1", "PROCESSING")
    assert await first.sweep() == 1
    # The leader dies; another replica's watcher, with a store of its own, takes over.
    jobs.set("job-1", "SUCCEED")
    jobs.set("job-2", "WAITING")
    second = watcher(jobs, store_factory(), events)
    assert await second.sweep() == 2
    changes = [(e["jobid"], e["data"]["previous_state"], e["data"]["state"]) for e in events]
    assert changes == [
        ("job-1", "WAITING", "PROCESSING"),
        ("job-1", "PROCESSING", "SUCCEED"),
        ("job-2", None, "WAITING"),
    ]
    assert await second.sweep() == 0


async def test_a_document_that_does_not_decode_starts_afresh(store_factory: Any) -> None:
    store = store_factory()
    await store._put("state", b"not zlib")
    assert (await store.load()).jobs == {}
    await store._put("state", zlib.compress(b'{"jobs": {"j": "not a pair"}, "watermark": "x"}'))
    state = await store.load()
    assert state.jobs == {} and state.watermark is None
    assert await store.load_callbacks() == {}


def test_hostile_job_ids_are_not_restored() -> None:
    blob = zlib.compress(b'{"jobs": {"' + b"j" * 500 + b'": ["A", "t"], "ok": ["B", "u"]}}')
    assert decode_state(blob).jobs == {"ok": ("B", "u")}

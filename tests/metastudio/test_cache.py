"""The job cache against the simulator over real HTTP, counting the calls it makes."""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from receiver.config import MetaStudioSettings
from receiver.metastudio.cache import JobCache
from receiver.metastudio.client import MetaStudioClient
from receiver.simulator import create_api_app, generate_jobs
from tests.simulator.conftest import serve

PROJECT = "p" * 32
AK, SK = "CACHETESTAK", "cache-test-sk"


@pytest.fixture(scope="module")
def sim_jobs() -> list[dict[str, Any]]:
    return generate_jobs(30, 3, PROJECT)


@pytest.fixture(scope="module")
def api(sim_jobs: list[dict[str, Any]]) -> Iterator[tuple[str, Any]]:
    app = create_api_app(sim_jobs, PROJECT, AK, SK)
    with serve(app) as url:
        yield url, app


@pytest.fixture
async def client(api: tuple[str, Any]) -> AsyncIterator[MetaStudioClient]:
    settings = MetaStudioSettings(
        endpoint=api[0], project_id=PROJECT, ak=AK, sk=SK, rate_limit_per_second=1000
    )
    async with MetaStudioClient(settings) as http:
        yield http


def cache_for(client: MetaStudioClient, calls: Counter[str], **overrides: Any) -> JobCache:
    options: dict[str, Any] = {"ttl_seconds": 60, "negative_ttl_seconds": 5, "max_entries": 1000}
    options.update(overrides)
    return JobCache(
        client, on_call=lambda op, outcome: calls.update([f"{op}:{outcome}"]), **options
    )


async def test_room_miss_indexes_the_room_then_hits(
    client: MetaStudioClient, sim_jobs: list[dict[str, Any]]
) -> None:
    calls: Counter[str] = Counter()
    cache = cache_for(client, calls)
    job = sim_jobs[0]
    first = await cache.lookup(job["job_id"], job["room_id"])
    assert (first.status, first.source) == ("ok", "api")
    assert first.job is not None and first.job["room_name"] == job["room_name"]
    assert calls == Counter({"list_room_jobs:ok": 1})
    again = await cache.lookup(job["job_id"], job["room_id"])
    assert (again.status, again.source) == ("ok", "cache")
    room_mates = [j for j in sim_jobs if j["room_id"] == job["room_id"]]
    for mate in room_mates:
        assert (await cache.lookup(mate["job_id"], mate["room_id"])).source == "cache"
    assert calls["list_room_jobs:ok"] == 1


async def test_secrets_are_removed_from_cached_jobs(
    client: MetaStudioClient, sim_jobs: list[dict[str, Any]]
) -> None:
    job = sim_jobs[1]
    found = await cache_for(client, Counter()).lookup(job["job_id"], job["room_id"])
    text = repr(found.job)
    assert job["live_event_callback_config"]["key"] not in text
    for user in job["rtc_room_info"]["users"]:
        assert user["signature"] not in text


async def test_thousand_concurrent_lookups_of_one_unknown_job_make_one_call(
    client: MetaStudioClient, sim_jobs: list[dict[str, Any]]
) -> None:
    calls: Counter[str] = Counter()
    cache = cache_for(client, calls)
    results = await asyncio.gather(
        *(cache.lookup("no-such-job", sim_jobs[0]["room_id"]) for _ in range(1000))
    )
    assert {r.status for r in results} == {"not_found"}
    assert sum(calls.values()) == 1
    assert (await cache.lookup("no-such-job", sim_jobs[0]["room_id"])).source == "cache"
    assert sum(calls.values()) == 1


async def test_job_in_another_room_is_a_mismatch(
    client: MetaStudioClient, sim_jobs: list[dict[str, Any]]
) -> None:
    cache = cache_for(client, Counter())
    await cache.sweep()
    job = next(j for j in sim_jobs if j["state"] in ("WAITING", "PROCESSING"))
    other_room = next(j["room_id"] for j in sim_jobs if j["room_id"] != job["room_id"])
    result = await cache.lookup(job["job_id"], other_room)
    assert result.status == "mismatch" and result.job is not None


async def test_sweep_indexes_active_jobs_in_few_calls(
    client: MetaStudioClient, sim_jobs: list[dict[str, Any]]
) -> None:
    calls: Counter[str] = Counter()
    cache = cache_for(client, calls)
    indexed = await cache.sweep()
    active = [j for j in sim_jobs if j["state"] in ("WAITING", "PROCESSING")]
    assert indexed == len(active) == len(cache)
    assert calls == Counter({"list_jobs:ok": 1})
    for job in active:
        assert (await cache.lookup(job["job_id"], job["room_id"])).source == "cache"
    assert sum(calls.values()) == 1


async def test_entries_expire_and_memory_is_bounded(
    client: MetaStudioClient, sim_jobs: list[dict[str, Any]]
) -> None:
    now = [0.0]
    calls: Counter[str] = Counter()
    cache = cache_for(client, calls, max_entries=3, clock=lambda: now[0])
    await cache.sweep()
    assert len(cache) == 3
    job = sim_jobs[0]
    await cache.lookup(job["job_id"], job["room_id"])
    now[0] += 61
    assert (await cache.lookup(job["job_id"], job["room_id"])).source == "api"


async def test_invalidate_forces_a_fresh_lookup(
    client: MetaStudioClient, sim_jobs: list[dict[str, Any]]
) -> None:
    calls: Counter[str] = Counter()
    cache = cache_for(client, calls)
    job = sim_jobs[2]
    await cache.lookup(job["job_id"], job["room_id"])
    cache.invalidate(job["job_id"])
    assert (await cache.lookup(job["job_id"], job["room_id"])).source == "api"
    assert calls["list_room_jobs:ok"] == 2

"""Enrichment while the API fails: a bounded deadline, one probe while down, cache still used."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from receiver.config import EnrichmentSettings
from receiver.enrichment import Enricher
from receiver.metastudio.cache import JobCache
from receiver.metastudio.errors import ServerError, Timeout
from receiver.metastudio.models import ListJobsResponse, SmartLiveJob
from receiver.metrics import Metrics

ROOM = "room-1"


class ScriptedSource:
    """A job source whose answers tests control: hang, fail or answer the room's jobs."""

    def __init__(self) -> None:
        self.calls = 0
        self.mode = "fail"
        self.release = asyncio.Event()

    async def list_jobs(self, query: Any = None, **params: Any) -> ListJobsResponse:
        raise AssertionError("no sweep in these tests")

    async def list_room_jobs(
        self, room_id: str, query: Any = None, **params: Any
    ) -> ListJobsResponse:
        self.calls += 1
        if self.mode == "hang":
            await self.release.wait()
        if self.mode in ("fail", "hang"):
            raise ServerError(503, error_msg="down")
        jobs = [SmartLiveJob(job_id=f"job-{n}", room_id=room_id) for n in range(50)]
        return ListJobsResponse(count=len(jobs), smart_live_jobs=jobs)


def envelope(job: str) -> dict[str, Any]:
    data = {"event_type": "REPLY_COMMAND_FINISH", "message": {}}
    return {"jobid": job, "roomid": ROOM, "data": data}


def enricher(source: ScriptedSource, deadline: float) -> Enricher:
    cache = JobCache(source, ttl_seconds=60, negative_ttl_seconds=5, max_entries=100)
    return Enricher(cache, EnrichmentSettings(enabled=True, deadline_seconds=deadline), Metrics())


async def test_the_deadline_bounds_a_lookup_that_hangs() -> None:
    source = ScriptedSource()
    source.mode = "hang"
    event = envelope("job-1")
    async with asyncio.timeout(10):  # guards against a hang; the deadline is 0.2 s
        await enricher(source, deadline=0.2).enrich(event)
    assert event["data"]["enrichment"]["status"] == "unavailable"
    assert event["data"]["enrichment"]["error"]


async def test_while_down_one_probe_and_every_other_miss_goes_on_at_once() -> None:
    source = ScriptedSource()
    source.mode = "hang"
    steps = enricher(source, deadline=1.0)
    await steps.enrich(envelope("job-0"))  # the outage is found out
    source.calls = 0
    probe = asyncio.ensure_future(steps.enrich(probe_event := envelope("job-1")))
    await asyncio.sleep(0)
    others = [envelope(f"job-{n}") for n in range(2, 30)]
    async with asyncio.timeout(10):
        await asyncio.gather(*(steps.enrich(event) for event in others))
    assert source.calls == 1
    assert {event["data"]["enrichment"]["status"] for event in others} == {"unavailable"}
    source.mode = "answer"
    source.release.set()
    await probe
    assert probe_event["data"]["enrichment"]["status"] == "ok"
    recovered = envelope("job-3")
    await steps.enrich(recovered)
    assert recovered["data"]["enrichment"]["status"] == "ok"


async def test_cached_jobs_are_answered_during_an_outage() -> None:
    source = ScriptedSource()
    source.mode = "answer"
    steps = enricher(source, deadline=0.05)
    await steps.enrich(envelope("job-1"))
    source.mode = "fail"
    await steps.enrich(envelope("job-404"))  # a miss: the API is down now
    event = envelope("job-2")
    await steps.enrich(event)
    assert event["data"]["enrichment"] | {"looked_up_at": ""} == {
        "status": "ok",
        "source": "cache",
        "looked_up_at": "",
    }


async def test_waiters_of_an_abandoned_shared_lookup_see_a_failed_call() -> None:
    source = ScriptedSource()
    source.mode = "hang"
    cache = JobCache(source, ttl_seconds=60, negative_ttl_seconds=5, max_entries=100)
    owner = asyncio.ensure_future(cache.lookup("job-1", ROOM))
    await asyncio.sleep(0)
    waiter = asyncio.ensure_future(cache.lookup("job-2", ROOM))
    await asyncio.sleep(0)
    owner.cancel()
    with pytest.raises(Timeout):
        await waiter
    assert owner.cancelled()

"""The project's own MetaStudio client and models against the simulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from receiver.config import MetaStudioSettings
from receiver.metastudio.client import MetaStudioClient
from receiver.metastudio.models import ListJobsResponse
from receiver.simulator import create_api_app

from .conftest import AK, PROJECT_ID, SK, TOKEN, serve


@pytest.fixture(scope="module")
def base_url(jobs: list[dict[str, Any]]) -> Iterator[str]:
    with serve(create_api_app(jobs, PROJECT_ID, AK, SK, token=TOKEN)) as url:
        yield url


def test_generated_jobs_fit_the_models(jobs: list[dict[str, Any]]) -> None:
    page = ListJobsResponse.model_validate({"count": len(jobs), "smart_live_jobs": jobs})
    assert [job.job_id for job in page.smart_live_jobs] == [job["job_id"] for job in jobs]
    assert not page.smart_live_jobs[0].model_extra


async def test_aksk_client(base_url: str, jobs: list[dict[str, Any]]) -> None:
    settings = MetaStudioSettings(
        endpoint=base_url, project_id=PROJECT_ID, ak=SecretStr(AK), sk=SecretStr(SK)
    )
    async with MetaStudioClient(settings) as client:
        page = await client.list_jobs(limit=5, state=["PROCESSING", "WAITING"])
        assert page.count == sum(job["state"] in ("PROCESSING", "WAITING") for job in jobs)
        assert len(page.smart_live_jobs) == 5
        job = await client.get_job(jobs[0]["room_id"], jobs[0]["job_id"])
        assert job.job_id == jobs[0]["job_id"]
        seen = [str(listed.job_id) async for listed in client.iter_jobs()]
    assert sorted(seen) == sorted(job["job_id"] for job in jobs)


async def test_token_client(base_url: str, jobs: list[dict[str, Any]]) -> None:
    settings = MetaStudioSettings(
        endpoint=base_url,
        project_id=PROJECT_ID,
        auth="token",
        iam_endpoint=base_url,
        iam_user="ops",
        iam_password=SecretStr("pw"),
        iam_domain="tenant",
    )
    room_id = jobs[0]["room_id"]
    async with MetaStudioClient(settings) as client:
        page = await client.list_room_jobs(room_id)
    assert page.count == sum(job["room_id"] == room_id for job in jobs)


async def test_every_query_parameter_against_the_simulator(
    base_url: str, jobs: list[dict[str, Any]]
) -> None:
    settings = MetaStudioSettings(
        endpoint=base_url, project_id=PROJECT_ID, ak=SecretStr(AK), sk=SecretStr(SK)
    )
    times = sorted(job["create_time"] for job in jobs)
    since, until = times[len(times) // 4], times[3 * len(times) // 4]
    word = jobs[0]["room_name"].split()[1]
    async with MetaStudioClient(settings) as client:
        page = await client.list_jobs(
            offset=1,
            limit=3,
            state="PROCESSING,WAITING,SUCCEED",
            sort_key="create_time",
            sort_dir="desc",
            create_since=since,
            create_until=until,
            room_name=word,
        )
        every = [
            job
            async for job in client.iter_jobs(
                state="PROCESSING,WAITING,SUCCEED",
                sort_key="create_time",
                sort_dir="desc",
                create_since=since,
                create_until=until,
                room_name=word,
                limit=2,
            )
        ]
    expected = sorted(
        (
            job
            for job in jobs
            if job["state"] in ("PROCESSING", "WAITING", "SUCCEED")
            and since <= job["create_time"] <= until
            and word.lower() in job["room_name"].lower()
        ),
        key=lambda job: job["create_time"],
        reverse=True,
    )
    assert page.count == len(expected)
    assert [job.job_id for job in page.smart_live_jobs] == [job["job_id"] for job in expected[1:4]]
    assert [job.create_time for job in every] == [job["create_time"] for job in expected]


async def test_rate_limited_simulator_is_ridden_out_by_backoff(jobs: list[dict[str, Any]]) -> None:
    with serve(create_api_app(jobs, PROJECT_ID, AK, SK, rate_limit=2)) as url:
        settings = MetaStudioSettings(
            endpoint=url,
            project_id=PROJECT_ID,
            ak=SecretStr(AK),
            sk=SecretStr(SK),
            rate_limit_per_second=1000,
            max_retries=10,
        )
        async with MetaStudioClient(settings) as client:
            pages = [await client.list_jobs(limit=1) for _ in range(6)]
            retried = dict(client.counters.retries)
    assert all(page.count == len(jobs) for page in pages)
    assert retried.get("rate_limited", 0) > 0, retried

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
        endpoint=base_url, project_id=PROJECT_ID, auth="token", iam_endpoint=base_url,
        iam_user="ops", iam_password=SecretStr("pw"), iam_domain="tenant",
    )
    room_id = jobs[0]["room_id"]
    async with MetaStudioClient(settings) as client:
        page = await client.list_room_jobs(room_id)
    assert page.count == sum(job["room_id"] == room_id for job in jobs)

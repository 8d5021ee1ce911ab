"""The official (synchronous) MetaStudio SDK against the simulator, with real AK/SK."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials  # type: ignore[import-untyped]
from huaweicloudsdkcore.exceptions.exceptions import (  # type: ignore[import-untyped]
    ClientRequestException,
)
from huaweicloudsdkcore.http.http_config import HttpConfig  # type: ignore[import-untyped]
from huaweicloudsdkmetastudio.v1 import (  # type: ignore[import-untyped]
    ListSmartLiveJobsRequest,
    MetaStudioClient,
    ShowSmartLiveRequest,
)

from receiver.simulator import create_api_app, jobs_by_room

from .conftest import AK, PROJECT_ID, SK, serve


@pytest.fixture(scope="module")
def base_url(jobs: list[dict[str, Any]]) -> Iterator[str]:
    with serve(create_api_app(jobs, PROJECT_ID, AK, SK)) as url:
        yield url


def sdk_client(base_url: str, sk: str = SK) -> Any:
    config = HttpConfig.get_default_config()
    config.ignore_ssl_verification = True
    config.timeout = (5, 10)
    return (
        MetaStudioClient.new_builder()
        .with_credentials(BasicCredentials(AK, sk, PROJECT_ID))
        .with_endpoint(base_url)
        .with_http_config(config)
        .build()
    )


async def test_sdk_lists_jobs_with_filters(base_url: str, jobs: list[dict[str, Any]]) -> None:
    client = sdk_client(base_url)
    room_name = jobs[0]["room_name"]
    request = ListSmartLiveJobsRequest(
        limit=100,
        state="PROCESSING,WAITING,SUCCEED,FAILED,BLOCKED",
        sort_key="update_time",
        sort_dir="desc",
        room_name=room_name,
    )
    response = await asyncio.to_thread(client.list_smart_live_jobs, request)
    expected = [job for job in jobs if job["room_name"] == room_name]
    assert response.count == len(expected)
    assert {job.job_id for job in response.smart_live_jobs} == {j["job_id"] for j in expected}
    first = response.smart_live_jobs[0]
    assert first.room_name == room_name
    assert first.live_event_callback_config.key
    assert first.rtc_room_info.users[0].signature
    assert response.x_request_id


async def test_sdk_pages_all_jobs(base_url: str, jobs: list[dict[str, Any]]) -> None:
    client = sdk_client(base_url)
    seen: list[str] = []
    while True:
        request = ListSmartLiveJobsRequest(offset=len(seen), limit=15)
        response = await asyncio.to_thread(client.list_smart_live_jobs, request)
        seen.extend(job.job_id for job in response.smart_live_jobs)
        if len(seen) >= response.count:
            break
    assert sorted(seen) == sorted(job["job_id"] for job in jobs)


async def test_sdk_shows_one_job(base_url: str, jobs: list[dict[str, Any]]) -> None:
    job = next(iter(jobs_by_room(jobs).values()))[0]
    client = sdk_client(base_url)
    request = ShowSmartLiveRequest(room_id=job["room_id"], job_id=job["job_id"])
    response = await asyncio.to_thread(client.show_smart_live, request)
    assert response.job_id == job["job_id"]
    assert response.state == job["state"]
    assert (
        response.relation_live_platform_info.live_id
        == (job["relation_live_platform_info"]["live_id"])
    )


async def test_sdk_parses_errors(base_url: str, jobs: list[dict[str, Any]]) -> None:
    client = sdk_client(base_url)
    missing = ShowSmartLiveRequest(room_id=jobs[0]["room_id"], job_id="0" * 32)
    with pytest.raises(ClientRequestException) as not_found:
        await asyncio.to_thread(client.show_smart_live, missing)
    assert not_found.value.status_code == 404
    assert not_found.value.error_code == "MSS.00000005"
    assert not_found.value.request_id
    bad = ListSmartLiveJobsRequest(limit=500)
    with pytest.raises(ClientRequestException) as invalid:
        await asyncio.to_thread(client.list_smart_live_jobs, bad)
    assert invalid.value.status_code == 400
    assert invalid.value.error_code == "MSS.00000003"


async def test_sdk_with_wrong_secret_key_is_refused(base_url: str) -> None:
    client = sdk_client(base_url, sk="wrong")
    with pytest.raises(ClientRequestException) as refused:
        await asyncio.to_thread(client.list_smart_live_jobs, ListSmartLiveJobsRequest())
    assert refused.value.status_code == 401
    assert refused.value.error_code == "APIGW.0301"

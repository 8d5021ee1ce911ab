"""The client against the fake MetaStudio on loopback, signed with AK/SK."""

from __future__ import annotations

import pytest

from receiver.config import ConfigError
from receiver.metastudio import (
    InvalidQueryError,
    ListJobsQuery,
    MetaStudioClient,
    NotFound,
)

from .conftest import ClientFactory, SettingsFactory
from .fake_api import PROJECT_ID, RunningApi, make_job

THROTTLED = {"error_code": "APIGW.0308", "error_msg": "The throttling threshold has been reached"}


async def test_list_jobs_sends_every_query_parameter(
    api: RunningApi, make_client: ClientFactory
) -> None:
    api.state.jobs = [make_job(i) for i in range(3)]
    client = make_client()
    page = await client.list_jobs(
        offset=0,
        limit=50,
        state=["WAITING", "PROCESSING"],
        sort_key="update_time",
        sort_dir="asc",
        create_since="2024-05-01T00:00:00Z",
        create_until="2024-05-31T23:59:59+08:00",
        room_name="直播间 room-1 (&=?)",
    )
    assert api.state.query_of() == {
        "offset": "0",
        "limit": "50",
        "state": "WAITING,PROCESSING",
        "sort_key": "update_time",
        "sort_dir": "asc",
        "create_since": "2024-05-01T00:00:00Z",
        "create_until": "2024-05-31T23:59:59+08:00",
        "room_name": "直播间 room-1 (&=?)",
    }
    seen = api.state.seen[-1]
    assert seen.path == f"/v1/{PROJECT_ID}/smart-live-jobs"
    assert seen.headers["x-project-id"] == PROJECT_ID
    assert page.count == 0


async def test_list_jobs_returns_models_with_unknown_fields(
    api: RunningApi, make_client: ClientFactory
) -> None:
    api.state.jobs = [make_job(i) for i in range(3)]
    page = await make_client().list_jobs(ListJobsQuery(limit=2), state="WAITING,PROCESSING")
    assert page.count == 3
    assert [job.job_id for job in page.smart_live_jobs] == ["job-0000", "job-0001"]
    assert page.smart_live_jobs[0].model_extra == {"future_field": {"nested": True}}
    assert api.state.query_of() == {"limit": "2", "state": "WAITING,PROCESSING"}


async def test_iter_jobs_follows_every_page(api: RunningApi, make_client: ClientFactory) -> None:
    api.state.jobs = [make_job(i) for i in range(25)]
    client = make_client()
    jobs = [job async for job in client.iter_jobs(limit=10, sort_dir="desc")]
    assert [job.job_id for job in jobs] == [f"job-{i:04d}" for i in reversed(range(25))]
    assert [q.query for q in api.state.seen] == [
        [("limit", "10"), ("offset", str(offset)), ("sort_dir", "desc")] for offset in (0, 10, 20)
    ]
    assert client.counters.calls == 3


async def test_iter_jobs_defaults_to_full_pages_and_stops_on_empty(
    api: RunningApi, make_client: ClientFactory
) -> None:
    api.state.jobs = [make_job(i) for i in range(3)]
    jobs = [job async for job in make_client().iter_jobs(offset=1)]
    assert len(jobs) == 2
    assert api.state.query_of() == {"offset": "1", "limit": "100"}
    api.state.jobs = []
    assert [job async for job in make_client().iter_jobs()] == []


async def test_room_lists_and_get_job(api: RunningApi, make_client: ClientFactory) -> None:
    api.state.jobs = [make_job(i, room_id="room-a" if i < 12 else "room-b") for i in range(15)]
    client = make_client()
    page = await client.list_room_jobs("room-b", state="PROCESSING")
    assert [job.job_id for job in page.smart_live_jobs] == ["job-0013"]
    assert api.state.seen[-1].path == f"/v1/{PROJECT_ID}/smart-live-rooms/room-b/smart-live-jobs"
    room_jobs = [job async for job in client.iter_room_jobs("room-a", limit=5)]
    assert len(room_jobs) == 12
    job = await client.get_job("room-a", "job-0003")
    assert job.job_id == "job-0003"
    assert job.live_event_callback_config is not None
    with pytest.raises(NotFound) as caught:
        await client.get_job("room-a", "no-such-job")
    assert caught.value.status == 404
    assert caught.value.error_code == "MSS.00000005"
    assert caught.value.request_id == "req-fake-0001"


async def test_room_list_refuses_room_name(make_client: ClientFactory) -> None:
    with pytest.raises(InvalidQueryError) as caught:
        await make_client().list_room_jobs("room-a", ListJobsQuery(room_name="x"))
    assert caught.value.params == ("room_name",)
    with pytest.raises(InvalidQueryError):
        await make_client().list_room_jobs("", limit=1)


async def test_path_segments_are_escaped(api: RunningApi, make_client: ClientFactory) -> None:
    with pytest.raises(NotFound):
        await make_client().get_job("room/../x", "job 1")
    assert api.state.unknown_paths == [
        f"/v1/{PROJECT_ID}/smart-live-rooms/room%2F..%2Fx/smart-live-jobs/job%201"
    ]


async def test_app_user_id_header(
    api: RunningApi, make_client: ClientFactory, make_settings: SettingsFactory
) -> None:
    await make_client(make_settings(app_user_id="shop-42")).list_jobs()
    assert api.state.seen[-1].headers["x-app-userid"] == "shop-42"
    await make_client().list_jobs()
    assert "x-app-userid" not in api.state.seen[-1].headers
    with pytest.raises(ConfigError, match="app_user_id"):
        MetaStudioClient(make_settings(app_user_id="店铺42"))

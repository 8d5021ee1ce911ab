"""The client against the fake MetaStudio on loopback, signed with AK/SK."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr

from receiver.config import ConfigError
from receiver.metastudio import (
    AuthError,
    BadRequest,
    InvalidQueryError,
    InvalidResponse,
    ListJobsQuery,
    MetaStudioClient,
    MetaStudioError,
    NotFound,
    RateLimited,
    RateLimiter,
    ServerError,
    Timeout,
    TransportError,
)

from .conftest import ClientFactory, SettingsFactory, SleepRecorder
from .fake_api import AK, PROJECT_ID, SK, Fault, RunningApi, free_port, make_job

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


async def test_429_backs_off_then_succeeds(
    api: RunningApi, make_client: ClientFactory, backoff_sleep: SleepRecorder
) -> None:
    api.state.faults.extend([Fault(429, THROTTLED), Fault(429, THROTTLED)])
    client = make_client(backoff_base=0.5, jitter=lambda: 1.0)
    page = await client.list_jobs()
    assert page.count == 0
    assert len(api.state.seen) == 3
    assert backoff_sleep.delays == [0.5, 1.0]
    assert client.counters.retries == {"rate_limited": 2}
    assert client.counters.attempts == 3
    assert client.counters.calls == 1
    assert not client.counters.errors


async def test_backoff_is_exponential_full_jitter_and_capped(
    api: RunningApi,
    make_client: ClientFactory,
    make_settings: SettingsFactory,
    backoff_sleep: SleepRecorder,
) -> None:
    api.state.faults.extend([Fault(503, {"error_code": "MSS.00000004"})] * 5)
    draws = iter([0.5, 0.25, 1.0, 0.0, 0.5])
    client = make_client(
        make_settings(max_retries=5), backoff_base=1.0, backoff_cap=4.0, jitter=lambda: next(draws)
    )
    await client.list_jobs()
    assert backoff_sleep.delays == [0.5, 0.5, 4.0, 0.0, 2.0]


async def test_retries_are_bounded(
    api: RunningApi,
    make_client: ClientFactory,
    make_settings: SettingsFactory,
    backoff_sleep: SleepRecorder,
) -> None:
    api.state.faults.extend(
        [Fault(500, {"error_code": "MSS.00000004", "error_msg": "Internal Error"})] * 10
    )
    client = make_client(make_settings(max_retries=2))
    with pytest.raises(ServerError) as caught:
        await client.list_jobs()
    assert len(api.state.seen) == 3
    assert len(backoff_sleep.delays) == 2
    assert caught.value.status == 500
    assert caught.value.error_code == "MSS.00000004"
    assert caught.value.error_msg == "Internal Error"
    assert client.counters.errors == {"server": 1}
    assert client.counters.retries == {"server": 2}


async def test_429_exhausted_raises_rate_limited(
    api: RunningApi, make_client: ClientFactory, make_settings: SettingsFactory
) -> None:
    api.state.faults.extend([Fault(429, THROTTLED)] * 5)
    with pytest.raises(RateLimited) as caught:
        await make_client(make_settings(max_retries=0)).list_jobs()
    assert caught.value.error_code == "APIGW.0308"
    assert len(api.state.seen) == 1


@pytest.mark.parametrize(
    ("status", "body", "error", "code", "message"),
    [
        (
            400,
            {"error_code": "MSS.00000003", "error_msg": "Invalid parameter"},
            BadRequest,
            "MSS.00000003",
            "Invalid parameter",
        ),
        (
            403,
            {"error_code": "APIGW.0302", "error_message": "blacklisted"},
            AuthError,
            "APIGW.0302",
            "blacklisted",
        ),
        (
            404,
            {"error_code": "MSS.000000051", "error_msg": "gone"},
            NotFound,
            "MSS.000000051",
            "gone",
        ),
        (409, {}, BadRequest, "", ""),
    ],
)
async def test_errors_are_typed_and_not_retried(
    api: RunningApi,
    make_client: ClientFactory,
    status: int,
    body: dict[str, str],
    error: type[MetaStudioError],
    code: str,
    message: str,
) -> None:
    api.state.faults.append(Fault(status, body))
    client = make_client()
    with pytest.raises(error) as caught:
        await client.list_jobs()
    assert len(api.state.seen) == 1
    assert (caught.value.status, caught.value.error_code, caught.value.error_msg) == (
        status,
        code,
        message,
    )


async def test_non_json_error_bodies_are_not_echoed(
    api: RunningApi, make_client: ClientFactory
) -> None:
    page = b"<html>bad gateway " + SK.encode() + b"</html>"
    api.state.faults.extend([Fault(502, raw=page)] * 5)
    with pytest.raises(ServerError) as caught:
        await make_client().list_jobs()
    assert caught.value.error_msg == "(non-JSON error body)"
    assert SK not in str(caught.value)


async def test_a_malformed_success_is_an_invalid_response(
    api: RunningApi, make_client: ClientFactory
) -> None:
    api.state.faults.append(Fault(200, raw=b'{"count": "many"}'))
    with pytest.raises(InvalidResponse):
        await make_client().list_jobs()


async def test_wrong_secret_key_is_an_auth_error_without_retry(
    api: RunningApi, make_client: ClientFactory, make_settings: SettingsFactory
) -> None:
    client = make_client(make_settings(sk=SecretStr("not-the-right-sk")))
    with pytest.raises(AuthError) as caught:
        await client.list_jobs()
    assert caught.value.status == 401
    assert caught.value.error_msg == "verify aksk signature fail"
    assert len(api.state.seen) == 1
    assert client.counters.errors == {"auth": 1}


async def test_timeouts_are_retried_then_raised(
    api: RunningApi, make_client: ClientFactory, make_settings: SettingsFactory
) -> None:
    api.state.faults.extend([Fault(delay=1.0), Fault(delay=1.0)])
    client = make_client(make_settings(timeout_seconds=0.1, max_retries=1))
    with pytest.raises(Timeout) as caught:
        await client.list_jobs()
    assert caught.value.status is None
    assert caught.value.__cause__ is None
    assert client.counters.retries == {"timeout": 1}
    assert client.counters.errors == {"timeout": 1}


async def test_a_slow_answer_then_a_fast_one_succeeds(
    api: RunningApi, make_client: ClientFactory, make_settings: SettingsFactory
) -> None:
    api.state.faults.append(Fault(delay=1.0))
    client = make_client(make_settings(timeout_seconds=0.2, max_retries=2))
    assert (await client.list_jobs()).count == 0
    assert client.counters.retries == {"timeout": 1}


async def test_connection_refused_is_a_transport_error(
    make_client: ClientFactory, make_settings: SettingsFactory, backoff_sleep: SleepRecorder
) -> None:
    port = free_port()
    client = make_client(make_settings(endpoint=f"http://127.0.0.1:{port}", max_retries=2))
    with pytest.raises(TransportError) as caught:
        await client.list_jobs()
    assert type(caught.value) is TransportError
    assert len(backoff_sleep.delays) == 2
    assert client.counters.attempts == 3


async def test_every_attempt_waits_for_the_shared_limiter(
    api: RunningApi, make_client: ClientFactory
) -> None:
    api.state.jobs = [make_job(i) for i in range(30)]
    api.state.faults.append(Fault(429, THROTTLED))
    limiter = RateLimiter(10_000)
    client = make_client(limiter=limiter)
    jobs = [job async for job in client.iter_jobs(limit=10)]
    await client.get_job("room-1", "job-0001")
    assert len(jobs) == 30
    assert limiter.acquired == client.counters.attempts == len(api.state.seen) == 5


async def test_secrets_never_show_in_errors_reprs_or_logs(
    api: RunningApi,
    make_client: ClientFactory,
    make_settings: SettingsFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(make_settings(max_retries=1))
    api.state.faults.extend([Fault(500, {"error_msg": "x"})] * 2)
    with pytest.raises(ServerError) as server_error:
        await client.list_jobs()
    bad = make_client(make_settings(sk=SecretStr("another-secret-sk")))
    with pytest.raises(AuthError) as auth_error:
        await bad.list_jobs()
    refused = make_client(make_settings(endpoint=f"http://127.0.0.1:{free_port()}", max_retries=0))
    with pytest.raises(TransportError) as transport_error:
        await refused.list_jobs()
    texts = [
        repr(client),
        repr(client.auth),
        repr(bad.auth),
        repr(client.settings),
        caplog.text,
    ]
    for caught in (server_error, auth_error, transport_error):
        texts += [str(caught.value), repr(caught.value)]
        assert caught.value.__cause__ is None
    joined = "\n".join(texts)
    for secret in (SK, "another-secret-sk"):
        assert secret not in joined
    assert "Signature=" not in joined
    assert AK not in joined
    assert "GET" in caplog.text

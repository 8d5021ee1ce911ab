"""Client failure handling against the fake MetaStudio: retries, backoff, typed errors, secrets."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr

from receiver.metastudio import (
    AuthError,
    BadRequest,
    InvalidResponse,
    MetaStudioError,
    NotFound,
    RateLimited,
    RateLimiter,
    ServerError,
    Timeout,
    TransportError,
)

from .conftest import ClientFactory, SettingsFactory, SleepRecorder
from .fake_api import AK, SK, Fault, RunningApi, free_port, make_job

THROTTLED = {"error_code": "APIGW.0308", "error_msg": "The throttling threshold has been reached"}


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

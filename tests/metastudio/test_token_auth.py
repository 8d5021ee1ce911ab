"""IAM token auth: one shared fetch, cached, renewed before expiry, one retry on 401."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from receiver.metastudio import AuthError, TokenAuth, iam_tokens_url

from .conftest import ClientFactory, SettingsFactory
from .fake_api import IAM_DOMAIN, IAM_PASSWORD, IAM_USER, PROJECT_ID, Fault, RunningApi, make_job

EXPIRES = datetime(2030, 1, 1, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def iam_http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as http:
        yield http


def _token_auth(
    settings_factory: SettingsFactory, http: httpx.AsyncClient, clock: FakeClock
) -> TokenAuth:
    settings = settings_factory(auth="token")
    return TokenAuth(
        http,
        iam_tokens_url(settings),
        IAM_USER,
        SecretStr(IAM_PASSWORD),
        IAM_DOMAIN,
        PROJECT_ID,
        margin_seconds=300,
        clock=clock,
    )


async def test_token_is_fetched_once_and_sent(
    api: RunningApi, make_client: ClientFactory, make_settings: SettingsFactory
) -> None:
    api.state.jobs = [make_job(1)]
    client = make_client(make_settings(auth="token"))
    await client.list_jobs()
    await client.get_job("room-1", "job-0001")
    assert api.state.token_fetches == 1
    for seen in api.state.seen:
        assert seen.headers["x-auth-token"] == "token-secret-001"
        assert "authorization" not in seen.headers
    assert api.state.iam_bodies == [
        {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": IAM_USER,
                            "password": IAM_PASSWORD,
                            "domain": {"name": IAM_DOMAIN},
                        }
                    },
                },
                "scope": {"project": {"id": PROJECT_ID}},
            }
        }
    ]


async def test_concurrent_callers_share_one_fetch(
    api: RunningApi, make_client: ClientFactory, make_settings: SettingsFactory
) -> None:
    api.state.iam_delay = 0.2
    client = make_client(make_settings(auth="token"))
    pages = await asyncio.gather(*(client.list_jobs() for _ in range(10)))
    assert len(pages) == 10
    assert api.state.token_fetches == 1


async def test_token_is_renewed_ahead_of_expiry(
    api: RunningApi,
    make_client: ClientFactory,
    make_settings: SettingsFactory,
    iam_http: httpx.AsyncClient,
) -> None:
    api.state.token_expires_at = EXPIRES.isoformat().replace("+00:00", ".000000Z")
    clock = FakeClock(EXPIRES.timestamp() - 3600)
    auth = _token_auth(make_settings, iam_http, clock)
    client = make_client(auth=auth)
    await client.list_jobs()
    assert auth.expires_at == EXPIRES.timestamp()
    clock.now = EXPIRES.timestamp() - 301
    await client.list_jobs()
    assert api.state.token_fetches == 1
    clock.now = EXPIRES.timestamp() - 299
    await client.list_jobs()
    assert api.state.token_fetches == 2
    assert [s.headers["x-auth-token"] for s in api.state.seen] == [
        "token-secret-001",
        "token-secret-001",
        "token-secret-002",
    ]


async def test_without_expires_at_a_token_lives_24_hours(
    api: RunningApi, make_settings: SettingsFactory, iam_http: httpx.AsyncClient
) -> None:
    clock = FakeClock(1_700_000_000.0)
    auth = _token_auth(make_settings, iam_http, clock)
    assert await auth.token() == "token-secret-001"
    assert auth.expires_at == clock.now + 24 * 3600


async def test_a_short_lived_token_is_renewed_half_way(
    api: RunningApi, make_settings: SettingsFactory, iam_http: httpx.AsyncClient
) -> None:
    api.state.token_expires_at = "2030-01-01T00:00:00Z"
    clock = FakeClock(EXPIRES.timestamp() - 120)
    auth = _token_auth(make_settings, iam_http, clock)
    await auth.token()
    clock.now += 59
    await auth.token()
    assert api.state.token_fetches == 1
    clock.now += 2
    await auth.token()
    assert api.state.token_fetches == 2


async def test_401_renews_once_and_retries(
    api: RunningApi, make_client: ClientFactory, make_settings: SettingsFactory
) -> None:
    client = make_client(make_settings(auth="token"))
    await client.list_jobs()
    api.state.tokens.clear()  # the token was revoked server side
    await client.list_jobs()
    assert api.state.token_fetches == 2
    assert client.counters.reauthentications == 1
    assert [s.headers["x-auth-token"] for s in api.state.seen] == [
        "token-secret-001",
        "token-secret-001",
        "token-secret-002",
    ]


async def test_a_second_401_is_raised(
    api: RunningApi, make_client: ClientFactory, make_settings: SettingsFactory
) -> None:
    denied = {"error_code": "APIGW.0307", "error_msg": "The token must be updated"}
    api.state.faults.extend([Fault(401, denied)] * 3)
    client = make_client(make_settings(auth="token"))
    with pytest.raises(AuthError) as caught:
        await client.list_jobs()
    assert caught.value.error_code == "APIGW.0307"
    assert len(api.state.seen) == 2
    assert api.state.token_fetches == 2
    assert client.counters.errors == {"auth": 1}


async def test_concurrent_401s_share_one_renewal(
    api: RunningApi, make_client: ClientFactory, make_settings: SettingsFactory
) -> None:
    client = make_client(make_settings(auth="token"))
    await client.list_jobs()
    api.state.tokens.clear()
    api.state.iam_delay = 0.1
    await asyncio.gather(*(client.list_jobs() for _ in range(5)))
    assert api.state.token_fetches == 2


async def test_wrong_password_is_an_auth_error_and_no_api_call(
    api: RunningApi,
    make_client: ClientFactory,
    make_settings: SettingsFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-password-secret"
    client = make_client(make_settings(auth="token", iam_password=SecretStr(wrong)))
    with pytest.raises(AuthError) as caught:
        await client.list_jobs()
    assert caught.value.status == 401
    assert caught.value.error_msg == "The username or password is wrong."
    assert api.state.seen == []
    for text in (str(caught.value), repr(caught.value), repr(client.auth), caplog.text):
        assert wrong not in text


async def test_the_token_never_shows(
    api: RunningApi,
    make_client: ClientFactory,
    make_settings: SettingsFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(make_settings(auth="token", max_retries=0))
    await client.list_jobs()
    api.state.faults.append(Fault(500, {"error_msg": "boom"}))
    with pytest.raises(Exception) as caught:  # noqa: PT011 - the type is asserted below
        await client.list_jobs()
    assert caught.value.__cause__ is None
    for text in (
        str(caught.value),
        repr(caught.value),
        repr(client),
        repr(client.auth),
        caplog.text,
    ):
        assert "token-secret" not in text
        assert IAM_PASSWORD not in text


def test_password_file_and_missing_credentials(
    tmp_path: Path, make_settings: SettingsFactory
) -> None:
    from receiver.metastudio import MetaStudioClient

    secret = tmp_path / "iam-password"
    secret.write_text(IAM_PASSWORD + "\n", encoding="utf-8")
    client = MetaStudioClient(
        make_settings(auth="token", iam_password=None, iam_password_file=secret)
    )
    assert isinstance(client.auth, TokenAuth)
    with pytest.raises(AuthError, match="iam_password"):
        MetaStudioClient(make_settings(auth="token", iam_password=None))
    with pytest.raises(AuthError, match="sk"):
        MetaStudioClient(make_settings(sk=None))
    with pytest.raises(AuthError, match="project_id"):
        MetaStudioClient(make_settings(project_id=""))
    assert iam_tokens_url(make_settings(iam_endpoint="")) == (
        "https://iam.cn-north-4.myhuaweicloud.com/v3/auth/tokens"
    )

"""Fixtures: the fake MetaStudio/IAM server on loopback and clients pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from receiver.config import MetaStudioSettings
from receiver.metastudio import MetaStudioClient

from .fake_api import (
    AK,
    IAM_DOMAIN,
    IAM_PASSWORD,
    IAM_USER,
    PROJECT_ID,
    SK,
    ApiState,
    RunningApi,
    serve,
)


@pytest.fixture(scope="session")
def api_server() -> Iterator[RunningApi]:
    yield from serve(ApiState())


@pytest.fixture
def api(api_server: RunningApi) -> RunningApi:
    api_server.state.reset()
    return api_server


SettingsFactory = Callable[..., MetaStudioSettings]


@pytest.fixture
def make_settings(api: RunningApi) -> SettingsFactory:
    def build(**overrides: Any) -> MetaStudioSettings:
        values: dict[str, Any] = {
            "endpoint": api.url,
            "project_id": PROJECT_ID,
            "auth": "aksk",
            "ak": SecretStr(AK),
            "sk": SecretStr(SK),
            "iam_endpoint": api.url,
            "iam_user": IAM_USER,
            "iam_password": SecretStr(IAM_PASSWORD),
            "iam_domain": IAM_DOMAIN,
            "rate_limit_per_second": 10_000.0,
            "timeout_seconds": 2.0,
            "max_retries": 3,
        }
        values.update(overrides)
        return MetaStudioSettings(**values)

    return build


class SleepRecorder:
    """Stands in for asyncio.sleep in backoff: records each delay, returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def backoff_sleep() -> SleepRecorder:
    return SleepRecorder()


ClientFactory = Callable[..., MetaStudioClient]


@pytest.fixture
async def make_client(
    make_settings: SettingsFactory, backoff_sleep: SleepRecorder
) -> AsyncIterator[ClientFactory]:
    clients: list[MetaStudioClient] = []

    def build(settings: MetaStudioSettings | None = None, **kwargs: Any) -> MetaStudioClient:
        kwargs.setdefault("sleep", backoff_sleep)
        client = MetaStudioClient(settings or make_settings(), **kwargs)
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.aclose()

"""Fixtures for the broker sinks: shared local brokers, a Tansu broker, TCP proxies."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from tests.brokers import (
    NATS,
    NATS_URL,
    RABBITMQ,
    RABBITMQ_URL,
    REDIS,
    REDIS_URL,
    Tansu,
    TcpProxy,
    require_service,
)

ProxyFactory = Callable[[tuple[str, int]], Awaitable[TcpProxy]]


@pytest.fixture
def redis_url() -> str:
    require_service("Redis", REDIS)
    return REDIS_URL


@pytest.fixture
def rabbitmq_url() -> str:
    require_service("RabbitMQ", RABBITMQ)
    return RABBITMQ_URL


@pytest.fixture
def nats_url() -> str:
    require_service("NATS", NATS)
    return NATS_URL


@pytest.fixture(scope="session")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tansu]:
    """One memory-backed Tansu broker for the whole run, on a free port."""
    broker = Tansu(tmp_path_factory.mktemp("tansu")).start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
async def make_proxy() -> AsyncIterator[ProxyFactory]:
    """Start TCP proxies in front of a broker; all are closed after the test."""
    proxies: list[TcpProxy] = []

    async def make(target: tuple[str, int]) -> TcpProxy:
        proxy = await TcpProxy(target).start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        await proxy.close()

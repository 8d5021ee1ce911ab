"""A dead-letter backend per test: sqlite (a file), redis and nats (real servers, unique
names, deleted afterwards). ``backend`` is parametrized over all three."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from receiver.config import Settings
from receiver.deadletters import BaseDeadLetterStore
from receiver.deadletters.factory import build_dead_letters
from tests.brokers import NATS, NATS_URL, REDIS_URL, redis_prefix, require_service, unique


@dataclass
class Backend:
    """Where one test's letters live, and how to open a store there."""

    name: str
    settings: Settings
    config: Path

    def open(self) -> BaseDeadLetterStore:
        """A fresh store on this backend (the caller closes it)."""
        return build_dead_letters(self.settings)


def write_settings(directory: Path, backend: str, url: str, stream: str) -> Backend:
    """A config file and its settings: dead letters in ``backend``, a jsonl sink ``out``;
    the local files under ``directory/data``."""
    intake = "" if backend == "sqlite" else f'url = "{url}"\nstream = "{stream}"\n'
    data = directory / "data"
    config = directory / "receiver.toml"
    config.write_text(
        f"""
[intake]
backend = "{backend}"
path = "{data / "intake.db"}"
{intake}
[dead_letters]
path = "{data / "dead.db"}"

[[sinks]]
name = "out"
type = "jsonl"
path = "{data / "out.jsonl"}"

[[routes]]
sinks = ["out"]
"""
    )
    from receiver.config import load_settings

    return Backend(backend, load_settings(str(config)), config)


@pytest.fixture(params=["sqlite", "redis", "nats"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async for item in open_backend(request.param, tmp_path):
        yield item


@pytest.fixture(params=["redis", "nats"])
async def shared(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async for item in open_backend(request.param, tmp_path):
        yield item


async def open_backend(name: str, tmp_path: Path) -> AsyncIterator[Backend]:
    """The backend ``name`` for one test; its letters are deleted afterwards."""
    if name == "sqlite":
        yield write_settings(tmp_path, name, "", "")
    elif name == "redis":
        async for prefix in redis_prefix("TEST_DLQ"):
            yield write_settings(tmp_path, name, REDIS_URL, prefix)
    else:
        require_service("NATS", NATS)
        stream = unique("TEST_DLQ_")
        yield write_settings(tmp_path, name, NATS_URL, stream)
        import nats

        client = await nats.connect(NATS_URL)
        with contextlib.suppress(Exception):
            await client.jetstream().delete_stream(f"{stream}_DLQ")
        await client.close()


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[BaseDeadLetterStore]:
    letters = backend.open()
    yield letters
    await letters.close()

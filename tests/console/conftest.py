"""A started receiver service with its console app, for in-process API tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from receiver.app import ReceiverApp
from receiver.config import load_settings
from receiver.console.app import ConsoleApp
from tests.helpers import write_config

VIEWER = "viewer-token-0123456789abcdef"
OPERATOR = "operator-token-0123456789abcdef"


@dataclass
class Console:
    receiver: ReceiverApp
    app: ConsoleApp
    http: httpx.AsyncClient  # the console, no credentials
    public: httpx.AsyncClient  # the callback port's application
    directory: Path

    def as_role(self, token: str) -> dict[str, str]:
        return {"authorization": f"Bearer {token}"}


def tokens_file(directory: Path) -> Path:
    path = directory / "tokens"
    hashed = __import__("hashlib").sha256(OPERATOR.encode()).hexdigest()
    path.write_text(f"# console tokens\nviewer {VIEWER}\noperator sha256:{hashed}\n")
    return path


async def start_console(directory: Path, admin: str) -> AsyncIterator[Console]:
    config = write_config(directory, 8999, extra=f"\n[admin]\nenabled = true\n{admin}")
    receiver = ReceiverApp(load_settings(config))
    await receiver.service.start()
    app = ConsoleApp(receiver.service)
    console_transport = httpx.ASGITransport(app=app)
    public_transport = httpx.ASGITransport(app=receiver)
    try:
        async with (
            httpx.AsyncClient(transport=console_transport, base_url="http://127.0.0.1") as http,
            httpx.AsyncClient(transport=public_transport, base_url="http://127.0.0.1") as public,
        ):
            yield Console(receiver, app, http, public, directory)
    finally:
        await app.api.close()
        await receiver.service.stop()


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    """A console with a viewer and an operator token (the operator's stored hashed)."""
    async for item in start_console(tmp_path, f'tokens_file = "{tokens_file(tmp_path)}"\n'):
        yield item


@pytest.fixture
async def open_console(tmp_path: Path) -> AsyncIterator[Console]:
    """A console on loopback without tokens."""
    async for item in start_console(tmp_path, ""):
        yield item

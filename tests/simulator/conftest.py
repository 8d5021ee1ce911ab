"""Fixtures: ASGI apps served by uvicorn on loopback ports, in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn

from receiver.simulator import generate_jobs

PROJECT_ID = "70b76aa0c8f54253880af501cd2a1b3c"
AK = "SIMULATORACCESSKEY01"
SK = "simulator-secret-key-0123456789abcdef"
TOKEN = "MIIsimulated-token-value"
SEED = 7
JOB_COUNT = 40


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free 127.0.0.1 port; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


@pytest.fixture(scope="session")
def jobs() -> list[dict[str, Any]]:
    """The jobs every API test serves."""
    return generate_jobs(JOB_COUNT, SEED, PROJECT_ID)

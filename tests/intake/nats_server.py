"""A nats-server of the test's own (JetStream, file storage under a temp dir) it may restart."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.brokers import free_port, unavailable


class OwnNatsServer:
    """``nats-server -js`` on a free port; ``restart`` keeps the port and the storage."""

    def __init__(self, store: Path) -> None:
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self._store = store
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> None:
        """Start the server and wait until it accepts connections."""
        binary = shutil.which("nats-server")
        if binary is None:
            unavailable("nats-server is not installed")
        command = [binary, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self._store)]
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        stop = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > stop or self._process.poll() is not None:
                    pytest.fail("the test's own nats-server did not start")
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait for it."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def restart(self) -> None:
        """Stop and start again on the same port and storage directory."""
        self.stop()
        self.start()


def running_nats_server(store: Path) -> Iterator[OwnNatsServer]:
    """A fixture's body: a started server of our own, stopped after."""
    own = OwnNatsServer(store)
    own.start()
    try:
        yield own
    finally:
        own.stop()

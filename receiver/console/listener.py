"""The admin listener: a second uvicorn server in the receiver's process and event loop.

It binds its socket itself, so a port in use fails the start-up with a clear error. It is
started in the callback server's lifespan, inside the callback server's signal capture,
so it receives SIGTERM first; uvicorn then hands the signal on to the callback server,
which shuts down as usual.
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING

import uvicorn

from receiver.console.app import ConsoleApp
from receiver.tasks import stop_task

if TYPE_CHECKING:
    from receiver.service import ReceiverService

START_SECONDS = 10.0
GRACE_SECONDS = 2  # live tails are endless: the listener does not wait for them long


class AdminListener:
    """Serves the console on ``admin.host:admin.port`` until stopped."""

    def __init__(self, service: ReceiverService) -> None:
        self.settings = service.settings.admin
        self.app = ConsoleApp(service)
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._port = 0

    @property
    def port(self) -> int:
        """The port bound (``admin.port``, or the one chosen for port 0)."""
        return self._port

    async def start(self) -> None:
        """Bind and serve; raise OSError when the address cannot be bound."""
        settings = self.settings
        family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((settings.host, settings.port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        self._port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            access_log=False,
            log_config=None,
            server_header=False,
            timeout_graceful_shutdown=GRACE_SECONDS,
            ssl_certfile=str(settings.tls_certfile) if settings.tls_certfile else None,
            ssl_keyfile=str(settings.tls_keyfile) if settings.tls_keyfile else None,
        )
        self._server = server = uvicorn.Server(config)
        self._task = asyncio.get_running_loop().create_task(
            server.serve(sockets=[sock]), name="admin-listener"
        )
        async with asyncio.timeout(START_SECONDS):
            while not server.started:
                if self._task.done():
                    self._task.result()  # raises what stopped it
                    raise OSError("the admin listener stopped at start-up")
                await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """End the live tails and the server (bounded)."""
        await self.app.api.close()
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None and not self._task.done():
            done, _ = await asyncio.wait({self._task}, timeout=GRACE_SECONDS + 3)
            if not done:
                await stop_task(self._task)

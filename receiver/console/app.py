"""The console's ASGI application: pages and API behind authentication and strict headers."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from receiver.console.api import ConsoleApi
from receiver.console.auth import ConsoleAuth, SecurityHeaders
from receiver.console.pages import ConsolePages
from receiver.console.sessions import Sessions
from receiver.console.tokens import Tokens

if TYPE_CHECKING:
    from receiver.service import ReceiverService

log = logging.getLogger("receiver.console")


class ConsoleApp:
    """The admin listener's application; ``api.close()`` ends the live tails."""

    def __init__(self, service: ReceiverService) -> None:
        settings = service.settings.admin
        recorder = service.console
        if recorder is None:
            raise RuntimeError("the console needs admin.enabled")
        self.tokens = Tokens.load(settings.tokens_file)
        if self.tokens.open:
            log.warning("console without admin.tokens_file: every local caller is an operator")
        sessions = Sessions(settings.session_seconds)
        self.api = ConsoleApi(service, recorder)
        pages = ConsolePages(
            service, recorder, self.tokens, sessions, settings.tls_certfile is not None
        )

        async def http_error(_: Request, error: Exception) -> Response:
            assert isinstance(error, HTTPException)
            code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "error")
            return JSONResponse(
                {"error": code, "detail": str(error.detail)}, status_code=error.status_code
            )

        async def server_error(_: Request, error: Exception) -> Response:
            log.error("console error", exc_info=error)
            return JSONResponse({"error": "internal", "detail": "internal error"}, status_code=500)

        starlette = Starlette(
            routes=[*self.api.routes(), *pages.routes()],
            exception_handlers={HTTPException: http_error, Exception: server_error},
        )
        self.auth = ConsoleAuth(starlette, self.tokens, sessions)
        self._app = SecurityHeaders(self.auth)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)

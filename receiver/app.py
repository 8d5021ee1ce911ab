"""The ASGI application: the callback path on the hot path, Starlette for the rest."""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from receiver.callback import headers_size
from receiver.config import Settings
from receiver.console.listener import AdminListener
from receiver.console.tokens import TokenFileError
from receiver.contract.schemas import encode, schema_documents
from receiver.file_access import AccessError
from receiver.openapi import openapi_document
from receiver.service import ReceiverService
from receiver.tracing import Tracing

log = logging.getLogger("receiver.app")


def _operations(service: ReceiverService) -> Starlette:
    async def livez(_: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(_: Request) -> Response:
        ready, checks = service.ready()
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    document = openapi_document(service.settings.server.path)

    async def openapi(_: Request) -> Response:
        return JSONResponse(document)

    schemas = {f"{name}.schema.json": encode(doc) for name, doc in schema_documents().items()}

    async def schema_index(_: Request) -> Response:
        return JSONResponse({"schemas": [f"/schemas/{name}" for name in schemas]})

    async def schema(request: Request) -> Response:
        body = schemas.get(request.path_params["name"])
        if body is None:
            raise HTTPException(404, f"no schema {request.path_params['name']!r}")
        return Response(body, media_type="application/schema+json")

    async def http_error(_: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return JSONResponse(
            {"error": code, "detail": str(error.detail)},
            status_code=error.status_code,
            headers=error.headers,
        )

    async def server_error(_: Request, error: Exception) -> Response:
        log.error("unhandled error", exc_info=error)
        return JSONResponse({"error": "internal", "detail": "internal error"}, status_code=500)

    return Starlette(
        routes=[
            Route("/livez", livez),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Route("/openapi.json", openapi),
            Route("/schemas/", schema_index),
            Route("/schemas/{name}", schema),
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )


class ReceiverApp:
    """ASGI entry point; runs the service's start and stop through the lifespan protocol."""

    def __init__(self, settings: Settings, tracing: Tracing | None = None) -> None:
        self.service = ReceiverService(settings, tracing)
        self._callback_path = settings.server.path
        self._max_header = settings.server.max_header_bytes
        self._callback = self.service.endpoint
        self._operations = _operations(self.service)
        self.admin: AdminListener | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http" and scope["path"] == self._callback_path:
            await self._callback(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "http" and headers_size(scope["headers"]) > self._max_header:
            await JSONResponse(
                {"error": "headers_too_large", "detail": f"the limit is {self._max_header} bytes"},
                status_code=431,
            )(scope, receive, send)
        else:
            await self._operations(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self.service.settings.admin.enabled:  # its tokens are read first
                        self.admin = AdminListener(self.service)
                    await self.service.start()
                    if self.admin is not None:
                        try:
                            await self.admin.start()
                        except BaseException:
                            await self.service.stop()
                            raise
                except (AccessError, TokenFileError, OSError) as error:  # one line says why
                    log.error("start-up failed: %s", error)
                    await send({"type": "lifespan.startup.failed", "message": str(error)})
                    return
                except Exception as error:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": type(error).__name__})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    if self.admin is not None:
                        await self.admin.stop()
                finally:
                    try:
                        await self.service.stop()
                    finally:
                        await send({"type": "lifespan.shutdown.complete"})
                return

"""The callback endpoint as a pure ASGI app.

Served for the requests :mod:`receiver.protocol` hands to ASGI (a request pipelined behind
another, a percent-encoded path, a method other than POST) and under any other ASGI
server or test client; the logic is :class:`receiver.callback.CallbackHandler`'s.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from receiver.callback import Admission, Answer, CallbackHandler, headers_size

_JSON = (b"content-type", b"application/json")
_CLOSE = (b"connection", b"close")


class CallbackEndpoint:
    """ASGI app for ``server.path``."""

    def __init__(self, handler: CallbackHandler) -> None:
        self.handler = handler

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = time.perf_counter()
        handler = self.handler
        request_id = handler.request_id()
        headers = scope["headers"]
        head = handler.check_head(
            scope["method"], headers, scope["query_string"], headers_size(headers), request_id
        )
        admission = head if isinstance(head, Admission) else None
        if isinstance(head, Answer):
            answer, read_whole = head, False
        else:
            answer, read_whole = await self._answer(head, receive)
        response_headers = [
            _JSON,
            (b"content-length", str(len(answer.body)).encode()),
            (b"x-request-id", request_id.encode()),
            *answer.headers,
        ]
        if not read_whole:  # refused before its body was read: closing bounds the rest
            response_headers.append(_CLOSE)
        await send(
            {"type": "http.response.start", "status": answer.status, "headers": response_headers}
        )
        await send({"type": "http.response.body", "body": answer.body})
        client = (scope.get("client") or ("", 0))[0]
        handler.finish(
            answer, request_id, started, scope["method"], scope["path"], client, admission
        )

    async def _answer(self, admission: Admission, receive: Any) -> tuple[Answer, bool]:
        """The answer, and whether the whole body was read before it."""
        body = await self._read_body(receive)
        if isinstance(body, Answer):
            return body, False
        answered: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self.handler.accept(admission, body, answered.set_result)
        return await answered, True

    async def _read_body(self, receive: Any) -> bytes | Answer:
        handler = self.handler
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(handler.body_timeout_seconds):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return handler.disconnected
                    chunk: bytes = message.get("body", b"")
                    size += len(chunk)
                    if size > handler.max_body_bytes:
                        return handler.too_large
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            return handler.timed_out

"""The HTTP protocol: uvicorn's httptools protocol, with callbacks served without ASGI.

A callback is the hot path. For a POST to ``server.path`` on a connection with nothing
else in flight, the protocol judges the headers as soon as they are parsed, collects the
body, hands it to the :class:`~receiver.callback.CallbackHandler` and writes the answer
to the transport once the event is durable: no ASGI scope, task, receive and send
messages or header re-validation per request. Everything else (other paths and methods,
a request pipelined behind another, a percent-encoded path, upgrades) goes to the ASGI
app exactly as uvicorn serves it.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any, ClassVar

from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from receiver.callback import Admission, Answer, CallbackHandler

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_HEAD = b"content-type: application/json\r\ncontent-length: "


class _Callback:
    """One callback served natively; it stands in for uvicorn's request cycle."""

    __slots__ = (
        "admission",
        "chunks",
        "client",
        "complete",
        "keep_alive",
        "request_id",
        "response_complete",
        "size",
        "started",
        "timer",
    )

    def __init__(self, request_id: str, started: float, keep_alive: bool, client: str) -> None:
        self.request_id = request_id
        self.started = started
        self.keep_alive = keep_alive  # uvicorn's shutdown() clears it
        self.client = client
        self.admission: Admission | None = None
        self.chunks: list[bytes] = []
        self.size = 0
        self.complete = False  # the whole body has arrived
        self.response_complete = False
        self.timer: asyncio.TimerHandle | None = None


async def _no_app(scope: Any, receive: Any, send: Any) -> None:
    """Placeholder app: only the proxy middleware's trusted-host logic is used."""


class CallbackProtocol(HttpToolsProtocol):
    """Bound to a handler by :func:`callback_protocol`."""

    handler: ClassVar[CallbackHandler]
    path: ClassVar[bytes]
    handler_path: ClassVar[str]
    proxies: ClassVar[Any]  # uvicorn's trusted hosts of ``server.trusted_proxies``
    _defaults: ClassVar[tuple[object, bytes]] = (None, b"")

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._closed = False
        self._active_at = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        peer = self.client[0] if self.client else ""
        self._peer = peer
        self._peer_is_proxy = peer in self.proxies

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        request: object = self.cycle
        if type(request) is _Callback:
            self.cycle = None  # type: ignore[assignment]  # uvicorn's cycle attribute
            if not request.complete:
                self._respond(request, self.handler.disconnected)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._active_at = self.loop.time()
        super().data_received(data)
        request: object = self.cycle
        # The deadline is armed only for a body that did not arrive with its headers.
        if (
            type(request) is _Callback
            and not request.complete
            and request.timer is None
            and not request.response_complete
            and not self._closed
        ):
            request.timer = self.loop.call_later(
                self.handler.body_timeout_seconds, self._body_timed_out, request
            )

    # Parser callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.header_bytes = 0
        self.expect_100_continue = False

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        self.header_bytes += len(name) + len(value)
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        path, _, query = self.url.partition(b"?")
        cycle = self.cycle
        if (
            path != self.path
            or parser.get_method() != b"POST"
            or parser.should_upgrade()
            or (cycle is not None and not cycle.response_complete)
        ):
            self._to_asgi()
            return
        handler = self.handler
        request = _Callback(
            handler.request_id(), time.perf_counter(), parser.should_keep_alive(), self._client()
        )
        self.cycle = request  # type: ignore[assignment]
        head = handler.check_head(
            "POST", self.headers, query, self.header_bytes, request.request_id
        )
        if isinstance(head, Answer):
            self._respond(request, head)
            return
        request.admission = head
        if self.expect_100_continue:
            self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        request: object = self.cycle
        if type(request) is not _Callback:
            super().on_body(body)
            return
        if request.response_complete:
            return
        request.size += len(body)
        if request.size > self.handler.max_body_bytes:
            self._respond(request, self.handler.too_large)
            return
        request.chunks.append(body)

    def on_message_complete(self) -> None:
        request: object = self.cycle
        if type(request) is not _Callback:
            super().on_message_complete()
            return
        request.complete = True
        if request.timer is not None:
            request.timer.cancel()
            request.timer = None
        if request.response_complete:
            return
        assert request.admission is not None
        body = b"".join(request.chunks)
        request.chunks.clear()
        self.handler.accept(request.admission, body, functools.partial(self._respond, request))

    # The callback's answer
    def _to_asgi(self) -> None:
        """Serve this request the way uvicorn does (scope, task, the ASGI app)."""
        url, headers, expect = self.url, self.headers, self.expect_100_continue
        super().on_message_begin()
        self.url, self.headers, self.expect_100_continue = url, headers, expect
        self.scope["headers"] = headers
        super().on_headers_complete()

    def _client(self) -> str:
        """The client's address, taken from X-Forwarded-For behind a trusted proxy."""
        if self._peer_is_proxy:
            forwarded = [value for name, value in self.headers if name == b"x-forwarded-for"]
            if forwarded:
                hops = b", ".join(forwarded).decode("latin-1")
                host: str = self.proxies.get_trusted_client_address(hops)[0]
                return host or self._peer
        return self._peer

    def _body_timed_out(self, request: _Callback) -> None:
        request.timer = None
        self._respond(request, self.handler.timed_out)

    def _respond(self, request: _Callback, answer: Answer) -> None:
        if request.response_complete:
            return
        request.response_complete = True
        if request.timer is not None:
            request.timer.cancel()
            request.timer = None
        if not self._closed:
            keep_alive = request.keep_alive
            extra = (
                b"".join(name + b": " + value + b"\r\n" for name, value in answer.headers)
                if answer.headers
                else b""
            )
            self.transport.write(
                b"".join(
                    (
                        STATUS_LINE[answer.status],
                        self._default_headers(),
                        _HEAD,
                        str(len(answer.body)).encode(),
                        b"\r\nx-request-id: ",
                        request.request_id.encode(),
                        b"\r\n",
                        extra,
                        b"" if keep_alive else b"connection: close\r\n",
                        b"\r\n",
                        answer.body,
                    )
                )
            )
            if not keep_alive:
                self.transport.close()
        self.handler.finish(
            answer,
            request.request_id,
            request.started,
            "POST",
            self.handler_path,
            request.client,
            request.admission,
        )
        if self._closed:
            return
        if self.pipeline:  # a request read meanwhile waits for this one: uvicorn starts it
            self.on_response_complete()
            return
        self.server_state.total_requests += 1
        self.flow.resume_reading()
        self._active_at = self.loop.time()
        if self._idle_timer is None:
            self._idle_timer = self.loop.call_at(
                self._active_at + self.timeout_keep_alive, self._idle_check
            )

    def _idle_check(self) -> None:
        """Close the connection once it has been idle for the keep-alive timeout.

        One timer a connection, moved on only when it fires, instead of uvicorn's timer
        armed and cancelled around every request.
        """
        self._idle_timer = None
        if self._closed or self.transport.is_closing():
            return
        cycle = self.cycle
        deadline = self._active_at + self.timeout_keep_alive
        now = self.loop.time()
        if (cycle is None or cycle.response_complete) and now >= deadline:
            self.transport.close()
            return
        self._idle_timer = self.loop.call_at(max(deadline, now + 0.1), self._idle_check)

    def _default_headers(self) -> bytes:
        """uvicorn's default headers (``date``), encoded once per change."""
        defaults = self.server_state.default_headers
        cached, encoded = type(self)._defaults
        if cached is not defaults:
            encoded = b"".join(name + b": " + value + b"\r\n" for name, value in defaults)
            type(self)._defaults = (defaults, encoded)
        return encoded


def callback_protocol(
    handler: CallbackHandler, path: str, trusted_proxies: list[str]
) -> type[CallbackProtocol]:
    """A protocol class for uvicorn (``Config(http=...)``) serving ``path`` with ``handler``."""
    proxies = ProxyHeadersMiddleware(_no_app, trusted_proxies).trusted_hosts
    namespace = {
        "handler": handler,
        "path": path.encode(),
        "handler_path": path,
        "proxies": proxies,
    }
    return type("CallbackProtocol", (CallbackProtocol,), namespace)

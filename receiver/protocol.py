"""The HTTP protocol: uvicorn's httptools protocol, with callbacks served without ASGI.

A callback is the hot path. For a POST to ``server.path`` on a connection with nothing
else in flight, the protocol judges the headers as soon as they are parsed, collects the
body, hands it to the :class:`~receiver.callback.CallbackHandler` and writes the answer
to the transport once the event is durable: no ASGI scope, task, receive and send
messages or header re-validation per request. Everything else (other paths and methods,
a request pipelined behind another, a percent-encoded path, upgrades) goes to the ASGI
app exactly as uvicorn serves it.

Before any of that, every connection is held to limits of its own (uvicorn's httptools
protocol has none): the request target is counted as it arrives (414 over
``max_url_bytes``), the header names and values (431 over ``max_header_bytes``), and the
raw bytes of a head still unfinished (431 past ``max_url_bytes + 2 * max_header_bytes``,
which bounds a single huge header that httptools buffers whole); a head must be complete
within ``header_timeout_seconds`` of the connection or of its first byte (408, or a plain
close if nothing arrived). A refusal sent before its request's body is complete closes the
connection, so nothing more is read.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any, ClassVar

from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from receiver.callback import Admission, Answer, CallbackHandler, refusal
from receiver.wire import DefaultHeaders, answer_bytes

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_DEFAULTS = DefaultHeaders()
_URL_TOO_LONG = refusal(414, "url_too_long", "the request target is too long")
_HEAD_TIMEOUT = refusal(408, "header_timeout", "the headers did not arrive in time")
_TOO_MANY = refusal(503, "concurrency_limit", "too many connections")


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
    max_url_bytes: ClassVar[int]
    max_header_bytes: ClassVar[int]
    max_head_bytes: ClassVar[int]  # raw bytes of an unfinished head
    header_timeout_seconds: ClassVar[float]
    headers_too_large: ClassVar[Answer]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._closed = False  # lost, or closed by us: nothing more is read or written
        self._active_at = 0.0  # 0.0 until the first byte
        self._idle_timer: asyncio.TimerHandle | None = None
        self.url = b""
        self.headers = []
        # The head in progress: whether it is unfinished, since when, and the bytes of the
        # reads that fell wholly inside it (a read that starts or ends a head sets the edge).
        self._head_open = True
        self._head_started = self.loop.time()
        self._head_received = 0
        self._head_edge = False
        self._head_timer: asyncio.TimerHandle | None = self.loop.call_at(
            self._head_started + self.header_timeout_seconds, self._head_check
        )
        peer = self.client[0] if self.client else ""
        self._peer = peer
        self._peer_is_proxy = peer in self.proxies

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        request: object = self.cycle
        if type(request) is _Callback:
            self.cycle = None  # type: ignore[assignment]  # uvicorn's cycle attribute
            if not request.complete:
                self._respond(request, self.handler.disconnected)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        self._active_at = self.loop.time()
        self._head_edge = False
        super().data_received(data)
        if self._head_open and not self._head_edge and not self._closed:
            self._head_received += len(data)
            if self._head_received > self.max_head_bytes:
                self._refuse_head(self.headers_too_large)
                return
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
        if not self._head_open:  # the first head's deadline runs from the connection
            self._head_started = self._active_at
        self._head_open = self._head_edge = True
        self._head_received = 0
        if self._head_timer is None:
            self._head_timer = self.loop.call_at(
                self._head_started + self.header_timeout_seconds, self._head_check
            )

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.max_url_bytes and not self._closed:
            self._refuse_head(_URL_TOO_LONG)

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        self.header_bytes += len(name) + len(value)
        if self.header_bytes > self.max_header_bytes and not self._closed:
            self._refuse_head(self.headers_too_large)
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self._closed:  # refused: the rest of this read is parsed and dropped
            return
        self._head_open = False
        self._head_edge = True
        parser = self.parser
        version = parser.get_http_version()
        if self.expect_100_continue and version != "1.1":
            self.expect_100_continue = False  # no interim answers for HTTP/1.0
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
        keep_alive = version != "1.0" and parser.should_keep_alive()
        request = _Callback(handler.request_id(), time.perf_counter(), keep_alive, self._client())
        self.cycle = request  # type: ignore[assignment]
        limit = self.limit_concurrency
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            self._respond(request, _TOO_MANY)
            return
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
        if self._closed:
            return
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
        if self._closed:
            return
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
            # Refused before its body was read: closing is the only bound on the rest.
            keep_alive = request.keep_alive and request.complete
            self._write(answer, request.request_id, keep_alive)
            if not keep_alive:
                self._closed = True
                self.transport.close()
                self.server_state.total_requests += 1
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

    def _write(self, answer: Answer, request_id: str, keep_alive: bool) -> None:
        defaults = _DEFAULTS.encoded(self.server_state.default_headers)
        self.transport.write(answer_bytes(answer, defaults, request_id, keep_alive))

    def _refuse_head(self, answer: Answer) -> None:
        """Answer a head over a limit or past its deadline, and close the connection.

        An answer still owed to an earlier request on this connection is dropped with it:
        the refusal cannot overtake it, and waiting for it would keep reading.
        """
        self._closed = True
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if self.transport.is_closing():  # uvicorn already refused it (a parser error)
            return
        cycle = self.cycle
        owed = bool(self.pipeline) or (cycle is not None and not cycle.response_complete)
        request_id = self.handler.request_id()
        if not owed:
            self._write(answer, request_id, False)
        self.transport.close()
        self.handler.finish(answer, request_id, time.perf_counter(), "", "", self._peer)

    def _head_check(self) -> None:
        """Refuse a head unfinished after ``header_timeout_seconds``.

        One timer a connection, re-armed only while a head is open (the next head arms it
        again), so a request costs no timer of its own.
        """
        self._head_timer = None
        if self._closed or not self._head_open:
            return
        deadline = self._head_started + self.header_timeout_seconds
        if self.loop.time() < deadline:
            self._head_timer = self.loop.call_at(deadline, self._head_check)
        elif self._active_at:
            self._refuse_head(_HEAD_TIMEOUT)
        else:  # not a byte since the connection was made: there is nothing to answer
            self._closed = True
            self.transport.close()

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


def callback_protocol(
    handler: CallbackHandler,
    path: str,
    trusted_proxies: list[str],
    *,
    max_url_bytes: int,
    header_timeout_seconds: float,
) -> type[CallbackProtocol]:
    """A protocol class for uvicorn (``Config(http=...)``) serving ``path`` with ``handler``.

    The header limit is the handler's ``max_header_bytes``.
    """
    proxies = ProxyHeadersMiddleware(_no_app, trusted_proxies).trusted_hosts
    namespace = {
        "handler": handler,
        "path": path.encode(),
        "handler_path": path,
        "proxies": proxies,
        "max_url_bytes": max_url_bytes,
        "max_header_bytes": handler.max_header_bytes,
        "max_head_bytes": max_url_bytes + 2 * handler.max_header_bytes,
        "header_timeout_seconds": header_timeout_seconds,
        "headers_too_large": handler.headers_too_large,
    }
    return type("CallbackProtocol", (CallbackProtocol,), namespace)

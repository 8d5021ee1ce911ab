"""The callback endpoint, as a pure ASGI app: verify, parse, store durably, then answer.

Pure ASGI because it is the hot path: no request object, one pass over the headers, the
body read with its limit and deadline, one JSON encoding of the envelope.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from typing import Any

import orjson

from receiver.accesslog import AccessLog
from receiver.authentication import Authenticator
from receiver.envelope import build_envelope, event_id
from receiver.events import BadEvent, parse_callback
from receiver.intake import Intake, IntakeFull, IntakeUnavailable
from receiver.metrics import Metrics
from receiver.tracing import Tracing

Scope = dict[str, Any]
Message = dict[str, Any]

log = logging.getLogger("receiver.callback")

_JSON = (b"content-type", b"application/json")
_RETRY_AFTER_SECONDS = b"5"
# Request ids: unique per process start, then a counter (no system call per request).
_REQUEST_PREFIX = os.urandom(4).hex() + "-"


class _Reject(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


def headers_size(scope: Scope) -> int:
    """Bytes of the request's header names and values (uvicorn's httptools sets no limit)."""
    return sum(map(len, itertools.chain.from_iterable(scope["headers"])))


class CallbackEndpoint:
    """Serves ``server.path``; ``authenticator`` may be swapped at run time (key rotation)."""

    def __init__(
        self,
        authenticator: Authenticator,
        intake: Intake,
        metrics: Metrics,
        *,
        source: str,
        max_body_bytes: int,
        max_header_bytes: int = 16 * 1024,
        body_timeout_seconds: float,
        replay_seconds: float,
        access_log: AccessLog | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.authenticator = authenticator
        self._intake = intake
        self._metrics = metrics
        self._source = source
        self._max_body = max_body_bytes
        self._max_header = max_header_bytes
        self._body_timeout = body_timeout_seconds
        self._replay_seconds = replay_seconds
        self._access_log = access_log
        self._tracing = tracing or Tracing()
        self._counters: dict[tuple[str, str], Any] = {}
        self._rules: dict[tuple[str, str], Any] = {}
        self._observe = metrics.request_seconds.observe
        self._request_numbers = itertools.count()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        started = time.perf_counter()
        request_id = f"{_REQUEST_PREFIX}{next(self._request_numbers):x}"
        status, body, extra, event = 200, b"", [], ""
        try:
            if self._tracing.enabled:
                with self._tracing.span("metastudio.callback", {"request_id": request_id}) as span:
                    event, stored = await self._accept(scope, receive, request_id)
                    span.set_attribute("event_id", event)
            else:
                event, stored = await self._accept(scope, receive, request_id)
            outcome = "accepted" if stored else "duplicate"
            body = orjson.dumps({"status": outcome, "id": event})
            self._count(outcome, "ok")
        except _Reject as reject:
            status = reject.status
            body = orjson.dumps({"error": reject.code, "detail": reject.detail})
            if status == 503:
                extra = [(b"retry-after", _RETRY_AFTER_SECONDS)]
            elif status == 405:
                extra = [(b"allow", b"POST")]
            self._count("rejected", reject.code)
        headers = [
            _JSON,
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers + extra})
        await send({"type": "http.response.body", "body": body})
        elapsed = time.perf_counter() - started
        self._observe(elapsed)
        if self._access_log is not None:
            self._access_log.line(
                {
                    "request_id": request_id,
                    "event_id": event,
                    "method": scope["method"],
                    "path": scope["path"],  # never the query: MSS_A puts the signature there
                    "status": status,
                    "client": (scope.get("client") or ("", 0))[0],
                    "duration_ms": round(elapsed * 1000, 3),
                }
            )

    def _count(self, outcome: str, reason: str) -> None:
        counter = self._counters.get((outcome, reason))
        if counter is None:
            counter = self._metrics.requests.labels(outcome, reason)
            self._counters[(outcome, reason)] = counter
        counter.inc()

    async def _accept(self, scope: Scope, receive: Any, request_id: str) -> tuple[str, bool]:
        if scope["method"] != "POST":
            raise _Reject(405, "method_not_allowed", "only POST is accepted")
        if headers_size(scope) > self._max_header:
            raise _Reject(431, "headers_too_large", f"the limit is {self._max_header} bytes")
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type")
        if content_type is not None and not _is_json(content_type):
            raise _Reject(415, "unsupported_media_type", "the body must be application/json")
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                raise _Reject(400, "bad_content_length", "Content-Length is not a number")
            if int(declared) > self._max_body:
                raise _Reject(413, "body_too_large", f"the limit is {self._max_body} bytes")
        now = time.time()
        verdict = self.authenticator.check(headers, scope["query_string"].decode("latin-1"), now)
        if not verdict.ok:
            raise _Reject(401, verdict.code, verdict.detail)
        if verdict.rule:
            rule = self._rules.get((verdict.auth_type, verdict.rule))
            if rule is None:
                rule = self._metrics.signature_rule.labels(verdict.auth_type, verdict.rule)
                self._rules[(verdict.auth_type, verdict.rule)] = rule
            rule.inc()
        raw = await self._read_body(receive)
        try:
            callback = parse_callback(raw)
        except BadEvent as error:
            raise _Reject(400, error.code, error.detail) from None
        event = event_id(raw, verdict.proof)
        envelope = build_envelope(callback, event, now, self._source)
        if self._tracing.enabled:
            envelope["traceparent"] = self._tracing.traceparent()
        replay_until = (verdict.signed_at or now) + self._replay_seconds
        try:
            stored = await self._intake.append(
                event, callback.room_id, now, orjson.dumps(envelope), replay_until, envelope
            )
        except IntakeFull as error:
            raise _Reject(503, "intake_full", str(error)) from None
        except IntakeUnavailable:
            log.exception("intake append failed", extra={"request_id": request_id})
            raise _Reject(503, "intake_unavailable", "events cannot be stored now") from None
        return event, stored

    async def _read_body(self, receive: Any) -> bytes:
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self._body_timeout):
                while True:
                    message: Message = await receive()
                    if message["type"] == "http.disconnect":
                        raise _Reject(400, "client_disconnected", "the body was not completed")
                    chunk: bytes = message.get("body", b"")
                    size += len(chunk)
                    if size > self._max_body:
                        raise _Reject(413, "body_too_large", f"the limit is {self._max_body} bytes")
                    if not message.get("more_body", False):
                        return b"".join((*chunks, chunk)) if chunks else chunk
                    chunks.append(chunk)
        except TimeoutError:
            raise _Reject(408, "body_timeout", "the body did not arrive in time") from None

"""The callback endpoint's logic: verify, parse, store durably, then answer.

Transport-independent: :mod:`receiver.protocol` (the uvicorn protocol that serves the
callback path without an ASGI cycle) and :mod:`receiver.endpoint` (the same endpoint as
an ASGI app) both drive one :class:`CallbackHandler`. A request goes through
:meth:`CallbackHandler.check_head` once its headers are in (method, limits, signature:
refused before its body is read), then :meth:`CallbackHandler.accept` with the body; the
answer reaches ``respond`` once the event is durable, and :meth:`CallbackHandler.finish`
counts it and writes its access-log line.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from receiver.accesslog import AccessLog
from receiver.authentication import Authenticator, Verdict
from receiver.envelope import build_envelope, event_id, random_event_id
from receiver.events import BadEvent, parse_callback
from receiver.intake import Intake, IntakeFull, IntakeUnavailable
from receiver.metrics import Metrics
from receiver.tracing import Tracing

log = logging.getLogger("receiver.callback")

Headers = Sequence[tuple[bytes, bytes]]

_RETRY_AFTER = ((b"retry-after", b"5"),)
_ALLOW = ((b"allow", b"POST"),)
# Request ids: unique per process start, then a counter (no system call per request).
_REQUEST_PREFIX = os.urandom(4).hex() + "-"


@dataclass(slots=True)
class Answer:
    """What a request is answered: always JSON; ``headers`` beyond the usual ones."""

    status: int
    body: bytes
    outcome: str  # accepted, duplicate or rejected (the metrics' labels)
    reason: str  # "ok" or the error code
    event_id: str = ""
    headers: tuple[tuple[bytes, bytes], ...] = ()


Respond = Callable[[Answer], None]


def refusal(status: int, code: str, detail: str) -> Answer:
    """A ``{"error", "detail"}`` answer."""
    extra = _RETRY_AFTER if status == 503 else _ALLOW if status == 405 else ()
    body = orjson.dumps({"error": code, "detail": detail})
    return Answer(status, body, "rejected", code, "", extra)


def _accepted(event: str, stored: bool) -> Answer:
    outcome = "accepted" if stored else "duplicate"
    body = b'{"status":"' + outcome.encode() + b'","id":"' + event.encode() + b'"}'
    return Answer(200, body, outcome, "ok", event)


def _is_json(content_type: bytes) -> bool:
    if content_type == b"application/json":
        return True
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


def headers_size(headers: Headers) -> int:
    """Bytes of the header names and values (uvicorn's httptools sets no limit)."""
    return sum(len(name) + len(value) for name, value in headers)


@dataclass(slots=True)
class Admission:
    """A request whose headers passed: the verdict, when it arrived, its trace span."""

    verdict: Verdict
    received_at: float
    request_id: str
    span: Any = None


class CallbackHandler:
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
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes
        self.body_timeout_seconds = body_timeout_seconds
        self._intake = intake
        self._metrics = metrics
        self._source = source
        self._replay_seconds = replay_seconds
        self._access_log = access_log
        self._tracing = tracing or Tracing()
        self._observe = metrics.request_seconds.observe
        self._request_numbers = itertools.count()
        self.too_large = refusal(413, "body_too_large", f"the limit is {max_body_bytes} bytes")
        self.headers_too_large = refusal(
            431, "headers_too_large", f"the limit is {max_header_bytes} bytes"
        )
        self.timed_out = refusal(408, "body_timeout", "the body did not arrive in time")
        self.disconnected = refusal(400, "client_disconnected", "the body was not completed")

    def request_id(self) -> str:
        """A new request id (``x-request-id`` and the access log)."""
        return f"{_REQUEST_PREFIX}{next(self._request_numbers):x}"

    def check_head(
        self, method: str, headers: Headers, query: bytes, header_bytes: int, request_id: str
    ) -> Admission | Answer:
        """Judge a request by its method and headers (lowercase names) alone."""
        if method != "POST":
            return refusal(405, "method_not_allowed", "only POST is accepted")
        if header_bytes > self.max_header_bytes:
            return self.headers_too_large
        fields = dict(headers)
        content_type = fields.get(b"content-type")
        declared = fields.get(b"content-length")
        if content_type is not None and not _is_json(content_type):
            return refusal(415, "unsupported_media_type", "the body must be application/json")
        if declared is not None:
            if not declared.isdigit():
                return refusal(400, "bad_content_length", "Content-Length is not a number")
            if int(declared) > self.max_body_bytes:
                return self.too_large
        now = time.time()
        verdict = self.authenticator.check(fields, query.decode("latin-1"), now)
        if not verdict.ok:
            return refusal(401, verdict.code, verdict.detail)
        self._metrics.signature_rule.labels(verdict.auth_type, verdict.rule).inc()
        span = None
        if self._tracing.enabled:
            span = self._tracing.start_span("metastudio.callback", {"request_id": request_id})
        return Admission(verdict, now, request_id, span)

    def accept(self, admission: Admission, body: bytes, respond: Respond) -> None:
        """Parse the body and store the event; ``respond`` gets the answer (maybe later)."""
        try:
            callback = parse_callback(body)
        except BadEvent as error:
            respond(refusal(400, error.code, error.detail))
            return
        verdict, now = admission.verdict, admission.received_at
        event = event_id(body, verdict.proof) if verdict.proof else random_event_id()
        envelope = build_envelope(callback, event, now, self._source)
        if admission.span is not None:
            admission.span.set_attribute("event_id", event)
            envelope["traceparent"] = self._tracing.traceparent(admission.span)
        replay_until = (verdict.signed_at or now) + self._replay_seconds

        def stored(outcome: bool | BaseException) -> None:
            if isinstance(outcome, bool):
                respond(_accepted(event, outcome))  # the answer first, then the bookkeeping
                if not outcome:
                    self._metrics.duplicate_callbacks.labels(verdict.auth_type).inc()
            elif isinstance(outcome, IntakeFull):
                respond(refusal(503, "intake_full", str(outcome)))
            else:
                extra = {"request_id": admission.request_id, "error": str(outcome)}
                if isinstance(outcome, IntakeUnavailable):
                    log.error("intake append failed", extra=extra)
                else:
                    log.error("intake append failed", extra=extra, exc_info=outcome)
                respond(refusal(503, "intake_unavailable", "events cannot be stored now"))

        self._intake.append_soon(
            event, callback.room_id, now, orjson.dumps(envelope), replay_until, envelope, stored
        )

    def finish(
        self,
        answer: Answer,
        request_id: str,
        started: float,
        method: str,
        path: str,
        client: str,
        admission: Admission | None = None,
    ) -> None:
        """Count the answered request, end its span and write its access-log line.

        ``path`` is never the query: MSS_A puts the signature there.
        """
        elapsed = time.perf_counter() - started
        self._observe(elapsed)
        self._metrics.requests.labels(answer.outcome, answer.reason).inc()
        if admission is not None and admission.span is not None:
            admission.span.end()
        if self._access_log is not None:
            self._access_log.line(
                {
                    "request_id": request_id,
                    "event_id": answer.event_id,
                    "method": method,
                    "path": path,
                    "status": answer.status,
                    "client": client,
                    "duration_ms": round(elapsed * 1000, 3),
                }
            )

"""POST envelopes to an HTTP endpoint, signed the Standard Webhooks way.

The body is the envelope in CloudEvents structured content mode (``content-type:
application/cloudevents+json; charset=utf-8``, no ``ce-`` headers), which CloudEvents SDKs
read as an event with every attribute and ``data``. With ``payload`` ``data`` or
``message`` it is binary content mode: the body is the data (``application/json``) and each
attribute a percent-encoded ``ce-`` header; the signature then covers that body.

Each request carries ``webhook-id`` (the event id), ``webhook-timestamp`` (Unix seconds)
and, when a secret is set, ``webhook-signature``: ``v1,`` followed by the base64 of
HMAC-SHA256 over ``"{webhook-id}.{webhook-timestamp}.{body}"``. The secret is either
``whsec_<base64>`` (the key is the decoded base64 part, as Standard Webhooks libraries
expect) or any other string, whose UTF-8 bytes are the key. Receivers check a request
with :func:`verify_webhook`.

A 2xx answer confirms delivery. 408, 429, 5xx and transport errors are worth retrying;
any other status is refused for good (``DeliveryError(retryable=False)``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any

import httpx

from receiver.envelope import MEDIA_TYPE
from receiver.sink_settings import HttpSinkSettings
from receiver.sinks.base import DeliveryError, Sink
from receiver.sinks.common import redact_url
from receiver.sinks.payload import HTTP

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format marker, not a secret
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300.0
RETRYABLE_STATUSES = frozenset({408, 429})


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret: the decoded ``whsec_<base64>``, else the UTF-8 bytes.

    Raises ValueError for a ``whsec_`` secret whose base64 part does not decode.
    """
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except binascii.Error:
            raise ValueError("a whsec_ secret must be followed by base64") from None
    return secret.encode("utf-8")


def sign_webhook(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value (``v1,<base64>``) of one request."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_seconds: float | None = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """Whether ``headers`` carry a valid signature of ``body`` under ``secret``.

    Header names are matched case-insensitively. The timestamp must lie within
    ``tolerance_seconds`` of ``now`` (``None`` skips that check). Any of several
    space-separated signatures may match.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    webhook_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp")
    offered = lowered.get("webhook-signature")
    if not webhook_id or not stamp or not offered:
        return False
    try:
        timestamp = int(stamp)
        expected = sign_webhook(secret, webhook_id, timestamp, body)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if tolerance_seconds is not None and abs(current - timestamp) > tolerance_seconds:
        return False
    return any(
        hmac.compare_digest(candidate.encode(), expected.encode()) for candidate in offered.split()
    )


class HttpSink(Sink):
    """POSTs each envelope in structured mode over one reused connection pool."""

    def __init__(self, settings: HttpSinkSettings) -> None:
        super().__init__(settings.name, critical=settings.critical, payload=settings.payload)
        self._url = settings.url
        self._where = redact_url(settings.url)
        self._secret = settings.secret.get_secret_value() if settings.secret else None
        if self._secret is not None:
            signing_key(self._secret)  # a malformed secret is a setting error: fail now
        self._timeout = settings.timeout_seconds
        self._client: httpx.AsyncClient | None = None
        self._ready = True

    def __repr__(self) -> str:
        return f"HttpSink(name={self.name!r}, url={self._where!r})"

    async def start(self) -> None:
        """Open the connection pool."""
        self._client_or_new()

    async def close(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def is_ready(self) -> bool:
        """False after a transport error, until a request succeeds again."""
        return self._ready

    async def publish(self, envelope: dict[str, Any], body: bytes) -> None:
        """POST ``body``; raise DeliveryError unless the endpoint answers 2xx."""
        payload = self.shaped(envelope, body)
        headers = self.headers(str(envelope["id"]), payload.body, int(time.time()))
        if payload.binary:
            headers["content-type"] = payload.content_type
            headers.update(HTTP.headers(payload.attributes))
        try:
            response = await self._client_or_new().post(
                self._url, content=payload.body, headers=headers
            )
        except httpx.HTTPError as error:
            self._ready = False
            kind = type(error).__name__
            raise DeliveryError(f"POST {self._where} failed: {kind}") from None
        self._ready = True
        status = response.status_code
        if 200 <= status < 300:
            return
        retryable = status in RETRYABLE_STATUSES or status >= 500
        raise DeliveryError(
            f"POST {self._where} answered {status} {response.reason_phrase}", retryable=retryable
        )

    def headers(self, webhook_id: str, body: bytes, timestamp: int) -> dict[str, str]:
        """The request headers: content type, webhook id, timestamp and signature."""
        headers = {
            "content-type": MEDIA_TYPE,
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
        }
        if self._secret is not None:
            headers["webhook-signature"] = sign_webhook(self._secret, webhook_id, timestamp, body)
        return headers

    def _client_or_new(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)
        return self._client

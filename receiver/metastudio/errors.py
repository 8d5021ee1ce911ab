"""Typed errors of the MetaStudio client.

Every error carries what the provider said (HTTP status, ``error_code``, ``error_msg``,
``X-Request-Id``) and nothing the client knows in secret: no AK/SK, no token, no request
headers. Branch on the class (the HTTP status), log the request id.
"""

from __future__ import annotations

from typing import Any

import orjson


class MetaStudioError(Exception):
    """The MetaStudio API (or its gateway) answered with an error, or could not be reached."""

    kind = "error"
    retryable = False

    def __init__(
        self,
        status: int | None,
        error_code: str = "",
        error_msg: str = "",
        request_id: str = "",
    ) -> None:
        self.status = status
        self.error_code = error_code
        self.error_msg = error_msg
        self.request_id = request_id
        super().__init__(self._describe())

    def _describe(self) -> str:
        text = " ".join(
            part for part in (f"HTTP {self.status}" if self.status else "", self.error_code) if part
        )
        if self.error_msg:
            text = f"{text}: {self.error_msg}" if text else self.error_msg
        if self.request_id:
            text = f"{text} (request id {self.request_id})"
        return text or type(self).__name__

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, error_code={self.error_code!r}, "
            f"error_msg={self.error_msg!r}, request_id={self.request_id!r})"
        )


class InvalidQueryError(MetaStudioError, ValueError):
    """A request refused before it was made (a query parameter, a path segment, a URL
    too long); ``params`` names each bad one."""

    kind = "invalid_request"

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        message = "; ".join(f"{param}: {text}" for param, text in problems)
        super().__init__(None, error_msg=message)
        self.params = tuple(param for param, _ in problems)
        self.problems = tuple(problems)


class BadRequest(MetaStudioError):
    """HTTP 400 (e.g. ``MSS.00000003`` invalid parameter) and other refused 4xx requests."""

    kind = "client"


class AuthError(MetaStudioError):
    """HTTP 401/403, or the IAM token could not be obtained."""

    kind = "auth"


class NotFound(MetaStudioError):
    """HTTP 404: unknown room or job."""

    kind = "not_found"


class RateLimited(MetaStudioError):
    """HTTP 429 (``APIGW.0308``): over the tenant's request rate."""

    kind = "rate_limited"
    retryable = True


class ServerError(MetaStudioError):
    """HTTP 5xx."""

    kind = "server"
    retryable = True


class TransportError(MetaStudioError):
    """No HTTP answer: connection refused or reset, DNS, TLS, protocol errors."""

    kind = "transport"
    retryable = True

    def __init__(self, error_msg: str) -> None:
        super().__init__(None, error_msg=error_msg)


class Timeout(TransportError):
    """The request did not complete within the configured timeout."""

    kind = "timeout"


class InvalidResponse(MetaStudioError):
    """A success status with a body that is not the documented JSON document."""

    kind = "invalid_response"


_MAX_FIELD = 500


def _error_fields(body: bytes) -> tuple[str, str]:
    if not body:
        return "", "(no error body)"
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        # A body that is not the provider's JSON (a proxy page, an echo) is not repeated.
        return "", "(non-JSON error body)"
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        data = data["error"]  # IAM nests its error: {"error": {"code": ..., "message": ...}}
    if not isinstance(data, dict):
        return "", "(non-JSON error body)"
    code = data.get("error_code") or data.get("code") or ""
    message = data.get("error_msg") or data.get("error_message") or data.get("message") or ""
    return str(code)[:_MAX_FIELD], str(message)[:_MAX_FIELD]


def error_for_status(status: int, body: bytes, request_id: str = "") -> MetaStudioError:
    """The typed error of an HTTP error answer; accepts ``error_msg`` and ``error_message``."""
    code, message = _error_fields(body)
    cls: type[MetaStudioError]
    if status == 429:
        cls = RateLimited
    elif status in (401, 403):
        cls = AuthError
    elif status == 404:
        cls = NotFound
    elif status >= 500:
        cls = ServerError
    else:
        cls = BadRequest
    return cls(status, code, message, request_id)

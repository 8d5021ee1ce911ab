"""What Huawei Cloud's API gateway does before a request reaches MetaStudio.

AK/SK verification (``SDK-HMAC-SHA256``: the canonical request is rebuilt from what was
received), ``X-Auth-Token`` checks, per-tenant throttling, and the error bodies of both
the gateway (``APIGW.*``) and the service (``MSS.*``).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from starlette.requests import Request
from starlette.responses import Response

from receiver.metastudio.signing import canonical_request, parse_authorization, signature

ALGORITHM = "SDK-HMAC-SHA256"
SDK_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_SKEW_SECONDS = 15 * 60
JSON_TYPE = "application/json;charset=UTF-8"


class ApiError(Exception):
    """An error answer: HTTP status, provider error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    def response(self, request_id: str) -> Response:
        """The JSON answer the provider gives (gateway errors also carry ``request_id``)."""
        body: dict[str, str] = {"error_code": self.code, "error_msg": self.message}
        if self.code.startswith("APIGW."):
            body["request_id"] = request_id
        return Response(
            orjson.dumps(body),
            status_code=self.status,
            media_type=JSON_TYPE,
            headers={"X-Request-Id": request_id},
        )


def invalid_parameter(message: str) -> ApiError:
    """400 ``MSS.00000003``: a bad query parameter."""
    return ApiError(400, "MSS.00000003", f"Invalid parameter: {message}")


def not_found(message: str) -> ApiError:
    """404 ``MSS.00000005``: an unknown room or job."""
    return ApiError(404, "MSS.00000005", message)


def internal_error() -> ApiError:
    """500 ``MSS.00000004``: the service failed."""
    return ApiError(500, "MSS.00000004", "Internal Error")


def throttled() -> ApiError:
    """429 ``APIGW.0308``: over the tenant's request rate (no ``Retry-After``)."""
    return ApiError(429, "APIGW.0308", "The throttling threshold has been reached: policy user")


def _unauthorized(detail: str, code: str = "APIGW.0301") -> ApiError:
    return ApiError(401, code, f"Incorrect IAM authentication information: {detail}")


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the gateway accepts for one tenant: its project, AK/SK, and optional token."""

    project_id: str
    ak: str
    sk: str
    token: str | None = None


def _sdk_date(value: str | None, now: float) -> None:
    if not value:
        raise _unauthorized("x-sdk-date not found")
    try:
        signed_at = datetime.strptime(value, SDK_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise _unauthorized("x-sdk-date format invalid") from None
    if abs(now - signed_at.timestamp()) > MAX_SKEW_SECONDS:
        raise _unauthorized("request expired, x-sdk-date skew over 15 minutes", "APIGW.0303")


def _header_text(value: str) -> str:
    """A header value as signing clients see it: UTF-8 bytes decoded as UTF-8 (the ASGI
    server hands over Latin-1), other bytes left as Latin-1."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


async def _verify_aksk(
    request: Request, authorization: str, creds: Credentials, now: float
) -> None:
    parsed = parse_authorization(authorization)
    if parsed is None:
        raise _unauthorized("authorization header malformed")
    ak, signed_headers, given = parsed
    if not hmac.compare_digest(ak.encode(), creds.ak.encode()):
        raise _unauthorized("access key not found")
    headers = {name.lower(): _header_text(value) for name, value in request.headers.items()}
    if "host" not in signed_headers or "x-sdk-date" not in signed_headers:
        raise _unauthorized("host and x-sdk-date must be signed")
    missing = [name for name in signed_headers if name not in headers]
    if missing:
        raise _unauthorized(f"signed header(s) not sent: {', '.join(missing)}")
    _sdk_date(headers.get("x-sdk-date"), now)
    canonical = canonical_request(
        request.method,
        request.scope.get("raw_path", request.url.path.encode()).decode("latin-1"),
        request.scope.get("query_string", b"").decode("latin-1"),
        headers,
        signed_headers,
        await request.body(),
    )
    expected = signature(creds.sk, headers["x-sdk-date"], canonical)
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise _unauthorized("verify aksk signature fail")
    if headers.get("x-project-id") != creds.project_id:
        raise _unauthorized("x-project-id missing or not the credentials' project")


async def authenticate(request: Request, creds: Credentials, now: float | None = None) -> None:
    """Raise :class:`ApiError` (401) unless the request carries a valid token or AK/SK."""
    moment = time.time() if now is None else now
    token = request.headers.get("x-auth-token")
    if token is not None:
        if creds.token is None or not hmac.compare_digest(token.encode(), creds.token.encode()):
            raise _unauthorized("token invalid or expired")
        return
    authorization = request.headers.get("authorization")
    if not authorization:
        raise _unauthorized("authorization not found")
    await _verify_aksk(request, authorization, creds, moment)


class TokenBucket:
    """A per-tenant request-rate limit: ``rate`` requests per second, bursts up to ``rate``."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self._rate = rate
        self._capacity = max(1.0, rate)
        self._tokens = self._capacity
        self._clock = clock
        self._stamp = clock()

    def take(self) -> bool:
        """Spend one token if there is one; False means the request is over the limit."""
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

"""How the client proves who it is: AK/SK request signing or an IAM user token.

Both strategies have the same two-method interface. ``apply`` readies one attempt of a
request (sign it, or attach the token); ``refresh_after_unauthorized`` is asked once when
the API answers 401 and says whether a retry with fresh credentials can help.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
import orjson
from pydantic import SecretStr

from receiver.config import MetaStudioSettings
from receiver.metastudio.errors import AuthError, Timeout, TransportError, error_for_status
from receiver.metastudio.signing import sign_request
from receiver.secretfiles import read_secret

TOKEN_HEADER = "X-Auth-Token"  # noqa: S105 - a header name
SUBJECT_TOKEN_HEADER = "X-Subject-Token"  # noqa: S105 - a header name
DEFAULT_TOKEN_LIFETIME = 24 * 3600.0


class _SubjectTokenFilter(logging.Filter):
    """Scrub ``X-Subject-Token`` from httpcore's DEBUG traces, which print response headers."""

    _PATTERN = re.compile(r"(b'x-subject-token', b')[^']*'", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "subject-token" in record.msg.lower():
            record.msg = self._PATTERN.sub(r"\1[redacted]'", record.msg)
        return True


def _install_trace_filter() -> None:
    for name in ("httpcore.http11", "httpcore.http2"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _SubjectTokenFilter) for f in logger.filters):
            logger.addFilter(_SubjectTokenFilter())


_install_trace_filter()


class Auth(Protocol):
    """One way of authenticating API requests."""

    async def apply(self, request: httpx.Request) -> None:
        """Add the credentials to one attempt of ``request`` (called once per attempt)."""

    async def refresh_after_unauthorized(self, request: httpx.Request) -> bool:
        """Renew credentials after a 401 to ``request``; ``True`` if a retry may succeed."""


def _secret(value: SecretStr | None, path: Path | None, what: str) -> SecretStr:
    if value is not None and value.get_secret_value():
        return value
    if path is not None:
        text = read_secret(path)
        if text:
            return SecretStr(text)
    raise AuthError(None, error_msg=f"metastudio.{what} (or {what}_file) is not configured")


class AkSkAuth:
    """Signs each attempt with ``SDK-HMAC-SHA256`` and sends ``X-Project-Id``."""

    def __init__(self, ak: SecretStr, sk: SecretStr, project_id: str) -> None:
        self._ak = ak
        self._sk = sk
        self.project_id = project_id

    def __repr__(self) -> str:
        return f"AkSkAuth(project_id={self.project_id!r})"

    async def apply(self, request: httpx.Request) -> None:
        """Set ``X-Project-Id``, ``X-Sdk-Date`` and ``Authorization``."""
        request.headers["X-Project-Id"] = self.project_id
        sign_request(request, self._ak.get_secret_value(), self._sk.get_secret_value())

    async def refresh_after_unauthorized(self, request: httpx.Request) -> bool:
        """A signature refused once is refused again: no retry."""
        return False


def _expiry(body: bytes, now: float) -> float:
    """Unix time at which the token expires: ``token.expires_at``, else 24 hours from now."""
    try:
        data: Any = orjson.loads(body)
        text = data["token"]["expires_at"]
        return datetime.fromisoformat(str(text).replace("z", "Z")).timestamp()
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return now + DEFAULT_TOKEN_LIFETIME


class TokenAuth:
    """An IAM user token, fetched once, shared, and renewed ahead of its expiry."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        iam_url: str,
        user: str,
        password: SecretStr,
        domain: str,
        project_id: str,
        *,
        margin_seconds: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self.iam_url = iam_url
        self.user = user
        self._password = password
        self.domain = domain
        self.project_id = project_id
        self.margin_seconds = margin_seconds
        self._clock = clock
        self._token: SecretStr | None = None
        self._expires_at = 0.0
        self._renew_at = 0.0
        self._lock = asyncio.Lock()
        self.fetches = 0

    def __repr__(self) -> str:
        return f"TokenAuth(iam_url={self.iam_url!r}, user={self.user!r}, domain={self.domain!r})"

    @property
    def expires_at(self) -> float:
        """Unix time the cached token expires (0 when there is none)."""
        return self._expires_at

    def _fresh(self) -> bool:
        return self._token is not None and self._clock() < self._renew_at

    async def token(self, stale: str | None = None) -> str:
        """The current token, fetching one if there is none, it is due, or it is ``stale``.

        Concurrent callers wait for a single fetch.
        """
        current = self._token.get_secret_value() if self._token else None
        if self._fresh() and (stale is None or current != stale):
            return current or ""
        async with self._lock:
            current = self._token.get_secret_value() if self._token else None
            if not self._fresh() or (stale is not None and current == stale):
                await self._fetch()
            assert self._token is not None
            return self._token.get_secret_value()

    async def _fetch(self) -> None:
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": self.user,
                            "password": self._password.get_secret_value(),
                            "domain": {"name": self.domain},
                        }
                    },
                },
                "scope": {"project": {"id": self.project_id}},
            }
        }
        self.fetches += 1
        try:
            response = await self._http.post(
                self.iam_url,
                content=orjson.dumps(body),
                headers={"Content-Type": "application/json;charset=UTF-8"},
            )
        except httpx.TimeoutException:
            raise Timeout("IAM token request timed out") from None
        except httpx.HTTPError as failure:
            raise TransportError(f"IAM token request failed: {type(failure).__name__}") from None
        request_id = response.headers.get("X-Request-Id", "")
        if response.status_code >= 400:
            error = error_for_status(response.status_code, response.content, request_id)
            if not error.retryable:
                raise AuthError(error.status, error.error_code, error.error_msg, request_id)
            raise error
        token = response.headers.get(SUBJECT_TOKEN_HEADER, "")
        if not token:
            raise AuthError(response.status_code, error_msg="IAM answered without X-Subject-Token")
        now = self._clock()
        self._token = SecretStr(token)
        self._expires_at = _expiry(response.content, now)
        # A short-lived token is renewed half-way rather than at once on every call.
        self._renew_at = self._expires_at - min(self.margin_seconds, (self._expires_at - now) / 2)

    async def apply(self, request: httpx.Request) -> None:
        """Set ``X-Auth-Token`` (fetching or renewing the token when due)."""
        request.headers[TOKEN_HEADER] = await self.token()

    async def refresh_after_unauthorized(self, request: httpx.Request) -> bool:
        """Renew the token the refused request used (once, however many callers ask)."""
        await self.token(stale=request.headers.get(TOKEN_HEADER, ""))
        return True


def iam_tokens_url(settings: MetaStudioSettings) -> str:
    """``{iam_endpoint}/v3/auth/tokens``, by default on ``iam.{region}.myhuaweicloud.com``."""
    base = settings.iam_endpoint or f"https://iam.{settings.region}.myhuaweicloud.com"
    return base.rstrip("/") + "/v3/auth/tokens"


def auth_from_settings(settings: MetaStudioSettings, http: httpx.AsyncClient) -> Auth:
    """The strategy ``settings.auth`` names; :class:`AuthError` if a credential is missing."""
    if not settings.project_id:
        raise AuthError(None, error_msg="metastudio.project_id is not configured")
    if settings.auth == "token":
        if not settings.iam_user or not settings.iam_domain:
            raise AuthError(None, error_msg="metastudio.iam_user and iam_domain are required")
        password = _secret(settings.iam_password, settings.iam_password_file, "iam_password")
        return TokenAuth(
            http,
            iam_tokens_url(settings),
            settings.iam_user,
            password,
            settings.iam_domain,
            settings.project_id,
        )
    ak = _secret(settings.ak, settings.ak_file, "ak")
    sk = _secret(settings.sk, settings.sk_file, "sk")
    return AkSkAuth(ak, sk, settings.project_id)

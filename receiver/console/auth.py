"""Who is calling the console, and whether a state-changing request may go through.

A pure-ASGI middleware: a ``Bearer`` token (API clients), or a session cookie (browsers,
after ``POST /login``). A cookie-authenticated request that changes state must carry the
session's CSRF token in ``X-CSRF-Token``; a bearer-authenticated one need not (browsers
never attach it on their own). Without a tokens file (loopback only) every caller is an
operator, state changes need the process's CSRF token (pages embed it; ``GET
/api/session`` returns it to the same origin) and the ``Host`` must be a loopback name, so a
page elsewhere cannot drive the console through DNS rebinding.
"""

from __future__ import annotations

import http.cookies
import re
import secrets
from typing import Any

import orjson

from receiver.console.sessions import COOKIE, Sessions
from receiver.console.settings import is_loopback
from receiver.console.tokens import Role, Tokens

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_PREFIXES = ("/login", "/static/")


_HOST = re.compile(r"^(?:\[(?P<v6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9.-]+))(?::[0-9]{1,5})?$")


def is_loopback_host(host: str) -> bool:
    """Whether a ``Host`` header names this machine: ``localhost`` or a loopback address,
    with an optional port, nothing else."""
    match = _HOST.match(host.strip().lower())
    if match is None:
        return False
    return is_loopback(match.group("v6") or match.group("name"))


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


async def _refuse(send: Any, status: int, error: str, detail: str) -> None:
    body = orjson.dumps({"error": error, "detail": detail})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Any, location: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [(b"location", location.encode()), (b"content-length", b"0")],
        }
    )
    await send({"type": "http.response.body", "body": b""})


class ConsoleAuth:
    """Sets ``scope["state"]`` ``role`` and ``csrf``, or refuses the request."""

    def __init__(self, app: Any, tokens: Tokens, sessions: Sessions) -> None:
        self.app = app
        self.tokens = tokens
        self.sessions = sessions
        self.open_csrf = secrets.token_urlsafe(32)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = _headers(scope)
        state = scope.setdefault("state", {})
        role, csrf, bearer = self._principal(headers)
        state["role"], state["csrf"] = role, csrf
        if path.startswith(PUBLIC_PREFIXES):
            await self.app(scope, receive, send)
            return
        if self.tokens.open and not is_loopback_host(headers.get("host", "")):
            await _refuse(send, 421, "misdirected", "the console answers loopback names only")
            return
        if role is None:
            if path.startswith("/api/"):
                await _refuse(send, 401, "unauthorized", "a bearer token or a session is needed")
            else:
                await _redirect(send, "/login")
            return
        if scope["method"] not in SAFE_METHODS and not bearer:
            presented = headers.get("x-csrf-token", "").encode("latin-1")
            if not csrf or not secrets.compare_digest(presented, csrf.encode()):
                await _refuse(send, 403, "csrf", "X-CSRF-Token is missing or wrong")
                return
        await self.app(scope, receive, send)

    def _principal(self, headers: dict[str, str]) -> tuple[Role | None, str, bool]:
        """The caller's role, the CSRF token its state changes need, whether by bearer."""
        authorization = headers.get("authorization", "")
        if authorization[:7].lower() == "bearer ":
            role = Role.OPERATOR if self.tokens.open else self.tokens.role_of(authorization[7:])
            return role, "", role is not None
        if self.tokens.open:
            return Role.OPERATOR, self.open_csrf, False
        cookie = http.cookies.SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except http.cookies.CookieError:
            return None, "", False
        morsel = cookie.get(COOKIE)
        session = self.sessions.get(morsel.value) if morsel is not None else None
        if session is None:
            return None, "", False
        return session.role, session.csrf, False


class SecurityHeaders:
    """Strict headers on every answer; API answers are never stored."""

    CSP = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        no_store = not scope["path"].startswith("/static/")

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", self.CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                ]
                if no_store:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)

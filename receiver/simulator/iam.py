"""A fake IAM ``POST /v3/auth/tokens``: a password identity gets the configured token.

Any user name and password are accepted (this is a local stand-in, not a credential
store); the token comes back in ``X-Subject-Token`` and the body's ``token.expires_at``
says it is valid for 24 hours, as IAM does.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from receiver.simulator.gateway import Credentials
from receiver.simulator.jobs import rfc3339

TOKEN_LIFETIME = timedelta(hours=24)
SUBJECT_TOKEN_HEADER = "X-Subject-Token"  # noqa: S105 - a header name


def _iam_error(status: int, code: str, message: str) -> tuple[int, dict[str, str], Any]:
    return status, {}, {"error": {"code": code, "message": message, "title": "Unauthorized"}}


def _password_user(body: Any) -> dict[str, Any] | None:
    """The ``auth.identity.password.user`` object of a password identity, else None."""
    try:
        identity = body["auth"]["identity"]
        if "password" not in identity["methods"]:
            return None
        user = identity["password"]["user"]
    except (KeyError, TypeError):
        return None
    if not isinstance(user, dict) or not user.get("name") or not user.get("password"):
        return None
    return user


def issue_token(raw_body: bytes, creds: Credentials) -> tuple[int, dict[str, str], Any]:
    """``(status, headers, JSON body)`` answering a token request."""
    if creds.token is None:
        return _iam_error(401, "IAM.0001", "token authentication is not enabled here")
    try:
        body = orjson.loads(raw_body)
    except orjson.JSONDecodeError:
        return _iam_error(400, "IAM.0007", "request body is not JSON")
    user = _password_user(body)
    if user is None:
        return _iam_error(400, "IAM.0007", "a password identity (name, password) is required")
    issued = datetime.now(UTC)
    domain = user.get("domain") if isinstance(user.get("domain"), dict) else {}
    token = {
        "methods": ["password"],
        "issued_at": rfc3339(issued),
        "expires_at": rfc3339(issued + TOKEN_LIFETIME),
        "user": {"name": user["name"], "id": "0" * 32, "domain": domain},
        "project": {"id": creds.project_id, "name": "cn-north-4"},
    }
    return 201, {SUBJECT_TOKEN_HEADER: creds.token}, {"token": token}

"""Huawei Cloud API gateway signing, ``SDK-HMAC-SHA256`` (AK/SK).

The same algorithm as ``huaweicloudsdkcore.signer.Signer``: a canonical request (method,
path with a trailing ``/``, sorted percent-encoded query, signed headers, body hash) is
hashed into a string to sign, which is HMAC-SHA256'd with the secret key. The helpers
below serve both sides: :func:`sign_request` for a client, :func:`canonical_request`,
:func:`signature` and :func:`parse_authorization` for a verifier.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from urllib.parse import quote, unquote

import httpx

ALGORITHM = "SDK-HMAC-SHA256"
SDK_DATE_HEADER = "X-Sdk-Date"
SDK_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
EMPTY_BODY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

# The SDK signs the headers it sets itself; the transport adds these afterwards, unsigned,
# and proxies may rewrite them, so signing them would only make verification brittle.
_UNSIGNED_HEADERS = frozenset(
    {
        "authorization",
        "accept",
        "accept-encoding",
        "connection",
        "content-length",
        "keep-alive",
        "proxy-connection",
        "te",
        "transfer-encoding",
        "upgrade",
    }
)

_AUTHORIZATION = re.compile(
    r"^SDK-HMAC-SHA256\s+Access=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-fA-F]+)$"
)


def _encode(text: str) -> str:
    """Percent-encode everything except RFC 3986 unreserved characters (space is ``%20``)."""
    return quote(text, safe="~")


def encode_query(params: Mapping[str, object]) -> str:
    """Turn Python values into a query string the way the official SDK does.

    Booleans become ``true``/``false``, lists and tuples repeat the parameter once per
    value, ``None`` is left out. The result is already in canonical order and encoding.
    """
    pairs: list[tuple[str, str]] = []
    for name, value in params.items():
        if value is None:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            text = str(item).lower() if isinstance(item, bool) else str(item)
            pairs.append((name, text))
    return _join_sorted(pairs)


def _join_sorted(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{_encode(name)}={_encode(value)}" for name, value in sorted(pairs))


def canonical_query(query: str) -> str:
    """The canonical form of a raw query string: pairs decoded, sorted, re-encoded.

    ``+`` is taken literally (RFC 3986), not as a space; a name without ``=`` has an
    empty value.
    """
    pairs: list[tuple[str, str]] = []
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((unquote(name), unquote(value)))
    return _join_sorted(pairs)


def canonical_path(path: str) -> str:
    """Each segment percent-encoded, with a trailing ``/`` (only in the canonical form)."""
    encoded = "/".join(_encode(segment) for segment in unquote(path).split("/"))
    return encoded if encoded.endswith("/") else encoded + "/"


def canonical_request(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    body: bytes,
) -> str:
    """The six-line canonical request that is hashed into the string to sign.

    ``path`` and ``query`` are as sent on the wire (percent-encoded, query without ``?``);
    ``headers`` are looked up case-insensitively.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    names = [name.lower() for name in signed_headers]
    header_lines = "".join(f"{name}:{lowered.get(name, '').strip()}\n" for name in names)
    body_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_BODY_SHA256
    return "\n".join(
        [
            method.upper(),
            canonical_path(path),
            canonical_query(query),
            header_lines,
            ";".join(names),
            body_hash,
        ]
    )


def string_to_sign(sdk_date: str, canonical: str) -> str:
    """``SDK-HMAC-SHA256``, the ``X-Sdk-Date`` value and the canonical request's SHA-256."""
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{sdk_date}\n{digest}"


def signature(sk: str, sdk_date: str, canonical: str) -> str:
    """Lowercase hex HMAC-SHA256 of the string to sign, keyed with the secret key."""
    message = string_to_sign(sdk_date, canonical).encode("utf-8")
    return hmac.new(sk.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signed_header_names(headers: Mapping[str, str]) -> list[str]:
    """The headers to sign: lowercased, sorted, without ``_`` and without transport headers."""
    names = {name.lower() for name in headers}
    return sorted(name for name in names if "_" not in name and name not in _UNSIGNED_HEADERS)


def format_sdk_date(moment: datetime) -> str:
    """``YYYYMMDDTHHMMSSZ`` in UTC (a naive datetime is taken as UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime(SDK_DATE_FORMAT)


def sign_request(request: httpx.Request, ak: str, sk: str, now: datetime | None = None) -> None:
    """Set ``X-Sdk-Date`` and ``Authorization`` on ``request`` (every other header stays)."""
    request.headers[SDK_DATE_HEADER] = format_sdk_date(now or datetime.now(UTC))
    request.headers.pop("Authorization", None)
    headers = dict(request.headers.items())
    names = signed_header_names(headers)
    raw_path, _, _ = request.url.raw_path.decode("ascii").partition("?")
    canonical = canonical_request(
        request.method,
        raw_path,
        request.url.query.decode("ascii"),
        headers,
        names,
        request.read(),
    )
    digest = signature(sk, request.headers[SDK_DATE_HEADER], canonical)
    request.headers["Authorization"] = (
        f"{ALGORITHM} Access={ak}, SignedHeaders={';'.join(names)}, Signature={digest}"
    )


def parse_authorization(value: str) -> tuple[str, list[str], str] | None:
    """Access key, signed header names and signature of an ``Authorization`` value.

    ``None`` when the value is not a well-formed ``SDK-HMAC-SHA256`` authorization.
    """
    match = _AUTHORIZATION.match(value.strip())
    if match is None:
        return None
    access, names, digest = match.groups()
    signed = names.lower().split(";")
    if any(not name for name in signed):
        return None
    return access, signed, digest.lower()

"""Remove secrets from MetaStudio documents before they are logged, cached or forwarded.

A job carries its callback ``key`` and the RTC users' ``signature`` tokens; the registered
callback URL may carry a token in its query (``auth_type`` ``NONE``), and signed object
storage URLs carry their signature in theirs. A callback message carries the RTMP
``stream_key`` and push URLs (``output_url``) whose last path segment or query is the
stream's credential; and since callback bodies are not signed, any of their fields may.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "[redacted]"

_SECRET_WORDS = frozenset(
    {
        "ak",
        "sk",
        "key",
        "secret",
        "password",
        "passwd",
        "token",
        "signature",
        "credential",
        "credentials",
        "apikey",
        "accesskey",
        "secretkey",
        "privatekey",
        "streamkey",
    }
)
_SECRET_SUFFIXES = ("secret", "password", "token", "signature", "credential", "credentials")
# URLs whose whole query is a credential: MetaStudio calls them as registered.
_URLS_WITH_SECRET_QUERY = frozenset({"live_event_type_callback_url"})
# Query parameters that carry a push URL's credential under names no word rule catches
# (``auth_key``, ``txSecret``, ``wsSecret``, ``token`` are caught by ``is_secret_name``).
_SECRET_PARAMS = frozenset({"sign", "sig", "auth", "streamid", "passphrase", "pwd", "pass"})
# Schemes of push URLs: their path after the application is the stream key.
_PUSH_SCHEMES = frozenset({"rtmp", "rtmps", "rtmpe", "rtmpt", "rtmpte", "rtmpts", "srt"})
# URLs anywhere in a text; the scheme is matched case-insensitively.
_URL = re.compile(r"\b(?:https?|rtmp[est]{0,2}|srt)://[^\s\"'<>\\]+", re.IGNORECASE)
_SCALARS = frozenset({int, float, bool, type(None)})
_JOB_DEPTH = 200  # the API's documents nest a few levels: a bound on recursion only
_CAMEL_BOUNDARY = re.compile(r"([a-z0-9])([A-Z])")
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")


@functools.lru_cache(maxsize=4096)  # jobs repeat the same few hundred field names
def is_secret_name(name: str) -> bool:
    """Whether a field or parameter name looks like it holds a secret.

    Names are split into words (``snake_case``, ``kebab-case``, ``camelCase``), so
    ``stream_key``, ``hwSecret`` and ``X-Auth-Token`` match but ``task`` or ``speak`` do not.
    """
    words = _WORD_SPLIT.split(_CAMEL_BOUNDARY.sub(r"\1_\2", name).lower())
    return any(word in _SECRET_WORDS or word.endswith(_SECRET_SUFFIXES) for word in words)


class TooDeep(ValueError):
    """A document nested deeper than the limit it was redacted with."""


def _is_secret_param(name: str) -> bool:
    return is_secret_name(name) or name.lower() in _SECRET_PARAMS


def _redact_params(text: str, every_value: bool, secret_params: Collection[str]) -> str:
    pairs = parse_qsl(text, keep_blank_values=True)
    cleaned = [
        (
            name,
            REDACTED if every_value or name in secret_params or _is_secret_param(name) else value,
        )
        for name, value in pairs
    ]
    if cleaned == pairs:
        return text
    return urlencode(cleaned, safe="[]")


def redact_url(url: str, every_value: bool = False, secret_params: Collection[str] = ()) -> str:
    """``url`` with its credentials replaced: a userinfo password, secret-named query values
    (and those of ``secret_params``; every value with ``every_value``) and, for a push URL
    (``rtmp``, ``rtmps``, ``srt``), the stream key: the last path segment after the
    application, and any fragment."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL after all (a bracketed host that is no IPv6 address)
        return REDACTED
    cleaned = parts
    if "@" in parts.netloc:
        userinfo, _, host = parts.netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        hidden = f"{user}:{REDACTED}" if colon else REDACTED
        cleaned = cleaned._replace(netloc=f"{hidden}@{host}")
    if parts.query:
        query = _redact_params(parts.query, every_value, secret_params)
        cleaned = cleaned._replace(query=query)
    if parts.scheme.lower() in _PUSH_SCHEMES:
        application, slash, stream = parts.path.rstrip("/").rpartition("/")
        if application.strip("/") and stream:
            cleaned = cleaned._replace(path=application + slash + REDACTED)
        if parts.fragment:  # SRT's ``streamid=#!::r=app/key`` puts the key here
            cleaned = cleaned._replace(fragment=REDACTED)
    if cleaned == parts:
        return url
    scheme = len(parts.scheme)  # urlsplit lowercases it: the text keeps its own
    return url[:scheme] + urlunsplit(cleaned)[scheme:]


def redact_text(text: str, every_value: bool = False) -> str:
    """``text`` with every URL in it passed through :func:`redact_url`."""
    if "://" not in text:  # the common case, without the regex
        return text
    return _URL.sub(lambda found: redact_url(found.group(), every_value), text)


def _redact_value(name: str, value: Any, depth: int) -> Any:
    if is_secret_name(name):
        return value if value is None or value == "" else REDACTED
    if type(value) is str:
        return redact_text(value, name in _URLS_WITH_SECRET_QUERY)
    return _redact_any(value, depth)


def _redact_any(value: Any, depth: int) -> Any:
    kind = type(value)  # exact types first: an isinstance against the ABCs costs more
    if kind is str:
        return redact_text(value)
    if kind in _SCALARS:
        return value
    if kind is dict or isinstance(value, Mapping):
        if depth <= 0:
            raise TooDeep("nested deeper than the limit")
        return {str(k): _redact_value(str(k), item, depth - 1) for k, item in value.items()}
    if kind is list or isinstance(value, list | tuple):
        if depth <= 0:
            raise TooDeep("nested deeper than the limit")
        return [_redact_any(item, depth - 1) for item in value]
    return value


def redact_job(job: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``job`` with every secret replaced by ``"[redacted]"``.

    Covers ``live_event_callback_config.key``, each RTC user's ``signature``, any key whose
    name looks secret at any depth, and credential-bearing URL query values. Empty values
    stay as they are, so a reader can still tell "no key configured" from "key hidden".
    """
    redacted: dict[str, Any] = _redact_any(job, _JOB_DEPTH)
    return redacted


def redact_message(message: Mapping[str, Any], max_depth: int) -> dict[str, Any]:
    """A copy of a callback message with every secret replaced, as :func:`redact_job` does,
    push-URL stream keys included; raise :class:`TooDeep` past ``max_depth`` levels."""
    redacted: dict[str, Any] = _redact_any(message, max_depth)
    return redacted

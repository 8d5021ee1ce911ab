"""Remove secrets from MetaStudio job objects before they are logged, cached or forwarded.

A job carries its callback ``key`` and the RTC users' ``signature`` tokens; the registered
callback URL may carry a token in its query (``auth_type`` ``NONE``), and signed object
storage URLs carry their signature in theirs.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
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


def _redact_url(url: str, every_value: bool) -> str:
    parts = urlsplit(url)
    if not parts.query:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    cleaned = [
        (name, REDACTED if every_value or is_secret_name(name) else value) for name, value in pairs
    ]
    return urlunsplit(parts._replace(query=urlencode(cleaned, safe="[]")))


def _redact_value(name: str, value: Any) -> Any:
    if is_secret_name(name):
        return value if value is None or value == "" else REDACTED
    if isinstance(value, str) and value.startswith(("http://", "https://")) and "?" in value:
        return _redact_url(value, name in _URLS_WITH_SECRET_QUERY)
    return _redact_any(value)


def _redact_any(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(name): _redact_value(str(name), item) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_any(item) for item in value]
    return value


def redact_job(job: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``job`` with every secret replaced by ``"[redacted]"``.

    Covers ``live_event_callback_config.key``, each RTC user's ``signature``, any key whose
    name looks secret at any depth, and credential-bearing URL query values. Empty values
    stay as they are, so a reader can still tell "no key configured" from "key hidden".
    """
    redacted: dict[str, Any] = _redact_any(job)
    return redacted

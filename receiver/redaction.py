"""Remove secrets from MetaStudio documents before they are logged, cached or forwarded.

A job carries its callback ``key`` and the RTC users' ``signature`` tokens; the registered
callback URL may carry a token in its query (``auth_type`` ``NONE``), and signed object
storage URLs carry their signature in theirs. A callback message carries the RTMP
``stream_key`` and push URLs (``output_url``) whose last path segment or query is the
stream's credential; and since callback bodies are not signed, any of their fields may.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any, Generic, TypeVar
from urllib.parse import unquote_plus, urlsplit, urlunsplit

REDACTED = "[redacted]"
T = TypeVar("T")

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
_URL_SCHEMES = frozenset(
    {"http", "https", "srt"}
    | {
        "rtmp" + "".join(tail)
        for size in range(3)
        for tail in itertools.product("est", repeat=size)
    }
)
_SCALARS = frozenset({int, float, bool, type(None)})
# Names and URL heads longer than these are not cached (see _cached_when_short).
_CACHED_NAME_CHARS = 128
_CACHED_URL_CHARS = 512
_JOB_DEPTH = 200  # the API's documents nest a few levels: a bound on recursion only
_CAMEL_BOUNDARY = re.compile(r"([a-z0-9])([A-Z])")
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")


class _CachedWhenShort(Generic[T]):
    """A function of one text, cached for texts up to ``max_chars`` long: bodies may carry
    any, and longer ones are computed each time, so the cache stays small whatever comes."""

    def __init__(self, function: Callable[[str], T], max_chars: int, maxsize: int) -> None:
        self._function = function
        self._cached = functools.lru_cache(maxsize=maxsize)(function)
        self._max_chars = max_chars
        self.__doc__ = function.__doc__

    def __call__(self, text: str) -> T:
        return self._cached(text) if len(text) <= self._max_chars else self._function(text)

    def cached(self) -> int:
        """How many texts the cache holds."""
        return self._cached.cache_info().currsize


def _cached_when_short(
    max_chars: int, maxsize: int
) -> Callable[[Callable[[str], T]], _CachedWhenShort[T]]:
    return lambda function: _CachedWhenShort(function, max_chars, maxsize)


@_cached_when_short(_CACHED_NAME_CHARS, 4096)  # jobs and push URLs repeat a few hundred names
def is_secret_name(name: str) -> bool:
    """Whether a field or parameter name looks like it holds a secret.

    Names are split into words (``snake_case``, ``kebab-case``, ``camelCase``), so
    ``stream_key``, ``hwSecret`` and ``X-Auth-Token`` match but ``task`` or ``speak`` do not.
    """
    words = _WORD_SPLIT.split(_CAMEL_BOUNDARY.sub(r"\1_\2", name).lower())
    return any(word in _SECRET_WORDS or word.endswith(_SECRET_SUFFIXES) for word in words)


class TooDeep(ValueError):
    """A document nested deeper than the limit it was redacted with."""


def _plain_name(name: str) -> str:
    """A query parameter's name as written, percent- and plus-decoded."""
    return unquote_plus(name) if "%" in name or "+" in name else name


@_cached_when_short(_CACHED_NAME_CHARS, 4096)
def _is_secret_param(name: str) -> bool:
    """Whether the query parameter written ``name`` holds a secret."""
    plain = _plain_name(name)
    return is_secret_name(plain) or plain.lower() in _SECRET_PARAMS


def _redact_query(query: str, every_value: bool, secret_params: Collection[str]) -> str:
    """The query with secret values replaced, the rest byte for byte as it came."""
    pairs = query.split("&")
    changed = False
    for index, pair in enumerate(pairs):
        name = pair.partition("=")[0]
        if (
            every_value
            or _is_secret_param(name)
            or (secret_params and _plain_name(name) in secret_params)
        ):
            pairs[index] = f"{name}={REDACTED}"
            changed = True
    return "&".join(pairs) if changed else query


def _without_stream_key(path: str) -> str:
    """A push URL's path with the stream key (the last segment after the application)
    replaced; as it is when there is no application or no key."""
    application, slash, stream = path.rstrip("/").rpartition("/")
    return application + slash + REDACTED if application.strip("/") and stream else path


@_cached_when_short(_CACHED_URL_CHARS, 1024)
def _redact_head(head: str) -> tuple[str, bool]:
    """A URL's part before its query and fragment, the stream key of a push URL replaced;
    and whether it is a push URL. Cached: a stream's URL comes back in each of its events
    with the same head (its query differs, a time in it)."""
    scheme, sep, rest = head.partition("://")
    if not sep:
        return head, False
    if scheme.lower() not in _PUSH_SCHEMES:
        return head, False
    host, slash, path = rest.partition("/")
    path = slash + path
    cleaned = _without_stream_key(path)
    return (f"{scheme}{sep}{host}{cleaned}" if cleaned != path else head), True


def _redact_plain_url(url: str, every_value: bool, secret_params: Collection[str]) -> str:
    """:func:`redact_url` for a URL without userinfo or a bracketed host (a push URL as
    MetaStudio sends it), by splitting the text: urlsplit/urlunsplit cost more than the
    rest of a callback's parse."""
    # As urlsplit reads it: the scheme first, then the fragment, then the query.
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    rest, hash_, fragment = rest.partition("#")
    rest, mark, query = rest.partition("?")
    head = url[: len(scheme) + len(sep) + len(rest)]
    cleaned_head, push = _redact_head(head)
    cleaned = query and _redact_query(query, every_value, secret_params)
    if fragment and push:  # SRT's ``streamid=#!::r=app/key`` puts the key here
        fragment = REDACTED
    elif cleaned_head == head and cleaned == query:
        return url
    return f"{cleaned_head}{mark}{cleaned}{hash_}{fragment}"


def redact_url(url: str, every_value: bool = False, secret_params: Collection[str] = ()) -> str:
    """``url`` with its credentials replaced: a userinfo password, secret-named query values
    (and those of ``secret_params``; every value with ``every_value``) and, for a push URL
    (``rtmp``, ``rtmps``, ``srt``), the stream key: the last path segment after the
    application, and any fragment."""
    if "@" not in url and "[" not in url:
        return _redact_plain_url(url, every_value, secret_params)
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL after all (a bracketed host that is no IPv6 address)
        return REDACTED
    netloc, path, query, fragment = parts.netloc, parts.path, parts.query, parts.fragment
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:{REDACTED}@{host}" if colon else f"{REDACTED}@{host}"
    if query:
        query = _redact_query(query, every_value, secret_params)
    if parts.scheme.lower() in _PUSH_SCHEMES:
        path = _without_stream_key(path)
        if fragment:  # SRT's ``streamid=#!::r=app/key`` puts the key here
            fragment = REDACTED
    if (netloc, path, query, fragment) == (parts.netloc, parts.path, parts.query, parts.fragment):
        return url
    cleaned = urlunsplit((parts.scheme, netloc, path, query, fragment))
    scheme = len(parts.scheme)  # urlsplit lowercases it: the text keeps its own
    return url[:scheme] + cleaned[scheme:]


def _is_lone_url(text: str) -> bool:
    """Whether ``text`` is one URL as :data:`_URL` matches it, by string methods alone."""
    scheme, sep, _ = text.partition("://")
    return (
        bool(sep)
        and scheme.lower() in _URL_SCHEMES
        # printable: no whitespace but the space (and no control character)
        and text.isprintable()
        and " " not in text
        and '"' not in text
        and "'" not in text
        and "<" not in text
        and ">" not in text
        and "\\" not in text
    )


def redact_text(text: str, every_value: bool = False) -> str:
    """``text`` with every URL in it passed through :func:`redact_url`."""
    if "://" not in text:  # the common case, without the regex
        return text
    if _is_lone_url(text):  # as a push URL comes: what the regex would find is all of it
        return redact_url(text, every_value)
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


def redact_message(message: dict[str, Any], max_depth: int) -> dict[str, Any]:
    """A callback message with every secret replaced, as :func:`redact_job` does, push-URL
    stream keys included; raise :class:`TooDeep` past ``max_depth`` levels.

    A message with nothing to redact (most callbacks) is returned as it is; any other is
    copied, its unchanged values shared.
    """
    if max_depth <= 0:
        raise TooDeep("nested deeper than the limit")
    redacted: dict[str, Any] | None = None
    for name, value in message.items():
        kind = type(value)
        if is_secret_name(name):
            cleaned = value if value is None or value == "" else REDACTED
        elif kind is str:
            if "://" not in value:
                continue
            cleaned = redact_text(value, name in _URLS_WITH_SECRET_QUERY)
        elif kind in _SCALARS:
            continue
        else:
            cleaned = _redact_any(value, max_depth - 1)
        if redacted is None:
            redacted = dict(message)
        redacted[name] = cleaned
    return message if redacted is None else redacted

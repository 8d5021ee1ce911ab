"""MetaStudio callback signatures (``MSS_A``, ``MSS_A_HEAD``): pure functions, no I/O.

``secret = hex(hmac_sha256(key, URI(callback_url) + time))`` with ``time`` the lowercase hex
of Unix seconds. What ``URI(...)`` means is a :class:`SigningRule`; the default
(``host_path_query``) is MetaStudio's custom-platform rule: the URL without its scheme,
its query sorted by name, the hex time appended with no separator.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit

from receiver.config import SigningRule

SECRET_PARAM = "hwSecret"  # noqa: S105 - a parameter name
TIME_PARAM = "hwTime"
SECRET_HEADER = "x-hw-mss-secret"  # noqa: S105 - a header name
TIME_HEADER = "x-hw-mss-time"
SIGNATURE_PARAMS = frozenset({SECRET_PARAM, TIME_PARAM})

# A hex time whose value is at least this is taken as milliseconds, not seconds
# (10**11 seconds is the year 5138; 10**11 milliseconds is 1973).
_MILLISECONDS_FROM = 10**11
_MAX_TIME_CHARS = 16
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def sorted_query(pairs: Iterable[tuple[str, str]]) -> str:
    """Query parameters sorted by name (then value), encoded as MetaStudio sends them."""
    return urlencode(sorted(pairs))


def query_pairs(query: str) -> list[tuple[str, str]]:
    """The query's parameters less ``hwSecret``/``hwTime``, blank values kept."""
    return [
        (name, value)
        for name, value in parse_qsl(query, keep_blank_values=True)
        if name not in SIGNATURE_PARAMS
    ]


def signed_prefix(callback_url: str, rule: SigningRule) -> bytes:
    """The part of the signed message that precedes the time, for a registered URL."""
    parts = urlsplit(callback_url)
    pairs = query_pairs(parts.query)
    path = parts.path or "/"
    query = sorted_query(pairs)
    if rule is SigningRule.FULL_URL:
        base = f"{parts.scheme}://{parts.netloc}{path}"
    elif rule is SigningRule.PATH_QUERY:
        base = path
    else:
        base = f"{parts.netloc}{path}"
    return (base + (f"?{query}" if query else "")).encode("utf-8")


def sign(
    key: str, callback_url: str, hex_time: str, rule: SigningRule = SigningRule.HOST_PATH_QUERY
) -> str:
    """The lowercase hex signature MetaStudio sends for ``callback_url`` at ``hex_time``."""
    message = signed_prefix(callback_url, rule) + hex_time.encode("ascii")
    return hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def hex_time(unix_seconds: float) -> str:
    """Lowercase hex of whole Unix seconds, as MetaStudio writes ``hwTime``."""
    return format(int(unix_seconds), "x")


def parse_hex_time(text: str) -> float | None:
    """Unix seconds from a hex time (seconds, or milliseconds detected); None if malformed."""
    if not text or len(text) > _MAX_TIME_CHARS or not _HEX_DIGITS.issuperset(text):
        return None
    value = int(text, 16)
    return value / 1000 if value >= _MILLISECONDS_FROM else float(value)


@dataclass(slots=True)
class Match:
    """Which signing rule a valid signature was made with."""

    rule: SigningRule


class Verifier:
    """Checks ``(secret, time)`` against every configured key and rule, in constant time."""

    __slots__ = ("_candidates",)

    def __init__(
        self, callback_url: str, keys: Sequence[str], rules: Sequence[SigningRule]
    ) -> None:
        prefixes = [(rule, signed_prefix(callback_url, rule)) for rule in rules]
        self._candidates = tuple(
            (rule, hmac.new(key.encode("utf-8"), prefix, hashlib.sha256))
            for rule, prefix in prefixes
            for key in keys
        )

    def verify(self, secret: str, time_text: str) -> Match | None:
        """The first (key, rule) pair whose HMAC equals ``secret``, or None."""
        if len(secret) != 64 or not secret.isascii():
            return None
        try:
            given = bytes.fromhex(secret)
            suffix = time_text.encode("ascii")
        except (ValueError, UnicodeEncodeError):
            return None
        for rule, keyed in self._candidates:
            mac = keyed.copy()
            mac.update(suffix)
            if hmac.compare_digest(mac.digest(), given):
                return Match(rule)
        return None

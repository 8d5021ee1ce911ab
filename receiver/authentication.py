"""Decides whether a callback request is genuine, from its headers and query alone.

The signature covers the registered URL and the time, not the body: so the query that
arrives (less ``hwSecret``/``hwTime``) must equal the registered one, the time must lie in
the window, and the returned ``proof`` (signature and time) feeds the event id that drops
replays.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from receiver.config import AuthSettings, AuthType
from receiver.signatures import (
    SECRET_HEADER,
    SECRET_PARAM,
    SIGNATURE_PARAMS,
    TIME_HEADER,
    TIME_PARAM,
    Verifier,
    parse_hex_time,
)

# Tokens are compared as HMACs under a key of this process: the digests have one length
# whatever the token's, and what a timing could tell about them says nothing of a token.
_TOKEN_DIGEST_KEY = os.urandom(32)
_SECRET_HEADER = SECRET_HEADER.encode()
_TIME_HEADER = TIME_HEADER.encode()
# Genuine (signature, time) pairs remembered: every callback signed in one second carries
# the same pair, so it is parsed and its HMAC computed once a second.
_GENUINE_MAX = 1024


def _is_hex(text: str) -> bool:
    """Whether ``text`` is hex digits only (``fromhex`` alone would skip whitespace)."""
    try:
        return len(bytes.fromhex(text)) * 2 == len(text)
    except ValueError:
        return False


@dataclass(slots=True, frozen=True)
class Verdict:
    """The outcome: ``code`` is empty when the request is genuine."""

    code: str
    detail: str
    auth_type: str = ""
    rule: str = ""
    proof: bytes = b""
    signed_at: float | None = None

    @property
    def ok(self) -> bool:
        return not self.code


def _token_digest(token: bytes) -> bytes:
    return hmac.new(_TOKEN_DIGEST_KEY, token, hashlib.sha256).digest()


def _refuse(code: str, detail: str) -> Verdict:
    return Verdict(code, detail)


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        return "\ufffd"  # non-ASCII: can never match, refused as malformed


class Authenticator:
    """Checks MSS_A, MSS_A_HEAD and NONE (URL token) proofs against the configured keys."""

    def __init__(self, settings: AuthSettings, callback_url: str, keys: Sequence[str]) -> None:
        self._types = frozenset(settings.type)
        self._tolerance = settings.tolerance_seconds
        self._token_param = settings.url_token_param
        self._allow_unauthenticated = settings.allow_unauthenticated
        self._token_digests = tuple(_token_digest(key.encode("utf-8")) for key in keys)
        self._verifier = Verifier(callback_url, keys, settings.rules)
        self._genuine: dict[tuple[AuthType, bytes | str | None, bytes | str | None], Verdict] = {}
        registered = urlsplit(callback_url).query
        self._registered_query = sorted(
            (name, value)
            for name, value in parse_qsl(registered, keep_blank_values=True)
            if name not in SIGNATURE_PARAMS
        )

    def check(self, headers: Mapping[bytes, bytes], query: str, now: float) -> Verdict:
        """Judge one request: ``headers`` with lowercase names, ``query`` as received."""
        pairs = parse_qsl(query, keep_blank_values=True) if query else []
        header_secret = headers.get(_SECRET_HEADER)
        header_time = headers.get(_TIME_HEADER)
        if AuthType.MSS_A_HEAD in self._types and (header_secret or header_time):
            return self._signed(AuthType.MSS_A_HEAD, header_secret, header_time, pairs, now)
        params = dict(pairs)
        if AuthType.MSS_A in self._types and (SECRET_PARAM in params or TIME_PARAM in params):
            return self._signed(
                AuthType.MSS_A, params.get(SECRET_PARAM), params.get(TIME_PARAM), pairs, now
            )
        if AuthType.NONE in self._types:
            return self._unsigned(pairs)
        return _refuse("missing_signature", "no MetaStudio signature in headers or query")

    def _signed(
        self,
        auth_type: AuthType,
        secret_raw: bytes | str | None,
        time_raw: bytes | str | None,
        pairs: list[tuple[str, str]],
        now: float,
    ) -> Verdict:
        key = (auth_type, secret_raw, time_raw)
        known = self._genuine.get(key)
        if known is not None:
            assert known.signed_at is not None
            return self._out_of_place(known.signed_at, pairs, now) or known
        secret, time_text = _text(secret_raw), _text(time_raw)
        if not secret or not time_text:
            return _refuse("missing_signature", "both the signature and the time are required")
        if len(secret) != 64 or not _is_hex(secret):
            return _refuse("malformed_signature", "the signature is not 64 hex digits")
        signed_at = parse_hex_time(time_text)
        if signed_at is None:
            return _refuse("malformed_signature", "the time is not hex Unix seconds")
        refused = self._out_of_place(signed_at, pairs, now)
        if refused is not None:
            return refused
        match = self._verifier.verify(secret, time_text)
        if match is None:
            return _refuse("bad_signature", "the signature does not match any key")
        proof = (secret.lower() + ":" + time_text).encode("ascii")
        # StrEnum members are their values: labels and logs see plain text
        verdict = Verdict("", "", auth_type, match.rule, proof, signed_at)
        if len(self._genuine) >= _GENUINE_MAX:
            self._genuine.clear()
        self._genuine[key] = verdict
        return verdict

    def _out_of_place(
        self, signed_at: float, pairs: list[tuple[str, str]], now: float
    ) -> Verdict | None:
        """The refusal of a signed time outside the window or a query not the registered one."""
        if signed_at < now - self._tolerance:
            return _refuse("signature_expired", f"signed more than {self._tolerance} s ago")
        if signed_at > now + self._tolerance:
            return _refuse("signature_from_future", f"signed over {self._tolerance} s ahead")
        if (pairs or self._registered_query) and sorted(
            p for p in pairs if p[0] not in SIGNATURE_PARAMS
        ) != self._registered_query:
            return _refuse("query_mismatch", "the query differs from the registered URL's")
        return None

    def _unsigned(self, pairs: list[tuple[str, str]]) -> Verdict:
        if self._token_param:
            tokens = [value for name, value in pairs if name == self._token_param]
            if len(tokens) != 1:
                return _refuse("missing_token", f"query parameter {self._token_param} required")
            given = _token_digest(tokens[0].encode("utf-8"))
            matched = False
            for digest in self._token_digests:  # every key, no early exit
                matched |= hmac.compare_digest(given, digest)
            if not matched:
                return _refuse("bad_token", "the URL token does not match any key")
            return Verdict("", "", AuthType.NONE.value, "url_token")
        if self._allow_unauthenticated:
            return Verdict("", "", AuthType.NONE.value, "unauthenticated")
        return _refuse("missing_token", "unauthenticated callbacks are not allowed")

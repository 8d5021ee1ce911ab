"""Console tokens: who may view and who may also replay and purge.

The tokens file holds one token per line, ``<role> <token>`` or, hashed at rest,
``<role> sha256:<hex>``; ``#`` starts a comment. Tokens are compared by their SHA-256 in
constant time, so the file may hold only hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from enum import StrEnum
from pathlib import Path


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"


class TokenFileError(ValueError):
    """The tokens file cannot be used (the message names the line, never a token)."""


def token_digest(token: str) -> str:
    """The hex SHA-256 of a token, as the file's hashed form holds it."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token (256 bits)."""
    return secrets.token_urlsafe(32)


class Tokens:
    """The tokens of a file, by digest; an empty set when the console is open (loopback)."""

    def __init__(self, digests: dict[str, Role]) -> None:
        self._digests = digests

    @property
    def open(self) -> bool:
        """No tokens configured: every local caller is an operator."""
        return not self._digests

    @classmethod
    def load(cls, path: Path | None) -> Tokens:
        """Read ``path`` (None: no tokens)."""
        if path is None:
            return cls({})
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise TokenFileError(f"admin.tokens_file {path}: {error.strerror}") from None
        digests: dict[str, Role] = {}
        for number, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2 or parts[0] not in Role.__members__.values():
                raise TokenFileError(f"admin.tokens_file line {number}: want '<role> <token>'")
            role, token = Role(parts[0]), parts[1]
            digest = token.removeprefix("sha256:") if token.startswith("sha256:") else None
            if digest is not None and (len(digest) != 64 or not _is_hex(digest)):
                raise TokenFileError(f"admin.tokens_file line {number}: bad sha256 digest")
            if digest is None and len(token) < 16:
                raise TokenFileError(f"admin.tokens_file line {number}: token under 16 chars")
            digests[digest or token_digest(token)] = role
        if not digests:
            raise TokenFileError(f"admin.tokens_file {path} holds no token")
        return cls(digests)

    def role_of(self, token: str) -> Role | None:
        """The role of ``token``, or None; constant time per configured token."""
        presented = token_digest(token)
        found: Role | None = None
        for digest, role in self._digests.items():
            if hmac.compare_digest(digest, presented):
                found = role
        return found


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text.lower())

"""Helpers every network sink shares: credential-free URLs and error text."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """``url`` without credentials: user information and query become ``***``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparsable url>"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    if parts.username is not None or parts.password is not None:
        netloc = f"***@{netloc}"
    query = "***" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def describe(error: BaseException, url: str) -> str:
    """``error`` as ``Type: text`` (the type alone if it has no text), ``url``'s secrets masked."""
    text = str(error) or type(error).__name__
    if text != type(error).__name__:
        text = f"{type(error).__name__}: {text}"
    return scrub(text, url)


def scrub(text: str, url: str) -> str:
    """``text`` with the credentials of ``url`` (and ``url`` itself) masked."""
    try:
        parts = urlsplit(url)
        secrets = [parts.password, parts.username, parts.query]
    except ValueError:
        secrets = []
    text = text.replace(url, redact_url(url))
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text

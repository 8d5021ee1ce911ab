"""``[admin]``: the console's listener, its tokens and how much history it keeps."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, model_validator

from receiver.section import Section


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AdminSettings(Section):
    """The admin listener: off unless ``enabled``; never on the callback port."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(9180, ge=1, le=65535)
    # Lines of ``<role> <token>`` or ``<role> sha256:<hex of the token's SHA-256>``, roles
    # ``viewer`` and ``operator``; without it only a loopback listener may start.
    tokens_file: Path | None = None
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    session_seconds: float = Field(8 * 3600, gt=0)
    history_events: int = Field(5000, ge=1, le=1_000_000)
    history_seconds: float = Field(3600, gt=0)
    history_bytes: int = Field(64 * 1024 * 1024, ge=1024 * 1024)
    rooms: int = Field(5000, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _exposed_needs_tokens(self) -> AdminSettings:
        if self.enabled and self.tokens_file is None and not is_loopback(self.host):
            raise ValueError(
                f"admin.host {self.host!r} is not a loopback address: set admin.tokens_file "
                "(or put the console behind an SSO proxy listening on loopback)"
            )
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("admin.tls_certfile and admin.tls_keyfile go together")
        return self

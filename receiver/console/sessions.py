"""Browser sessions: a random id in an HttpOnly, SameSite=Strict cookie, and a CSRF token."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from receiver.console.tokens import Role

COOKIE = "receiver_console"
MAX_SESSIONS = 10_000


@dataclass(frozen=True, slots=True)
class Session:
    role: Role
    csrf: str
    expires_at: float


class Sessions:
    """Sessions of this process (a restart logs everyone out), bounded in number."""

    def __init__(self, lifetime_seconds: float) -> None:
        self._lifetime = lifetime_seconds
        self._sessions: dict[str, Session] = {}

    def create(self, role: Role) -> tuple[str, Session]:
        """A new session id and its session."""
        now = time.time()
        if len(self._sessions) >= MAX_SESSIONS:
            self._sessions = {k: s for k, s in self._sessions.items() if s.expires_at > now}
            while len(self._sessions) >= MAX_SESSIONS:  # the oldest go first
                del self._sessions[next(iter(self._sessions))]
        session_id = secrets.token_urlsafe(32)
        session = Session(role, secrets.token_urlsafe(32), now + self._lifetime)
        self._sessions[session_id] = session
        return session_id, session

    def get(self, session_id: str) -> Session | None:
        """The live session of ``session_id``, or None."""
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.expires_at <= time.time():
            del self._sessions[session_id]
            return None
        return session

    def end(self, session_id: str) -> None:
        """Log out."""
        self._sessions.pop(session_id, None)

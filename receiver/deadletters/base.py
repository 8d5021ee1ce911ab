"""The dead-letter interface: what every store (sqlite, and shared backends) provides.

Callers hold a ``BaseDeadLetterStore`` and use only these methods, so the store behind
them can change with the deployment.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

MAX_ERROR_CHARS = 2000
CLAIM_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One event one sink could not deliver. Times are Unix seconds."""

    id: int
    event_id: str
    sink: str
    body: bytes
    attempts: int
    last_error: str
    first_attempt_at: float
    dead_at: float

    def summary(self) -> dict[str, Any]:
        """Everything but the body, and the body's size (for listings)."""
        return {
            "id": self.id,
            "event_id": self.event_id,
            "sink": self.sink,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "first_attempt_at": self.first_attempt_at,
            "dead_at": self.dead_at,
            "bytes": len(self.body),
        }


class BaseDeadLetterStore(ABC):
    """A durable store of dead letters, oldest first, addressed by id."""

    @abstractmethod
    async def add(
        self,
        event_id: str,
        sink: str,
        body: bytes,
        attempts: int,
        last_error: str,
        first_attempt_at: float,
        dead_at: float,
    ) -> int:
        """Store a letter durably and return its id. ``last_error`` must be redacted."""

    @abstractmethod
    async def list(self, sink: str | None = None, limit: int = 100) -> builtins.list[DeadLetter]:
        """Letters oldest first, of one sink or of all."""

    @abstractmethod
    async def get(self, letter_id: int) -> DeadLetter | None:
        """The letter with this id, or None."""

    @abstractmethod
    async def remove(self, letter_id: int) -> bool:
        """Delete one letter; whether it existed (so a remove is also a claim)."""

    @abstractmethod
    async def claim(self, letter_id: int, seconds: float = CLAIM_SECONDS) -> bool:
        """Reserve a stored letter for one replayer for ``seconds``; False if it is gone or
        another caller holds it. Of concurrent callers exactly one wins; a claim that is
        neither removed nor released lapses, so a replayer that died loses no letter."""

    @abstractmethod
    async def release(self, letter_id: int) -> None:
        """Drop the claim on a letter that stays (its delivery failed)."""

    @abstractmethod
    async def purge(self, sink: str | None = None) -> int:
        """Delete every letter (of one sink, or of all); how many were deleted."""

    @abstractmethod
    async def count(self, sink: str | None = None) -> int:
        """How many letters are stored (of one sink, or of all)."""

    @abstractmethod
    async def close(self) -> None:
        """Release the store; further calls raise RuntimeError."""

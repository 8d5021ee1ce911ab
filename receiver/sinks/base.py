"""The one interface every sink implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class DeliveryError(Exception):
    """A publish failed. ``retryable`` False sends the event to the dead letters at once."""

    def __init__(self, detail: str, *, retryable: bool = True) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retryable = retryable


class Sink(ABC):
    """A destination for envelopes. ``publish`` returns only once the destination confirmed.

    Implementations connect lazily and reconnect on their own: ``start`` must not fail
    because a broker is down (the pipeline retries ``publish``), only on a bad setting.
    """

    def __init__(self, name: str, *, critical: bool = False) -> None:
        self.name = name
        self.critical = critical

    async def start(self) -> None:
        """Prepare the sink (open files, start connecting)."""

    @abstractmethod
    async def publish(self, envelope: dict[str, Any], body: bytes) -> None:
        """Deliver one envelope (``body`` is its JSON encoding); raise DeliveryError."""

    async def close(self) -> None:
        """Flush and release connections."""

    def is_ready(self) -> bool:
        """Whether the destination is reachable as far as the sink knows."""
        return True

"""The one interface every sink implements, and what the broker sinks share."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Generic, TypeVar

from receiver.sinks.payload import Payload, PayloadShape, shape_payload

Link = TypeVar("Link")
Delivery = tuple[dict[str, Any], bytes]  # an envelope and its JSON encoding


class DeliveryError(Exception):
    """A publish failed. ``retryable`` False sends the event to the dead letters at once."""

    def __init__(self, detail: str, *, retryable: bool = True) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retryable = retryable


class InvalidDestination(DeliveryError):
    """The destination rendered for an event is one the sink cannot use (a file name too
    long, a routing key over 255 bytes, an invalid subject or topic): never retried."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, retryable=False)


class Sink(ABC):
    """A destination for envelopes. ``publish`` returns only once the destination confirmed.

    Implementations connect lazily and reconnect on their own: ``start`` must not fail
    because a broker is down (the pipeline retries ``publish``), only on a bad setting.
    """

    # Lanes of this sink in the pipeline: None for ``pipeline.lanes`` (publishes to rooms of
    # different lanes run concurrently); 1 for a sink that confirms a batch at once.
    lanes: ClassVar[int | None] = None

    def __init__(
        self, name: str, *, critical: bool = False, payload: str = PayloadShape.CLOUDEVENT
    ) -> None:
        self.name = name
        self.critical = critical
        self.payload = PayloadShape(payload)

    def shaped(self, envelope: dict[str, Any], body: bytes) -> Payload:
        """What to send for ``envelope``: see :mod:`receiver.sinks.payload`."""
        return shape_payload(self.payload, envelope, body)

    async def start(self) -> None:
        """Prepare the sink (open files, start connecting)."""

    @abstractmethod
    async def publish(self, envelope: dict[str, Any], body: bytes) -> None:
        """Deliver one envelope (``body`` is its JSON encoding); raise DeliveryError."""

    async def publish_batch(self, batch: Sequence[Delivery]) -> list[BaseException | None]:
        """Deliver in order; one outcome per event tried, None when confirmed.

        Events past the returned outcomes were not tried. This one publishes one at a time
        and stops at the first failure, so a room's later events never overtake it.
        """
        outcomes: list[BaseException | None] = []
        for envelope, body in batch:
            try:
                await self.publish(envelope, body)
            except Exception as error:  # a sink bug counts as a failed publish
                outcomes.append(error)
                break
            outcomes.append(None)
        return outcomes

    async def close(self) -> None:
        """Flush and release connections."""

    def is_ready(self) -> bool:
        """Whether the destination is reachable as far as the sink knows."""
        return True


class BrokerSink(Sink, Generic[Link]):
    """A sink publishing over a broker connection it opens itself, on first use.

    ``_link`` hands out what ``_open`` returns (a client, an exchange, a producer), one
    attempt at a time: calls that queued behind a failing attempt fail with it instead of
    each waiting for a timeout of their own. ``start`` only logs a broker that is down.
    """

    def __init__(
        self,
        name: str,
        *,
        critical: bool,
        timeout_seconds: float,
        payload: str = PayloadShape.CLOUDEVENT,
    ) -> None:
        super().__init__(name, critical=critical, payload=payload)
        self._timeout = timeout_seconds
        self._lock = asyncio.Lock()
        self._failed_at = -math.inf
        self._failure = ""

    async def start(self) -> None:
        """Try to connect; a broker that is down is only logged (publishes try again)."""
        try:
            await self._link()
        except DeliveryError as error:
            log = logging.getLogger(type(self).__module__)
            log.warning("sink %s: %s; will retry on publish", self.name, error.detail)

    async def _link(self) -> Link:
        """What ``_open`` returns, unless the attempt made while this call waited failed."""
        asked_at = time.monotonic()
        async with self._lock:
            if self._failed_at >= asked_at:
                raise DeliveryError(self._failure)
            try:
                return await self._open()
            except DeliveryError as error:
                self._failed_at, self._failure = time.monotonic(), error.detail
                raise

    @abstractmethod
    async def _open(self) -> Link:
        """The open connection, connecting first if needed; raise DeliveryError."""

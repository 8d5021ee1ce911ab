"""The one retry policy: exponential backoff with full jitter, bounded by attempts and age.

Every retry loop of the receiver (a sink's publish, the dead-letter store, intake reads and
acks, MetaStudio API calls, enrichment lookups) waits :meth:`Backoff.delay` between tries;
:class:`RetryPolicy` adds the bounds after which a failing step gives up, and
:func:`retry_until_done` runs a step that must eventually succeed (nothing else can be
done meanwhile) until it does.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Full jitter: try ``n`` (0-based) waits uniformly in ``[0, min(cap, base * 2**n)]``."""

    base: float
    cap: float
    jitter: Callable[[], float] = field(default=random.random, compare=False)

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first retry)."""
        ceiling = min(self.cap, self.base * 2.0 ** min(retry, 60))
        return float(self.jitter() * ceiling)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A backoff and the bounds of a step that may give up: attempts and age."""

    backoff: Backoff
    max_attempts: int
    max_age_seconds: float

    def exhausted(self, attempts: int, age_seconds: float) -> bool:
        """Whether a step that failed ``attempts`` times over ``age_seconds`` gives up."""
        return attempts >= self.max_attempts or age_seconds >= self.max_age_seconds


async def retry_until_done(
    step: Callable[[], Awaitable[T]],
    backoff: Backoff,
    *,
    what: str,
    logger: logging.Logger,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Run ``step`` until it returns, logging each failure and waiting ``backoff`` between.

    For steps nothing can go on without (an ack, storing a dead letter): they are retried
    for as long as the process runs. Cancellation ends the loop.
    """
    retry = 0
    while True:
        try:
            return await step()
        except Exception as error:
            logger.warning("%s failed; retrying", what, extra={"error": repr(error)})
        await sleep(backoff.delay(retry))
        retry += 1

"""An asyncio token bucket shared by every caller of one client.

Each :meth:`RateLimiter.acquire` takes a token at once if one is there, otherwise it
reserves the next one (the bucket goes into debt) and sleeps exactly until it is due, so
waiters are served in arrival order and nothing polls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateLimiter:
    """At most ``rate`` acquisitions per second on average, bursts up to ``burst``."""

    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = burst
        self._updated = clock()
        self.acquired = 0
        self.waited = 0

    def __repr__(self) -> str:
        return f"RateLimiter(rate={self.rate!r}, burst={self.burst!r})"

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._updated = now

    def reserve(self) -> float:
        """Take one token now and return how many seconds to wait before using it."""
        self._refill()
        self._tokens -= 1
        self.acquired += 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    async def acquire(self) -> None:
        """Wait for this caller's turn."""
        delay = self.reserve()
        if delay <= 0:
            return
        self.waited += 1
        try:
            await self._sleep(delay)
        except asyncio.CancelledError:
            # Hand the unused slot back so a cancelled caller does not slow the others.
            self._tokens += 1
            raise

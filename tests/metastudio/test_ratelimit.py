"""The token bucket, driven by a fake clock: spacing, bursts, order, cancellation."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from receiver.metastudio import RateLimiter


class FakeTime:
    """A clock that only moves when a sleeper sleeps (or the test advances it)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay
        await asyncio.sleep(0)


def _limiter(rate: float, burst: float = 1.0) -> tuple[RateLimiter, FakeTime]:
    fake = FakeTime()
    return RateLimiter(rate, burst, clock=fake.clock, sleep=fake.sleep), fake


async def test_sequential_callers_are_spaced_one_interval_apart() -> None:
    limiter, fake = _limiter(10)
    moments = []
    for _ in range(5):
        await limiter.acquire()
        moments.append(fake.now)
    gaps = [round(b - a, 9) for a, b in itertools.pairwise(moments)]
    assert gaps == [0.1, 0.1, 0.1, 0.1]
    assert limiter.acquired == 5
    assert limiter.waited == 4


async def test_concurrent_callers_get_increasing_reservations_in_arrival_order() -> None:
    fake = FakeTime()
    waits: list[float] = []

    async def record(delay: float) -> None:
        waits.append(delay)
        await asyncio.sleep(0)

    limiter = RateLimiter(4, clock=fake.clock, sleep=record)
    order: list[int] = []

    async def caller(index: int) -> None:
        await limiter.acquire()
        order.append(index)

    await asyncio.gather(*(caller(i) for i in range(5)))
    assert waits == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert order == [0, 1, 2, 3, 4]


async def test_burst_passes_at_once_then_throttles() -> None:
    limiter, fake = _limiter(2, burst=3)
    for _ in range(3):
        await limiter.acquire()
    assert fake.sleeps == []
    await limiter.acquire()
    assert fake.sleeps == [pytest.approx(0.5)]


async def test_idle_time_refills_but_not_beyond_the_burst() -> None:
    limiter, fake = _limiter(10, burst=2)
    await limiter.acquire()
    await limiter.acquire()
    fake.now += 60
    await limiter.acquire()
    await limiter.acquire()
    assert fake.sleeps == []
    await limiter.acquire()
    assert fake.sleeps == [pytest.approx(0.1)]


async def test_a_cancelled_waiter_gives_its_slot_back() -> None:
    fake = FakeTime()
    release = asyncio.Event()

    async def blocking_sleep(delay: float) -> None:
        fake.sleeps.append(delay)
        await release.wait()

    limiter = RateLimiter(1, clock=fake.clock, sleep=blocking_sleep)
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    assert fake.sleeps == [1.0]
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limiter.reserve() == pytest.approx(1.0), "the next caller waits one slot, not two"


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(0)
    with pytest.raises(ValueError, match="burst"):
        RateLimiter(1, burst=0.5)

"""Post callbacks to a receiver exactly as MetaStudio signs them, at a paced rate.

Rooms are served round-robin; within a room the next callback leaves only after the
previous one got its answer, so each room's order is kept. Concurrency is bounded and the
number of callbacks is finite: :func:`send_plan` returns when they are all answered.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

from receiver.config import AuthType, SigningRule
from receiver.signatures import SECRET_HEADER, SECRET_PARAM, TIME_HEADER, TIME_PARAM, hex_time, sign
from receiver.simulator.scenario import Callback


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how to deliver: the URL as registered at MetaStudio, the key, the auth type."""

    url: str
    key: str = ""
    auth_type: AuthType = AuthType.MSS_A_HEAD
    rule: SigningRule = SigningRule.HOST_PATH_QUERY

    def signed(self, now: float) -> tuple[str, dict[str, str]]:
        """``(request URL, extra headers)`` carrying the proof for a request made at ``now``."""
        if self.auth_type is AuthType.NONE:
            return self.url, {}
        when = hex_time(now)
        secret = sign(self.key, self.url, when, self.rule)
        if self.auth_type is AuthType.MSS_A_HEAD:
            return self.url, {SECRET_HEADER: secret, TIME_HEADER: when}
        separator = "&" if "?" in self.url else "?"
        return f"{self.url}{separator}{urlencode({SECRET_PARAM: secret, TIME_PARAM: when})}", {}


def _percentile(ordered: Sequence[float], fraction: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


@dataclass
class Summary:
    """What a run did: callbacks sent, answers per status (or error name), latencies."""

    sent: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    elapsed_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready report with latency percentiles in milliseconds."""
        ordered = sorted(self.latencies_ms)
        latency = {
            "min": round(ordered[0], 3) if ordered else 0.0,
            "p50": round(_percentile(ordered, 0.50), 3),
            "p90": round(_percentile(ordered, 0.90), 3),
            "p99": round(_percentile(ordered, 0.99), 3),
            "max": round(ordered[-1], 3) if ordered else 0.0,
            "mean": round(sum(ordered) / len(ordered), 3) if ordered else 0.0,
        }
        rate = self.sent / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0
        return {
            "sent": self.sent,
            "statuses": dict(sorted(self.statuses.items())),
            "latency_ms": latency,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "rate_per_second": round(rate, 2),
        }


class Pacer:
    """Spaces request starts ``1/rate`` seconds apart (no pacing when ``rate`` is None)."""

    def __init__(self, rate: float | None) -> None:
        self._interval = 1.0 / rate if rate else 0.0
        self._next = time.monotonic()

    async def wait(self) -> None:
        """Sleep until the next slot is due."""
        if not self._interval:
            return
        now = time.monotonic()
        slot = max(self._next, now)
        self._next = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)


class _Run:
    """One delivery run: the shared state of its workers."""

    def __init__(
        self, plan: Mapping[str, Sequence[Callback]], count: int | None, workers: int
    ) -> None:
        self.lanes: dict[str, Iterator[Callback]] = {
            room: iter(events) for room, events in plan.items() if events
        }
        self.budget = count if count is not None else sum(len(ev) for ev in plan.values())
        self.active = len(self.lanes)
        self.workers = workers
        self.ready: asyncio.Queue[str | None] = asyncio.Queue()
        for room in self.lanes:
            self.ready.put_nowait(room)
        if self.active == 0:
            self._stop()

    def _stop(self) -> None:
        for _ in range(self.workers):
            self.ready.put_nowait(None)

    def retire(self) -> None:
        """A room is done (exhausted, or the budget is spent)."""
        self.active -= 1
        if self.active == 0:
            self._stop()

    def take(self, room: str) -> Callback | None:
        """The room's next callback, if any is left and the budget allows it."""
        if self.budget <= 0:
            return None
        event = next(self.lanes[room], None)
        if event is not None:
            self.budget -= 1
        return event


async def _post(
    client: httpx.AsyncClient,
    target: Target,
    event: Callback,
    summary: Summary,
    clock: Callable[[], float],
) -> None:
    url, headers = target.signed(clock())
    headers["content-type"] = "application/json"
    started = time.perf_counter()
    try:
        response = await client.post(url, content=event.body(), headers=headers)
        outcome = str(response.status_code)
    except httpx.HTTPError as error:
        outcome = f"error:{type(error).__name__}"
    summary.latencies_ms.append((time.perf_counter() - started) * 1000)
    summary.statuses[outcome] += 1
    summary.sent += 1


async def send_plan(
    plan: Mapping[str, Sequence[Callback]],
    target: Target,
    *,
    rate: float | None = None,
    concurrency: int = 8,
    count: int | None = None,
    insecure: bool = False,
    http_timeout: float = 10.0,
    client: httpx.AsyncClient | None = None,
    clock: Callable[[], float] = time.time,
) -> Summary:
    """Deliver ``plan`` (room id → ordered callbacks) to ``target``; at most ``count``.

    ``rate`` is in callbacks per second, ``insecure`` skips TLS verification (self-signed
    development certificates), ``clock`` gives the Unix time each signature is made at.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    summary = Summary()
    pacer = Pacer(rate)
    run = _Run(plan, count, concurrency)
    own = client is None
    http = client or httpx.AsyncClient(verify=not insecure, timeout=http_timeout)

    async def worker() -> None:
        while (room := await run.ready.get()) is not None:
            event = run.take(room)
            if event is None:
                run.retire()
                continue
            await pacer.wait()
            await _post(http, target, event, summary, clock)
            run.ready.put_nowait(room)

    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        summary.elapsed_seconds = time.perf_counter() - started
        if own:
            await http.aclose()
    return summary

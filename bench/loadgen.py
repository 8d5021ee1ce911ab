"""An open-loop, paced load generator (wrk2 is not in Debian): ``python -m bench.loadgen``.

Requests are scheduled at a fixed rate from the start of the run, whatever the server
does; a pool of keep-alive connections (raw HTTP/1.1 on uvloop) sends them. A request
that waits for a free connection keeps its scheduled time, so latencies are measured from
when it should have been sent (no coordinated omission). Bodies are generated on the fly
(unique, signed with the current second), so a run may last as long as needed.

Input: a JSON spec file; output: a JSON result file (see :class:`Spec` and ``_report``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
import uvloop

from bench.pool import Bodies, Proof, live_jobs, proof_at, signed_request


@dataclass(frozen=True)
class Spec:
    """What to send: ``rate`` requests/s for ``duration`` seconds over ``connections``."""

    port: int
    rate: float
    duration: float
    connections: int
    jobs: int
    salt: str
    record_ids: bool = False


@dataclass
class _State:
    sent: int = 0
    latencies: list[float] | None = None
    statuses: Counter[int] | None = None
    errors: Counter[str] | None = None
    max_lag: float = 0.0


class _Signer:
    """The signature of the current second, computed once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._proof: Proof | None = None

    def now(self) -> Proof:
        second = int(time.time())
        if second != self._second or self._proof is None:
            self._second, self._proof = second, proof_at(second)
        return self._proof


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:].strip())
    if length:
        await reader.readexactly(length)
    return status


async def _worker(
    port: int,
    queue: asyncio.Queue[tuple[float, bytes] | None],
    state: _State,
) -> None:
    assert state.latencies is not None and state.statuses is not None
    assert state.errors is not None
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while True:
        item = await queue.get()
        if item is None:
            break
        scheduled, request = item
        try:
            if writer is None or reader is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            status = await _read_response(reader)
        except (OSError, asyncio.IncompleteReadError, ValueError) as error:
            state.errors[type(error).__name__] += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            continue
        state.latencies.append(time.perf_counter() - scheduled)
        state.statuses[status] += 1
    if writer is not None:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def run(spec: Spec) -> dict[str, Any]:
    """Send the load; the report (counts, statuses, latency percentiles, ids if asked)."""
    bodies = Bodies(live_jobs(spec.jobs), spec.salt)
    signer = _Signer()
    host = f"127.0.0.1:{spec.port}"
    state = _State(latencies=[], statuses=Counter(), errors=Counter())
    sent_at: list[tuple[str, float]] = []
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
    workers = [
        asyncio.create_task(_worker(spec.port, queue, state)) for _ in range(spec.connections)
    ]
    start = time.perf_counter()
    wall_start = time.time()
    total = int(spec.rate * spec.duration)
    index = 0
    while index < total:
        now = time.perf_counter()
        due = min(total, int((now - start) * spec.rate) + 1)
        state.max_lag = max(state.max_lag, now - (start + index / spec.rate))
        while index < due:
            body = next(bodies)
            proof = signer.now()
            if spec.record_ids:
                sent_at.append((proof.event_id(body), time.time()))
            queue.put_nowait((start + index / spec.rate, signed_request(body, proof, host)))
            index += 1
        await asyncio.sleep(max(0.0, start + index / spec.rate - time.perf_counter()))
    state.sent = index
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    return _report(spec, state, elapsed, wall_start, sent_at)


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _report(
    spec: Spec, state: _State, elapsed: float, wall_start: float, sent_at: list[tuple[str, float]]
) -> dict[str, Any]:
    assert state.latencies is not None and state.statuses is not None
    assert state.errors is not None
    latencies = state.latencies
    return {
        "spec": asdict(spec),
        "scheduled": state.sent,
        "completed": len(latencies),
        "elapsed_s": elapsed,
        "wall_start": wall_start,
        "achieved_rate": len(latencies) / elapsed if elapsed else 0.0,
        "statuses": {str(code): count for code, count in sorted(state.statuses.items())},
        "ok": sum(count for code, count in state.statuses.items() if 200 <= code < 300),
        "errors": dict(state.errors),
        "max_schedule_lag_ms": state.max_lag * 1000,
        "http_p50_ms": _percentile(latencies, 0.50) * 1000,
        "http_p99_ms": _percentile(latencies, 0.99) * 1000,
        "http_max_ms": max(latencies, default=0.0) * 1000,
        "sent_at": sent_at,
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    parser.add_argument("spec", type=Path, help="JSON spec (bench.loadgen.Spec fields)")
    parser.add_argument("out", type=Path, help="where to write the JSON report")
    args = parser.parse_args()
    spec = Spec(**orjson.loads(args.spec.read_bytes()))
    report = uvloop.run(run(spec))
    args.out.write_bytes(orjson.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

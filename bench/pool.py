"""Signed MetaStudio callbacks for the load generators: bodies, signatures, event ids.

Bodies are realistic live-room callbacks (``SHOOT_SCRIPT_SWITCH``, ``REPLY_COMMAND_FINISH``,
``RTMP_STREAM_STATE_CHANGE``; 200-370 bytes, about 300 on average) for the live jobs of
the simulator's generated tenant, every one unique. The ``MSS_A_HEAD`` signature covers the
registered URL and the hex time, not the body, so a *signed request* is a (body, hex time) pair; its
event id (what the receiver deduplicates on) is derived exactly as the receiver does.

For wrk, :func:`write_lua` writes a pool of ``N`` unique bodies and a list of signed
times into a Lua script: each wrk thread walks its share of the bodies with the first
time, then again with the next time, and so on, so no request is ever a replay.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from receiver.envelope import event_id
from receiver.signatures import hex_time, sign
from receiver.simulator.jobs import generate_jobs, live_job_per_room
from receiver.simulator.scenario import reply_event, rtmp_event, script_event

PUBLIC_URL = "https://callbacks.bench.example/callbacks/metastudio"
CALLBACK_PATH = "/callbacks/metastudio"
CALLBACK_KEY = "bench-callback-key-0001"
PROJECT_ID = "benchproject0000000000000000001"
SEED = "bench"
# Event mix per ten callbacks: script switches, reply notifications, RTMP state changes
# (states that do not end a live: a steady-state room).
_MIX = ("S", "T", "S", "R", "T", "S", "T", "S", "R", "T")
_STEADY_STREAM_STATES = ("CONNECTED", "RECONNECTING", "CONNECTED", "CONNECTING")


@dataclass(frozen=True, slots=True)
class LiveJob:
    """A live job of the simulated tenant: what a callback names."""

    room_id: str
    job_id: str
    job: Mapping[str, Any]


def tenant_jobs(live_jobs: int) -> tuple[int, list[dict[str, Any]]]:
    """``(count, jobs)``: the smallest generated tenant with ``live_jobs`` streaming rooms."""
    count = max(16, live_jobs * 2)
    while True:
        jobs = generate_jobs(count, SEED, PROJECT_ID, callback_url=PUBLIC_URL)
        live = [job for job in live_job_per_room(jobs) if job["state"] == "PROCESSING"]
        if len(live) >= live_jobs:
            return count, jobs
        count = int(count * 1.3) + 1


def live_jobs(count: int) -> list[LiveJob]:
    """The first ``count`` streaming (``PROCESSING``) jobs, one per room."""
    _total, jobs = tenant_jobs(count)
    live = [job for job in live_job_per_room(jobs) if job["state"] == "PROCESSING"]
    return [LiveJob(str(job["room_id"]), str(job["job_id"]), job) for job in live[:count]]


class Bodies:
    """An endless stream of unique callback bodies spread round-robin over ``jobs``."""

    def __init__(self, jobs: Sequence[LiveJob], salt: str) -> None:
        if not jobs:
            raise ValueError("need at least one live job")
        self._jobs = jobs
        self._rng = random.Random(f"bench-bodies:{salt}")
        # Pools with other salts (a warm-up, the other server) may be signed at overlapping
        # times: script numbers start at a salt-derived base so bodies differ across pools.
        digest = hashlib.sha256(salt.encode("utf-8")).digest()
        self._sequence_base = int.from_bytes(digest[:4], "big") % 100_000 * 1000
        self._index = 0

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        index = self._index
        self._index += 1
        live = self._jobs[index % len(self._jobs)]
        kind = _MIX[(index // len(self._jobs)) % len(_MIX)]
        if kind == "S":
            sequence_no = self._sequence_base + index // len(self._jobs) + 1
            callback = script_event(live.job, sequence_no, self._rng)
        elif kind == "R":
            callback = reply_event(live.job, self._rng)
        else:
            state = _STEADY_STREAM_STATES[index % len(_STEADY_STREAM_STATES)]
            base = rtmp_event(live.job, state)
            message = dict(base.message)
            # Push URLs carry a per-session auth query; it also makes every body unique.
            message["output_url"] = (
                f"{message['output_url']}?txTime={self._rng.getrandbits(32):08x}"
                f"&txSecret={self._rng.getrandbits(128):032x}"
            )
            return orjson.dumps({"event_type": base.event_type, "message": _json(message)})
        return callback.body()


def _json(document: Mapping[str, Any]) -> str:
    return orjson.dumps(document).decode()


@dataclass(frozen=True, slots=True)
class Proof:
    """One signed time: the ``x-hw-mss-secret`` and ``x-hw-mss-time`` header values."""

    secret: str
    time: str

    def event_id(self, body: bytes) -> str:
        """The id the receiver derives for ``body`` sent with this proof."""
        return event_id(body, f"{self.secret.lower()}:{self.time}".encode("ascii"))


def proof_at(unix_seconds: float, key: str = CALLBACK_KEY, url: str = PUBLIC_URL) -> Proof:
    """The signature MetaStudio would send at ``unix_seconds``."""
    when = hex_time(unix_seconds)
    return Proof(sign(key, url, when), when)


def pass_proofs(now: float, passes: int) -> list[Proof]:
    """Signed times for successive passes over a pool: now, now-1, now+1, now-2, ...

    All lie within ``passes // 2 + 1`` seconds of ``now``, well inside the receiver's
    120 s window for a run of a minute or less.
    """
    offsets = [0] + [sign_ * step for step in range(1, passes) for sign_ in (-1, 1)]
    return [proof_at(now + offset) for offset in offsets[:passes]]


def signed_request(body: bytes, proof: Proof, host: str) -> bytes:
    """One HTTP/1.1 request as raw bytes (keep-alive)."""
    head = (
        f"POST {CALLBACK_PATH} HTTP/1.1\r\n"
        f"host: {host}\r\n"
        "content-type: application/json\r\n"
        f"x-hw-mss-secret: {proof.secret}\r\n"
        f"x-hw-mss-time: {proof.time}\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


_LUA = """\
-- Generated by bench/pool.py: {count} unique signed MetaStudio callbacks (MSS_A_HEAD).
-- Thread t (0-based) of {threads} sends bodies t+1, t+1+{threads}, ... with the first
-- signed time, then the same bodies with the next time: every request is unique.
local path = "{path}"
local threads = {threads}
local proofs = {{
{proofs}
}}
local bodies = {{
{bodies}
}}
local next_tid = 0

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
end

function init(args)
  index = tid + 1
  pass = 1
  exhausted = 0
end

function request()
  if index > #bodies then
    index = tid + 1
    pass = pass + 1
    if pass > #proofs then
      pass = 1
      exhausted = exhausted + 1
    end
  end
  local proof = proofs[pass]
  local body = bodies[index]
  index = index + threads
  return wrk.format("POST", path, {{
    ["content-type"] = "application/json",
    ["x-hw-mss-secret"] = proof[1],
    ["x-hw-mss-time"] = proof[2],
  }}, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {{"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end
"""


def lua_script(bodies: Sequence[bytes], proofs: Sequence[Proof], threads: int) -> str:
    """The wrk script serving ``bodies`` x ``proofs`` (see the module docstring)."""
    for body in bodies:
        if b"]==]" in body or b"\n" in body:
            raise ValueError("a body cannot be embedded in a Lua long string")
    return _LUA.format(
        count=len(bodies) * len(proofs),
        threads=threads,
        path=CALLBACK_PATH,
        proofs=",\n".join(f'  {{"{p.secret}", "{p.time}"}}' for p in proofs),
        bodies=",\n".join(f"  [==[{body.decode('utf-8')}]==]" for body in bodies),
    )


def write_lua(
    path: Path, *, bodies: int, passes: int, threads: int, now: float, salt: str, jobs: int = 200
) -> tuple[list[bytes], list[Proof]]:
    """Write a wrk script with ``bodies`` unique bodies signed at ``passes`` times."""
    source = Bodies(live_jobs(jobs), salt)
    pool = [next(source) for _ in range(bodies)]
    proofs = pass_proofs(now, passes)
    path.write_text(lua_script(pool, proofs, threads), encoding="utf-8")
    return pool, proofs

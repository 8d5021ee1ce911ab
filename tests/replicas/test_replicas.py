"""Three ``receiver serve`` processes sharing one intake on a real broker, one killed mid-load.

Every process is registered under the same public URL (signatures cover that URL, not the
port), so the simulator's live-session load is sent to the three ports in turn with the
same signed URL. Every process routes to one shared broker sink (which keeps the global
order) and to its own JSONL file (which shows raw duplicates). Checked: every event
answered 2xx reaches the shared sink, order per room holds once repeated ids are dropped,
repeats are only of ids, and one replayed callback sent to two replicas is stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import nats
import orjson
import pytest
import redis.asyncio as aioredis

from receiver.simulator.jobs import generate_jobs
from receiver.simulator.scenario import live_sessions, plan_size
from receiver.simulator.sender import Target, send_plan
from tests.brokers import NATS, NATS_URL, REDIS, REDIS_URL, first_seen, require_service, unique
from tests.helpers import KEY, ReceiverProcess, callback_body, free_port, signed_headers

PUBLIC_URL = "http://callbacks.replicas.test/callbacks/metastudio"
ROOMS = 12
COUNT = 720
RATE = 80.0


@dataclass
class Backend:
    name: str
    intake: str
    sink: str
    out: str


@dataclass
class Answers:
    """What the sender got back, per room in send order."""

    accepted: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter[str] = field(default_factory=Counter)


class RoundRobin(httpx.AsyncBaseTransport):
    """Sends each request to the next live port on 127.0.0.1 and records the answers."""

    def __init__(self, ports: list[int], answers: Answers) -> None:
        self.ports, self.dead, self.answers = ports, set[int](), answers
        self._turn = itertools.cycle(ports)
        self._inner = httpx.AsyncHTTPTransport()
        self.sent = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        port = next(p for p in self._turn if p not in self.dead)
        request.url = request.url.copy_with(host="127.0.0.1", port=port)
        self.sent += 1
        response = await self._inner.handle_async_request(request)
        await response.aread()
        room = orjson.loads(orjson.loads(request.content)["message"])["room_id"]
        if response.status_code == 200:
            answer = orjson.loads(response.content)
            self.answers.statuses[answer["status"]] += 1
            if answer["status"] == "accepted":
                self.answers.accepted[room].append(answer["id"])
        else:
            self.answers.statuses[str(response.status_code)] += 1
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def config(directory: Path, index: int, port: int, backend: Backend) -> Path:
    text = f"""
[server]
host = "127.0.0.1"
port = {port}
public_url = "{PUBLIC_URL}"
graceful_shutdown_seconds = 3

[auth]
type = ["MSS_A_HEAD"]
keys = ["{KEY}"]

[intake]
backend = "{backend.name}"
url = "{backend.intake}"
stream = "{backend.out}_in"
partitions = 8
replica_id = "replica-{index}"
lease_ttl_seconds = 1.5
ack_wait_seconds = 3

[pipeline]
lanes = 8

[dead_letters]
path = "{directory / f"dead-{index}.db"}"

[logging]
format = "json"

{backend.sink}

[[sinks]]
name = "file"
type = "jsonl"
path = "{directory / f"out-{index}.jsonl"}"
fsync = false

[[routes]]
sinks = ["shared", "file"]
"""
    path = directory / f"receiver-{index}.toml"
    path.write_text(text)
    return path


@pytest.fixture(params=["nats", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "nats":
        require_service("NATS", NATS)
        out = unique("TEST_REPLICAS_")
        sink = f'[[sinks]]\nname = "shared"\ntype = "nats"\nurl = "{NATS_URL}"\nsubject = "{out}.out"\nstream = "{out}_OUT"\ncritical = true'
        yield Backend("nats", NATS_URL, sink, out)
        asyncio.run(_drop_nats(out))
    else:
        require_service("Redis", REDIS)
        out = unique("test-replicas-")
        sink = f'[[sinks]]\nname = "shared"\ntype = "redis"\nurl = "{REDIS_URL}"\nstream = "{out}:out"\nmaxlen = 1000000\ncritical = true'
        yield Backend("redis", REDIS_URL, sink, out)
        asyncio.run(_drop_redis(out))


async def _drop_nats(out: str) -> None:
    client = await nats.connect(NATS_URL)
    for stream in (f"{out}_OUT", f"{out}_in", f"KV_{out}_in_leases"):
        with contextlib.suppress(Exception):
            await client.jetstream().delete_stream(stream)
    await client.close()


async def _drop_redis(out: str) -> None:
    client = aioredis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(match=f"{out}*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def shared_ids(backend: Backend) -> list[tuple[str, str]]:
    """``(room, event id)`` in the shared sink's order."""
    if backend.name == "nats":
        client = await nats.connect(NATS_URL)
        js = client.jetstream()
        info = await js.stream_info(f"{backend.out}_OUT")
        items = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            envelope = orjson.loads((await js.get_msg(f"{backend.out}_OUT", seq)).data)
            items.append((envelope["roomid"], envelope["id"]))
        await client.close()
        return items
    redis_client = aioredis.from_url(REDIS_URL)
    entries = await redis_client.xrange(f"{backend.out}:out")
    await redis_client.aclose()
    return [(f[b"room_id"].decode(), f[b"id"].decode()) for _id, f in entries]


def file_ids(directory: Path) -> list[str]:
    ids = []
    for path in directory.glob("out-*.jsonl"):
        for line in path.read_bytes().splitlines():
            with contextlib.suppress(orjson.JSONDecodeError):  # a line cut by kill -9
                ids.append(orjson.loads(line)["id"])
    return ids


async def test_three_replicas_one_killed(tmp_path: Path, backend: Backend) -> None:
    ports = [free_port() for _ in range(3)]
    processes = [ReceiverProcess(config(tmp_path, i, p, backend), p) for i, p in enumerate(ports)]
    for process in processes:
        process.start(timeout=30)
    answers = Answers()
    transport = RoundRobin(ports, answers)
    try:
        jobs = generate_jobs(50, 7, "replicas")
        plan = live_sessions(jobs, 7, rooms=ROOMS)
        plan = live_sessions(jobs, 7, rooms=ROOMS, rounds=-(-COUNT // plan_size(plan)))
        async with httpx.AsyncClient(transport=transport, timeout=10) as client:
            target = Target(url=PUBLIC_URL, key=KEY)
            load = asyncio.create_task(
                send_plan(plan, target, rate=RATE, concurrency=ROOMS, count=COUNT, client=client)
            )
            while transport.sent < COUNT * 0.4:
                await asyncio.sleep(0.05)
            transport.dead.add(ports[1])
            processes[1].kill()  # SIGKILL: no lease released, events in hand not acked
            summary = await load

            replay_headers = signed_headers(PUBLIC_URL)
            body = callback_body(room="replay-room", reply_id="once")
            replies = [
                await client.post(
                    f"http://127.0.0.1:{port}/callbacks/metastudio",
                    content=body,
                    headers=replay_headers,
                )
                for port in (ports[0], ports[2])
            ]
        assert [r.status_code for r in replies] == [200, 200]
        assert sorted(r.json()["status"] for r in replies) == ["accepted", "duplicate"]
        replay_id = replies[0].json()["id"]
        assert replies[1].json()["id"] == replay_id

        accepted = {room: ids for room, ids in answers.accepted.items()}
        wanted = {i for ids in accepted.values() for i in ids} | {replay_id}
        assert summary.sent == COUNT and len(wanted) > COUNT * 0.8, summary.as_dict()
        stop = time.monotonic() + 30
        while True:
            delivered = await shared_ids(backend)
            missing = wanted - {event_id for _room, event_id in delivered}
            if not missing or time.monotonic() > stop:
                break
            await asyncio.sleep(0.5)
        assert not missing, f"{len(missing)} acknowledged events never reached the sink"

        rooms: dict[str, list[str]] = defaultdict(list)
        for room, event_id in delivered:
            rooms[room].append(event_id)
        for room, ids in accepted.items():
            keep = set(ids)
            assert [i for i in first_seen(rooms[room]) if i in keep] == ids, f"order in {room}"
        assert [i for _r, i in delivered].count(replay_id) == 1

        in_files = Counter(file_ids(tmp_path))
        repeats = {i: n for i, n in in_files.items() if n > 1}
        assert set(repeats) <= wanted  # every repeat is a whole event, told apart by its id
        print(
            f"\n{backend.name}: {summary.as_dict()['statuses']} answers, "
            f"{len(wanted)} acknowledged, {len(delivered)} in the shared sink, "
            f"{sum(repeats.values()) - len(repeats)} repeated deliveries in the files"
        )
    finally:
        for process in processes:
            if process.process is not None and process.process.poll() is None:
                process.terminate()

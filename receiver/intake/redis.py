"""The Redis Streams intake: one stream per partition, one consumer group, shared by replicas.

``append`` first sets a replay marker ``<stream>:seen:<event id>`` with ``SET NX`` and a TTL
that ends with the event's replay window, then ``XADD``s the event to the stream of its
partition (``<stream>:p:<n>``); a marker already present means the event is stored already
(by this or another replica) and nothing is added. If the ``XADD`` fails the marker is
deleted again, so the retry the 503 asks for can store it. With ``replicas`` > 1 the append
also waits (``WAIT``) until that many Redis servers have the entry.

Partitions are consumed by the replica holding their lease (``<stream>:lease:<n>``, see
:mod:`receiver.intake.partitions`). A replica that takes a partition over first claims every
entry still pending in the group (``XAUTOCLAIM``, in entry order; the lease guarantees the
previous owner stopped reading) and hands those out before reading new entries (``>``), so
a room's events stay in order. ``ack`` removes the entry (``XACK`` + ``XDEL``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

from receiver.intake.base import Intake, IntakeFull, IntakeRecord, IntakeUnavailable
from receiver.intake.partitions import PartitionLeases, default_replica_id, partition_of

log = logging.getLogger("receiver.intake.redis")

GROUP = "receiver"
_ERRORS = (redis.exceptions.RedisError, OSError, asyncio.TimeoutError)
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[2] * 10)
return redis.call('ZCARD', KEYS[1])
"""


class RedisLeases:
    """Leases as ``SET NX PX`` keys renewed by compare-and-set; heartbeats in a sorted set."""

    def __init__(self, client: aioredis.Redis, prefix: str, replica_id: str, ttl: float) -> None:
        self._client = client
        self._prefix = prefix
        self._me = replica_id
        self._ttl_ms = max(1, int(ttl * 1000))
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._heartbeat = client.register_script(_HEARTBEAT)

    def key(self, partition: int) -> str:
        """The lease key of one partition."""
        return f"{self._prefix}:lease:{partition}"

    async def acquire(self, partition: int) -> bool:
        """``SET lease NX PX ttl``."""
        return bool(await self._client.set(self.key(partition), self._me, nx=True, px=self._ttl_ms))

    async def renew(self, partition: int) -> bool:
        """``PEXPIRE`` the lease if it still names this replica."""
        return bool(await self._renew(keys=[self.key(partition)], args=[self._me, self._ttl_ms]))

    async def release(self, partition: int) -> None:
        """Delete the lease if it still names this replica."""
        await self._release(keys=[self.key(partition)], args=[self._me])

    async def heartbeat(self) -> int:
        """Refresh this replica in ``<stream>:replicas``; how many refreshed within the TTL."""
        key = f"{self._prefix}:replicas"
        return int(await self._heartbeat(keys=[key], args=[self._me, self._ttl_ms]))

    async def leave(self) -> None:
        """Remove this replica from the live set."""
        await self._client.zrem(f"{self._prefix}:replicas", self._me)


class RedisIntake(Intake):
    """Durable queue on Redis Streams, shared by every replica; see the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        stream: str,
        partitions: int,
        max_pending: int,
        replicas: int = 1,
        replica_id: str = "",
        lease_ttl: float = 10.0,
        drain_seconds: float = 30.0,
        timeout: float = 5.0,
    ) -> None:
        self._url = url
        self._stream = stream
        self._partitions = partitions
        self._max_pending = max_pending
        self._replicas = replicas
        self.replica_id = replica_id or default_replica_id()
        self._timeout = timeout
        self._client: aioredis.Redis | None = None
        self._ttl = lease_ttl
        self._drain_seconds = drain_seconds
        self.leases: PartitionLeases | None = None
        self._ready: dict[int, deque[IntakeRecord]] = {}
        self._claimed: set[int] = set()
        self._taken: dict[int, int] = {}
        self._depth = 0
        self._oldest: float | None = None
        self._healthy = False

    def stream_key(self, partition: int) -> str:
        """The Redis stream holding one partition's events."""
        return f"{self._stream}:p:{partition}"

    def seen_key(self, event_id: str) -> str:
        """The replay marker of one event id."""
        return f"{self._stream}:seen:{event_id}"

    async def start(self) -> None:
        """Connect, create the consumer groups and start keeping this replica's leases."""
        self._client = aioredis.from_url(
            self._url,
            socket_timeout=self._timeout + 2,
            socket_connect_timeout=self._timeout,
            health_check_interval=10,
        )
        try:
            for partition in range(self._partitions):
                with contextlib.suppress(redis.exceptions.ResponseError):  # BUSYGROUP
                    await self._client.xgroup_create(
                        self.stream_key(partition), GROUP, id="0", mkstream=True
                    )
            await self.refresh_stats()
        except _ERRORS as error:
            await self._client.aclose()
            raise IntakeUnavailable(f"redis intake: {error!r}") from None
        self._healthy = True
        store = RedisLeases(self._client, self._stream, self.replica_id, self._ttl)
        self.leases = PartitionLeases(
            store,
            partitions=self._partitions,
            ttl=self._ttl,
            replica_id=self.replica_id,
            drain_seconds=self._drain_seconds,
            on_acquired=self._acquired,
            on_lost=self._lost,
            in_hand=lambda p: self._taken.get(p, 0),
        )
        self.leases.start()

    async def close(self) -> None:
        """Release the leases (the partitions move on at once) and disconnect."""
        if self.leases is not None:
            await self.leases.close()
        if self._client is not None:
            with contextlib.suppress(*_ERRORS):
                await self._client.aclose()
            self._client = None

    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            raise IntakeUnavailable("the redis intake is not started")
        return self._client

    async def _acquired(self, partition: int) -> None:
        self._ready[partition] = deque()
        self._claimed.discard(partition)

    def _lost(self, partition: int) -> None:
        self._ready.pop(partition, None)
        self._claimed.discard(partition)

    async def append(
        self,
        event_id: str,
        room_id: str,
        received_at: float,
        payload: bytes,
        replay_until: float,
        envelope: dict[str, Any] | None = None,
    ) -> bool:
        client = self._redis()
        if self._depth >= self._max_pending:
            await self.refresh_stats()
            if self._depth >= self._max_pending:
                raise IntakeFull(f"{self._max_pending} events pending")
        marker = self.seen_key(event_id)
        ttl_ms = int((replay_until - time.time()) * 1000)
        try:
            if ttl_ms > 0 and not await client.set(marker, b"1", nx=True, px=ttl_ms):
                return False
            stream = self.stream_key(partition_of(room_id, self._partitions))
            fields: Any = {"id": event_id, "room": room_id, "at": repr(received_at)}
            fields["data"] = payload
            await client.xadd(stream, fields)
        except _ERRORS as error:
            self._healthy = False
            if ttl_ms > 0:
                with contextlib.suppress(*_ERRORS):
                    await client.delete(marker)
            raise IntakeUnavailable(f"redis intake append failed: {error!r}") from None
        self._healthy = True
        self._depth += 1
        if self._oldest is None:
            self._oldest = received_at
        if self._replicas > 1:
            await self._wait_for_replicas(client)
        return True

    async def _wait_for_replicas(self, client: aioredis.Redis) -> None:
        try:
            copies = int(await client.wait(self._replicas - 1, int(self._timeout * 1000)))
        except _ERRORS as error:
            raise IntakeUnavailable(f"redis WAIT failed: {error!r}") from None
        if copies < self._replicas - 1:
            raise IntakeUnavailable(f"only {copies} of {self._replicas - 1} redis replicas")

    async def take(self, limit: int, wait_seconds: float) -> list[IntakeRecord]:
        leases = self.leases
        if leases is None:
            return []
        owned = leases.owned()
        try:
            for partition in owned:
                if partition not in self._claimed:
                    await self._claim(partition)
            records = self._pop_ready(owned, limit)
            if records:
                return records
            reading = [p for p in owned if not self._ready.get(p)]
            if not reading:
                await self._idle(wait_seconds)
                return []
            await self._read(reading, limit, wait_seconds)
        except _ERRORS as error:
            self._healthy = False
            raise IntakeUnavailable(f"redis intake read failed: {error!r}") from None
        return self._pop_ready(leases.owned(), limit)

    async def _idle(self, wait_seconds: float) -> None:
        assert self.leases is not None
        self.leases.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.leases.changed.wait(), wait_seconds)

    async def _claim(self, partition: int) -> None:
        """Everything still pending in the partition (a previous owner's), in entry order."""
        client, stream, start = self._redis(), self.stream_key(partition), "0-0"
        while True:
            reply = await client.xautoclaim(stream, GROUP, self.replica_id, 0, start, count=500)
            start, entries = reply[0], reply[1]
            self._queue(partition, entries)
            if start in (b"0-0", "0-0"):
                break
        self._claimed.add(partition)

    async def _read(self, partitions: list[int], limit: int, wait_seconds: float) -> None:
        streams: Any = {self.stream_key(p): ">" for p in partitions}
        block = int(wait_seconds * 1000) or None
        reply: Any = await self._redis().xreadgroup(
            GROUP, self.replica_id, streams, count=max(1, limit), block=block
        )
        by_key = {self.stream_key(p): p for p in partitions}
        for name, entries in reply or []:
            partition = by_key[name.decode() if isinstance(name, bytes) else str(name)]
            if self.leases is not None and self.leases.usable(partition):
                self._queue(partition, entries)  # else the next owner claims them

    def _queue(self, partition: int, entries: list[Any]) -> None:
        ready = self._ready.setdefault(partition, deque())
        for entry_id, fields in entries:
            if not fields:
                continue  # deleted meanwhile
            ready.append(
                IntakeRecord(
                    (partition, entry_id),
                    fields[b"id"].decode(),
                    fields[b"room"].decode(),
                    float(fields[b"at"]),
                    fields[b"data"],
                )
            )

    def _pop_ready(self, owned: list[int], limit: int) -> list[IntakeRecord]:
        records: list[IntakeRecord] = []
        for partition in owned:
            ready = self._ready.get(partition)
            while ready and len(records) < limit:
                records.append(ready.popleft())
                self._taken[partition] = self._taken.get(partition, 0) + 1
        return records

    async def ack(self, record: IntakeRecord) -> None:
        assert isinstance(record.ref, tuple)
        partition, entry_id = record.ref
        stream = self.stream_key(partition)
        try:
            async with self._redis().pipeline(transaction=True) as pipe:
                pipe.xack(stream, GROUP, entry_id)
                pipe.xdel(stream, entry_id)
                await pipe.execute()
        except _ERRORS as error:
            self._healthy = False
            raise IntakeUnavailable(f"redis intake ack failed: {error!r}") from None
        self._taken[partition] = max(0, self._taken.get(partition, 0) - 1)
        self._depth = max(0, self._depth - 1)

    async def refresh_stats(self) -> None:
        """Sum the stream lengths; the oldest entry's receive time over the partitions."""
        client = self._redis()
        async with client.pipeline(transaction=False) as pipe:
            for partition in range(self._partitions):
                pipe.xlen(self.stream_key(partition))
                pipe.xrange(self.stream_key(partition), count=1)
            replies = await pipe.execute()
        self._depth = sum(int(n) for n in replies[0::2])
        firsts = [float(entries[0][1][b"at"]) for entries in replies[1::2] if entries]
        self._oldest = min(firsts) if firsts else None
        self._healthy = True

    def depth(self) -> int:
        return self._depth

    def oldest_age(self, now: float) -> float:
        return max(0.0, now - self._oldest) if self._oldest is not None and self._depth else 0.0

    def is_ready(self) -> bool:
        leases_ok = self.leases is not None and self.leases.healthy
        return self._client is not None and self._healthy and leases_ok

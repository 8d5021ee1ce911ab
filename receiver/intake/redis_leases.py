"""Partition leases on Redis (see :mod:`receiver.intake.partitions`).

A lease is a ``SET <stream>:lease:<n> <replica> NX PX <ttl>`` key, renewed and released by
compare-and-set scripts so only its holder extends or deletes it. Live replicas are the
members of the sorted set ``<stream>:replicas`` refreshed within the TTL.
"""

from __future__ import annotations

import redis.asyncio as aioredis

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

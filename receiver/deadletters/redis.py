"""The Redis dead-letter store: every replica's dead letters next to the Redis intake.

Keys, under the intake's stream name: ``<stream>:dlq:seq`` (the id counter, INCR),
``<stream>:dlq:<id>`` (a hash per letter; the sink is a field), ``<stream>:dlq:all`` and
``<stream>:dlq:sink:<sha1 of the sink>`` (sorted sets of ids, score = id) and
``<stream>:dlq:claim:<id>`` (a replayer's claim, SET NX with an expiry). No key holds a
sink name or an event id. ``remove`` deletes the hash in a script, so of two concurrent
callers exactly one gets True.
"""

from __future__ import annotations

import builtins
import hashlib
from typing import Any

import redis.asyncio as aioredis

from receiver.deadletters.base import (
    CLAIM_SECONDS,
    MAX_ERROR_CHARS,
    BaseDeadLetterStore,
    DeadLetter,
)

# KEYS: the letter's hash, the all-letters set; ARGV: the id, the per-sink set prefix
_REMOVE = """
local digest = redis.call('HGET', KEYS[1], 'sink_key')
if not digest then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', ARGV[2] .. digest, ARGV[1])
redis.call('DEL', ARGV[3])
return 1
"""
# KEYS: the letter's hash, the claim; ARGV: milliseconds
_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then return 1 end
return 0
"""
_FIELDS = ("event_id", "sink", "body", "attempts", "last_error", "first_attempt_at", "dead_at")


def sink_digest(sink: str) -> str:
    """The key part standing for a sink name (a digest, so any name is a safe key)."""
    return hashlib.sha1(sink.encode(), usedforsecurity=False).hexdigest()


class RedisDeadLetterStore(BaseDeadLetterStore):
    """Dead letters in Redis at ``url``, keyed under ``stream`` (the intake's name)."""

    def __init__(self, url: str, stream: str, *, timeout: float = 5.0) -> None:
        self._prefix = f"{stream}:dlq"
        self._client: Any = aioredis.from_url(
            url, socket_timeout=timeout + 2, socket_connect_timeout=timeout
        )
        self._remove = self._client.register_script(_REMOVE)
        self._claim = self._client.register_script(_CLAIM)
        self._closed = False

    def __repr__(self) -> str:
        return f"RedisDeadLetterStore({self._prefix!r})"

    def _letter_key(self, letter_id: int) -> str:
        return f"{self._prefix}:{int(letter_id)}"

    def _set_key(self, sink: str | None) -> str:
        return f"{self._prefix}:all" if sink is None else f"{self._prefix}:sink:{sink_digest(sink)}"

    def _open(self) -> Any:
        if self._closed:
            raise RuntimeError("the dead-letter store is closed")
        return self._client

    async def add(
        self,
        event_id: str,
        sink: str,
        body: bytes,
        attempts: int,
        last_error: str,
        first_attempt_at: float,
        dead_at: float,
    ) -> int:
        """Store a letter (in one MULTI/EXEC) and return its id."""
        client = self._open()
        letter_id = int(await client.incr(f"{self._prefix}:seq"))
        fields = {
            "event_id": event_id,
            "sink": sink,
            "sink_key": sink_digest(sink),
            "body": body,
            "attempts": attempts,
            "last_error": last_error[:MAX_ERROR_CHARS],
            "first_attempt_at": repr(float(first_attempt_at)),
            "dead_at": repr(float(dead_at)),
        }
        async with client.pipeline(transaction=True) as pipe:
            pipe.hset(self._letter_key(letter_id), mapping=fields)
            pipe.zadd(self._set_key(None), {str(letter_id): letter_id})
            pipe.zadd(self._set_key(sink), {str(letter_id): letter_id})
            await pipe.execute()
        return letter_id

    async def list(self, sink: str | None = None, limit: int = 100) -> builtins.list[DeadLetter]:
        """Letters oldest first, of one sink or of all."""
        client = self._open()
        letters: builtins.list[DeadLetter] = []
        start = 0
        while len(letters) < limit:
            page = min(500, limit - len(letters))
            ids = await client.zrange(self._set_key(sink), start, start + page - 1)
            if not ids:
                break
            start += len(ids)
            async with client.pipeline(transaction=False) as pipe:
                for raw in ids:
                    pipe.hgetall(self._letter_key(int(raw)))
                rows = await pipe.execute()
            letters.extend(
                _letter(int(raw), row) for raw, row in zip(ids, rows, strict=True) if row
            )
        return letters[:limit]

    async def get(self, letter_id: int) -> DeadLetter | None:
        """The letter with this id, or None."""
        row = await self._open().hgetall(self._letter_key(letter_id))
        return _letter(int(letter_id), row) if row else None

    async def remove(self, letter_id: int) -> bool:
        """Delete one letter atomically; True for exactly one of concurrent callers."""
        self._open()
        done = await self._remove(
            keys=[self._letter_key(letter_id), self._set_key(None)],
            args=[int(letter_id), f"{self._prefix}:sink:", self._claim_key(letter_id)],
        )
        return bool(done)

    def _claim_key(self, letter_id: int) -> str:
        return f"{self._prefix}:claim:{int(letter_id)}"

    async def claim(self, letter_id: int, seconds: float = CLAIM_SECONDS) -> bool:
        """Reserve a stored letter for ``seconds`` (SET NX PX); False if gone or claimed."""
        self._open()
        won = await self._claim(
            keys=[self._letter_key(letter_id), self._claim_key(letter_id)],
            args=[max(1, int(seconds * 1000))],
        )
        return bool(won)

    async def release(self, letter_id: int) -> None:
        """Drop the claim on a letter that stays."""
        await self._open().delete(self._claim_key(letter_id))

    async def purge(self, sink: str | None = None) -> int:
        """Delete every letter (of one sink, or of all); how many were deleted."""
        client = self._open()
        removed = 0
        while ids := await client.zrange(self._set_key(sink), 0, 499):
            for raw in ids:
                if await self.remove(int(raw)):
                    removed += 1
                else:  # an id left in a set without its hash
                    await client.zrem(self._set_key(sink), raw)
        return removed

    async def count(self, sink: str | None = None) -> int:
        """How many letters are stored (of one sink, or of all)."""
        return int(await self._open().zcard(self._set_key(sink)))

    async def close(self) -> None:
        """Close the connection pool; further calls raise RuntimeError."""
        if self._closed:
            return
        self._closed = True
        await self._client.aclose()


def _letter(letter_id: int, row: dict[bytes, bytes]) -> DeadLetter:
    values = {key.decode(): value for key, value in row.items()}
    missing = [name for name in _FIELDS if name not in values]
    if missing:
        raise ValueError(f"dead letter {letter_id} lacks {missing}")
    return DeadLetter(
        id=letter_id,
        event_id=values["event_id"].decode("utf-8", "replace"),
        sink=values["sink"].decode("utf-8", "replace"),
        body=bytes(values["body"]),
        attempts=int(values["attempts"]),
        last_error=values["last_error"].decode("utf-8", "replace"),
        first_attempt_at=float(values["first_attempt_at"]),
        dead_at=float(values["dead_at"]),
    )

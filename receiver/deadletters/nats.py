"""The JetStream dead-letter store: every replica's dead letters next to the NATS intake.

One stream ``<stream>_DLQ`` (file storage, the intake's replica count, kept until
removed). A letter is one message on ``<stream>_DLQ.s.<sha1 of the sink>`` whose payload
is a JSON document of its fields (the body base64); its id is the stream sequence, so
``remove`` is a delete by sequence, which succeeds once. A replayer's claim is a message
on ``<stream>_DLQ.c.<id>`` published with ``Nats-Expected-Last-Subject-Sequence`` (0, or
the lapsed claim's sequence), so of concurrent claimers one wins. No subject holds a sink
name or an event id.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import hashlib
import math
import time
from typing import Any

import nats
import nats.errors
import nats.js.errors
import orjson
from nats.js.api import RetentionPolicy, StorageType, StreamConfig

from receiver.deadletters.base import (
    CLAIM_SECONDS,
    MAX_ERROR_CHARS,
    BaseDeadLetterStore,
    DeadLetter,
)

_EXPECT_LAST = "Nats-Expected-Last-Subject-Sequence"
_NO_MESSAGE = 10057
_WRONG_LAST_SEQUENCE = 10071


def sink_digest(sink: str) -> str:
    """The subject token standing for a sink name (a digest, so any name is safe)."""
    return hashlib.sha1(sink.encode(), usedforsecurity=False).hexdigest()


class NatsDeadLetterStore(BaseDeadLetterStore):
    """Dead letters in the JetStream stream ``<stream>_DLQ`` of the server at ``url``."""

    def __init__(self, url: str, stream: str, *, replicas: int = 1, timeout: float = 5.0) -> None:
        self._url = url
        self.name = f"{stream}_DLQ"
        self._replicas = replicas
        self._timeout = timeout
        self._nc: Any = None
        self._js: Any = None
        self._opening = asyncio.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"NatsDeadLetterStore({self.name!r})"

    def _subject(self, sink: str | None) -> str:
        return f"{self.name}.s.{'*' if sink is None else sink_digest(sink)}"

    def _claim_subject(self, letter_id: int) -> str:
        return f"{self.name}.c.{int(letter_id)}"

    async def _jetstream(self) -> Any:
        if self._closed:
            raise RuntimeError("the dead-letter store is closed")
        if self._js is not None:
            return self._js
        async with self._opening:
            if self._js is None:
                nc = await nats.connect(
                    self._url,
                    name="receiver-dead-letters",
                    connect_timeout=max(1, math.ceil(self._timeout)),
                    reconnect_time_wait=1,
                    max_reconnect_attempts=-1,
                )
                js = nc.jetstream(timeout=self._timeout)
                config = StreamConfig(
                    name=self.name,
                    subjects=[f"{self.name}.s.*", f"{self.name}.c.*"],
                    retention=RetentionPolicy.LIMITS,
                    storage=StorageType.FILE,
                    num_replicas=self._replicas,
                )
                try:
                    await js.stream_info(self.name)
                except nats.js.errors.NotFoundError:
                    await js.add_stream(config)
                self._nc, self._js = nc, js
        return self._js

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
        """Store a letter (acknowledged by the stream) and return its sequence."""
        js = await self._jetstream()
        document = {
            "event_id": event_id,
            "sink": sink,
            "body": base64.b64encode(body).decode(),
            "attempts": attempts,
            "last_error": last_error[:MAX_ERROR_CHARS],
            "first_attempt_at": float(first_attempt_at),
            "dead_at": float(dead_at),
        }
        ack = await js.publish(self._subject(sink), orjson.dumps(document), stream=self.name)
        return int(ack.seq)

    async def list(self, sink: str | None = None, limit: int = 100) -> builtins.list[DeadLetter]:
        """Letters oldest first, of one sink or of all."""
        js = await self._jetstream()
        letters: builtins.list[DeadLetter] = []
        seq = 1
        while len(letters) < limit:
            try:
                message = await js.get_msg(
                    self.name, seq=seq, subject=self._subject(sink), next=True
                )
            except nats.js.errors.NotFoundError:
                break
            letters.append(_letter(message))
            seq = int(message.seq) + 1
        return letters

    async def get(self, letter_id: int) -> DeadLetter | None:
        """The letter with this id, or None."""
        js = await self._jetstream()
        try:
            message = await js.get_msg(self.name, seq=int(letter_id))
        except nats.js.errors.NotFoundError:
            return None
        if not str(message.subject).startswith(f"{self.name}.s."):
            return None  # a claim, not a letter
        return _letter(message)

    async def remove(self, letter_id: int) -> bool:
        """Delete one letter by sequence; True for exactly one of concurrent callers."""
        js = await self._jetstream()
        if await self.get(letter_id) is None:
            return False
        try:
            await js.delete_msg(self.name, int(letter_id))
        except nats.js.errors.NotFoundError:
            return False
        except nats.js.errors.APIError as error:
            if error.err_code == _NO_MESSAGE:  # a concurrent remove deleted it first
                return False
            raise
        await self.release(letter_id)
        return True

    async def claim(self, letter_id: int, seconds: float = CLAIM_SECONDS) -> bool:
        """Reserve a stored letter for ``seconds``; False if it is gone or claimed."""
        js = await self._jetstream()
        if await self.get(letter_id) is None:
            return False
        subject = self._claim_subject(letter_id)
        expected = 0
        try:
            held = await js.get_last_msg(self.name, subject)
        except nats.js.errors.NotFoundError:
            held = None
        if held is not None:
            if float(orjson.loads(held.data)["until"]) > time.time():
                return False
            expected = int(held.seq)  # lapsed: take it over
        payload = orjson.dumps({"until": time.time() + seconds})
        try:
            await js.publish(
                subject, payload, stream=self.name, headers={_EXPECT_LAST: str(expected)}
            )
        except nats.js.errors.APIError as error:
            if error.err_code == _WRONG_LAST_SEQUENCE:  # another claimer won
                return False
            raise
        # A replayer that removed the letter dropped its claim after the delete: a claim
        # won after that release finds the letter gone here, never publishes it again.
        if await self.get(letter_id) is None:
            await self.release(letter_id)
            return False
        return True

    async def release(self, letter_id: int) -> None:
        """Drop the claim on a letter that stays."""
        js = await self._jetstream()
        await js.purge_stream(self.name, subject=self._claim_subject(letter_id))

    async def purge(self, sink: str | None = None) -> int:
        """Delete every letter (of one sink, or of all); how many were deleted."""
        removed = 0
        while letters := await self.list(sink, limit=500):
            for letter in letters:
                if await self.remove(letter.id):
                    removed += 1
        return removed

    async def count(self, sink: str | None = None) -> int:
        """How many letters are stored (of one sink, or of all)."""
        js = await self._jetstream()
        info = await js.stream_info(self.name, subjects_filter=self._subject(sink))
        return sum(int(n) for n in (info.state.subjects or {}).values())

    async def close(self) -> None:
        """Close the connection; further calls raise RuntimeError."""
        if self._closed:
            return
        self._closed = True
        if self._nc is not None:
            await self._nc.close()


def _letter(message: Any) -> DeadLetter:
    fields = orjson.loads(message.data)
    return DeadLetter(
        id=int(message.seq),
        event_id=str(fields["event_id"]),
        sink=str(fields["sink"]),
        body=base64.b64decode(fields["body"]),
        attempts=int(fields["attempts"]),
        last_error=str(fields["last_error"]),
        first_attempt_at=float(fields["first_attempt_at"]),
        dead_at=float(fields["dead_at"]),
    )

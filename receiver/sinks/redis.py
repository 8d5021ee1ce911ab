"""Append envelopes to a Redis stream (XADD), with duplicate suppression by event id.

Each entry has the fields ``id`` (event id), ``type`` (CloudEvents type), ``room_id`` and
``data``: the envelope as a CloudEvents structured JSON document
(``application/cloudevents+json``), which a CloudEvents SDK reads as it is; the other
three fields repeat envelope attributes for consumers that filter without parsing it
(Redis streams have no CloudEvents binding). With ``payload`` ``data`` or ``message``,
``data`` holds the data only, ``content_type`` is ``application/json`` and each CloudEvents
attribute is a ``ce_<name>`` field, as Kafka's binary mode names its headers. With
``maxlen`` the stream is trimmed approximately (``MAXLEN ~``).

Redis streams do not deduplicate, so a retry after a lost reply would add the entry
twice. The sink therefore runs XADD inside a small Lua script that first checks a marker
key ``{<stream>}:dedup:<event id>``; the marker holds the entry id and expires after
``dedup_seconds``. Script, marker and XADD run atomically, and the marker's hash tag puts
it in the stream's cluster slot. Beyond that window (or with ``dedup_seconds`` unset)
consumers should still drop duplicates by the ``id`` field.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from redis.commands.core import AsyncScript

from receiver.envelope import render
from receiver.sink_settings import RedisSinkSettings
from receiver.sinks.base import DeliveryError, Sink
from receiver.sinks.common import describe, redact_url
from receiver.sinks.payload import REDIS

log = logging.getLogger(__name__)

# KEYS[1] stream, KEYS[2] marker (may be ""); ARGV[1] marker ttl (0: none), ARGV[2] maxlen
# ("" for none), then field/value pairs. Returns the new (or the earlier) entry id.
XADD_ONCE = """
if KEYS[2] ~= '' then
  local earlier = redis.call('GET', KEYS[2])
  if earlier then return earlier end
end
local command = {'XADD', KEYS[1]}
if ARGV[2] ~= '' then
  table.insert(command, 'MAXLEN'); table.insert(command, '~'); table.insert(command, ARGV[2])
end
table.insert(command, '*')
for i = 3, #ARGV do table.insert(command, ARGV[i]) end
local entry = redis.call(unpack(command))
if KEYS[2] ~= '' then redis.call('SET', KEYS[2], entry, 'EX', ARGV[1]) end
return entry
"""


def dedup_key(stream: str, event_id: str) -> str:
    """The marker key of one event: hash-tagged to live in the stream's cluster slot."""
    return f"{{{stream}}}:dedup:{event_id}"


class RedisSink(Sink):
    """XADD publisher: ``publish`` returns once Redis appended (or had appended) the entry."""

    def __init__(self, settings: RedisSinkSettings) -> None:
        super().__init__(settings.name, critical=settings.critical, payload=settings.payload)
        self._url = settings.url.get_secret_value()
        self._where = redact_url(self._url)
        self._template = settings.stream
        self._maxlen = settings.maxlen
        self._dedup_seconds = settings.dedup_seconds
        self._timeout = settings.timeout_seconds
        self._client: aioredis.Redis | None = None
        self._script: AsyncScript | None = None
        self._ready = True

    def __repr__(self) -> str:
        return f"RedisSink(name={self.name!r}, url={self._where!r})"

    async def start(self) -> None:
        """Create the client and check the server answers; a server that is down is logged."""
        try:
            await self._client_or_new().ping()
        except (redis.exceptions.RedisError, OSError) as error:
            self._ready = False
            log.warning("sink %s: %s; will retry on publish", self.name, describe(error, self._url))

    async def close(self) -> None:
        """Close the connection pool."""
        client, self._client, self._script = self._client, None, None
        if client is not None:
            await client.aclose()

    def is_ready(self) -> bool:
        """False after a connection error, until a command succeeds again."""
        return self._ready

    async def publish(self, envelope: dict[str, Any], body: bytes) -> None:
        """XADD the entry (once per event id within the dedup window)."""
        stream = render(self._template, envelope)
        event_id = str(envelope["id"])
        marker = dedup_key(stream, event_id) if self._dedup_seconds else ""
        fields: list[str | bytes] = [
            "id", event_id,
            "type", str(envelope.get("type") or ""),
            "room_id", str(envelope.get("roomid") or ""),
        ]  # fmt: skip
        payload = self.shaped(envelope, body)
        if payload.binary:
            fields += ["content_type", payload.content_type]
            for name, value in REDIS.headers(payload.attributes).items():
                fields += [name, value]
        fields += ["data", payload.body]
        args: list[str | bytes | int] = [
            int(self._dedup_seconds or 0),
            str(self._maxlen) if self._maxlen else "",
            *fields,
        ]
        try:
            await self._script_or_new()(keys=[stream, marker], args=args)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as error:
            self._ready = False
            raise DeliveryError(f"XADD {stream} failed: {describe(error, self._url)}") from None
        except redis.exceptions.RedisError as error:
            self._ready = True
            detail = describe(error, self._url)
            # A key of another type stays one; other refusals (OOM, READONLY...) pass.
            retryable = "WRONGTYPE" not in detail
            raise DeliveryError(f"XADD {stream} refused: {detail}", retryable=retryable) from None
        self._ready = True

    def _client_or_new(self) -> aioredis.Redis:
        if self._client is None:
            self._client = aioredis.from_url(
                self._url,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                health_check_interval=30,
            )
        return self._client

    def _script_or_new(self) -> AsyncScript:
        if self._script is None:
            self._script = self._client_or_new().register_script(XADD_ONCE)
        return self._script

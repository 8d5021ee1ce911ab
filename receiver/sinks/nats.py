"""Publish envelopes to NATS JetStream and wait for the stream's acknowledgement.

Each message carries ``Nats-Msg-Id`` = the event id, so a retry after a lost PubAck is
dropped by the stream's duplicate window (two minutes unless the stream says otherwise),
and ``content-type: application/cloudevents+json; charset=utf-8``: the body is the
envelope in CloudEvents structured content mode (no ``ce-`` headers, which SDKs would take
for binary mode). With ``payload`` ``data`` or ``message`` it is binary mode instead: the
body is the data, ``content-type: application/json``, and each attribute a ``ce-`` header
(percent-encoded). With ``stream`` set, the sink creates
that stream if it is missing, capturing the subjects the template can produce (for
``metastudio.live.{event_type}.{room_id}``: ``metastudio.live.>``); without it, an
existing stream must capture the subjects. nats-py reconnects on its own; while it does,
publishes fail at once rather than being buffered, so a failed publish does not land later
behind newer events.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client

from receiver.envelope import render
from receiver.sink_settings import NatsSinkSettings
from receiver.sinks.base import BrokerSink, DeliveryError, InvalidDestination
from receiver.sinks.common import describe, redact_url
from receiver.sinks.payload import NATS

log = logging.getLogger(__name__)

RECONNECT_WAIT_SECONDS = 1
MSG_ID_HEADER = "Nats-Msg-Id"
_FIELD = re.compile(r"\{[^{}]*\}")
_BAD_SUBJECT_CHARS = re.compile(r"[\s*>\x00]")


def subject_pattern(template: str) -> str:
    """The wildcard subject covering every subject ``template`` renders to.

    Literal leading tokens are kept and the rest becomes ``>``:
    ``metastudio.live.{event_type}.{room_id}`` gives ``metastudio.live.>``. A template
    without fields is its own pattern.
    """
    tokens = template.split(".")
    for index, token in enumerate(tokens):
        if _FIELD.search(token):
            return ".".join([*tokens[:index], ">"])
    return template


def check_subject(subject: str) -> None:
    """Raise InvalidDestination if ``subject`` is not a publishable subject."""
    if not subject or any(not token for token in subject.split(".")):
        raise InvalidDestination(f"rendered subject {subject!r} has an empty token")
    if _BAD_SUBJECT_CHARS.search(subject):
        raise InvalidDestination(f"rendered subject {subject!r} has a space, NUL or wildcard")


class NatsSink(BrokerSink[Client]):
    """JetStream publisher: ``publish`` returns once the stream stored (or deduplicated) it."""

    def __init__(self, settings: NatsSinkSettings) -> None:
        super().__init__(
            settings.name,
            critical=settings.critical,
            timeout_seconds=settings.timeout_seconds,
            payload=settings.payload,
        )
        self._url = settings.url
        self._where = redact_url(settings.url)
        self._template = settings.subject
        self._stream = settings.stream
        self._client: Client | None = None
        self._stream_ready = not settings.stream

    def __repr__(self) -> str:
        return f"NatsSink(name={self.name!r}, url={self._where!r}, stream={self._stream!r})"

    async def close(self) -> None:
        """Flush pending messages and close the connection."""
        client, self._client = self._client, None
        if client is not None and not client.is_closed:
            try:
                await asyncio.wait_for(client.drain(), self._timeout)
            except (nats.errors.Error, TimeoutError):
                await client.close()

    def is_ready(self) -> bool:
        """Whether the connection to the server is up."""
        return self._client is not None and bool(self._client.is_connected)

    async def publish(self, envelope: dict[str, Any], body: bytes) -> None:
        """Publish to the rendered subject and wait for the PubAck."""
        subject = render(self._template, envelope)
        check_subject(subject)
        payload = self.shaped(envelope, body)
        headers = {MSG_ID_HEADER: str(envelope["id"]), "content-type": payload.content_type}
        if payload.binary:
            headers.update(NATS.headers(payload.attributes))
        client = await self._link()
        try:
            await client.jetstream().publish(
                subject,
                payload.body,
                timeout=self._timeout,
                stream=self._stream or None,
                headers=headers,
            )
        except nats.js.errors.NoStreamResponseError:
            self._stream_ready = not self._stream  # deleted meanwhile? create it again
            raise DeliveryError(f"no JetStream stream captures {subject}") from None
        except (nats.errors.Error, TimeoutError, OSError) as error:
            raise DeliveryError(f"publish to {subject} failed: {self._describe(error)}") from None

    async def _open(self) -> Client:
        """The open client, connecting (and creating the stream) first if needed."""
        client = self._client
        if client is None or client.is_closed:
            client = self._client = await self._connect()
        if not self._stream_ready:
            await self._ensure_stream(client)
            self._stream_ready = True
        return client

    async def _connect(self) -> Client:
        client = Client()
        try:
            await asyncio.wait_for(
                client.connect(
                    self._url,
                    name=f"metastudio-receiver-{self.name}",
                    connect_timeout=max(1, math.ceil(self._timeout)),
                    reconnect_time_wait=RECONNECT_WAIT_SECONDS,
                    max_reconnect_attempts=-1,
                    pending_size=0,  # no buffering while reconnecting: fail, the caller retries
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                ),
                self._timeout,
            )
        except (nats.errors.Error, TimeoutError, OSError) as error:
            await client.close()
            raise DeliveryError(
                f"cannot connect to {self._where}: {self._describe(error)}"
            ) from None
        return client

    async def _ensure_stream(self, client: Client) -> None:
        manager = client.jsm(timeout=self._timeout)
        pattern = subject_pattern(self._template)
        try:
            try:
                await manager.stream_info(self._stream)
                return
            except nats.js.errors.NotFoundError:
                pass
            try:
                await manager.add_stream(name=self._stream, subjects=[pattern])
                log.info("sink %s: created stream %s for %s", self.name, self._stream, pattern)
            except nats.js.errors.BadRequestError:
                await manager.stream_info(self._stream)  # created meanwhile by someone else
        except (nats.errors.Error, TimeoutError, OSError) as error:
            raise DeliveryError(
                f"cannot ensure stream {self._stream}: {self._describe(error)}"
            ) from None

    def _describe(self, error: BaseException) -> str:
        if isinstance(error, nats.errors.OutboundBufferLimitError):
            return "not connected (reconnecting)"
        return describe(error, self._url)

    async def _on_error(self, error: Exception) -> None:
        log.debug("sink %s: connection error %s", self.name, self._describe(error))

    async def _on_disconnected(self) -> None:
        log.warning("sink %s: disconnected from %s", self.name, self._where)

    async def _on_reconnected(self) -> None:
        log.info("sink %s: reconnected to %s", self.name, self._where)

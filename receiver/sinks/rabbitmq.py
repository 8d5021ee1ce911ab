"""Publish envelopes to a RabbitMQ exchange with publisher confirms.

Messages are persistent (``delivery_mode=2``), ``message_id`` is the event id (consumers
drop duplicates by it: a retry after a lost confirm publishes the message again) and
``content_type`` is ``application/cloudevents+json; charset=utf-8``: the body is the
envelope in CloudEvents structured content mode, without ``ce-`` headers (with ``payload``
``data`` or ``message``: binary mode, the data as body, ``content_type`` ``application/json``
and each attribute a ``ce-`` header, as the CloudEvents SDK's RabbitMQ binding reads them).
``mandatory``
is set, so a message that no queue receives is returned by the broker and the publish
fails; that failure is retryable, since a queue may be bound later (an event that stays
unroutable ends in the dead letters after the sink's attempts). The robust connection of
aio-pika reconnects and re-declares the exchange on its own.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aio_pika.abc
import aio_pika.exceptions
import aiormq.exceptions

from receiver.envelope import render
from receiver.sink_settings import RabbitMqSinkSettings
from receiver.sinks.base import BrokerSink, DeliveryError, InvalidDestination
from receiver.sinks.common import describe, redact_url
from receiver.sinks.payload import RABBITMQ

log = logging.getLogger(__name__)

RECONNECT_INTERVAL_SECONDS = 1.0
MAX_ROUTING_KEY_BYTES = 255  # an AMQP short string
_FAILURES = (
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,  # a closed channel, e.g. while reconnecting
    aio_pika.exceptions.AMQPException,
    TimeoutError,
    OSError,
)


class RabbitMqSink(BrokerSink[aio_pika.abc.AbstractExchange]):
    """AMQP 0-9-1 publisher: ``publish`` returns once the broker confirmed the message."""

    def __init__(self, settings: RabbitMqSinkSettings) -> None:
        super().__init__(
            settings.name,
            critical=settings.critical,
            timeout_seconds=settings.timeout_seconds,
            payload=settings.payload,
        )
        self._url = settings.url.get_secret_value()
        self._where = redact_url(self._url)
        self._exchange_name = settings.exchange
        self._exchange_type = aio_pika.ExchangeType(settings.exchange_type)
        self._declare = settings.declare_exchange
        self._template = settings.routing_key
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None

    def __repr__(self) -> str:
        return f"RabbitMqSink(name={self.name!r}, url={self._where!r})"

    async def close(self) -> None:
        """Close the channel and the connection."""
        connection, self._connection, self._exchange = self._connection, None, None
        if connection is not None:
            try:
                await asyncio.wait_for(connection.close(), self._timeout)
            except _FAILURES as error:
                log.debug("sink %s: close: %s", self.name, self._describe(error))

    def is_ready(self) -> bool:
        """Whether the connection is currently established."""
        connection = self._connection
        return connection is not None and not connection.is_closed and connection.connected.is_set()

    async def publish(self, envelope: dict[str, Any], body: bytes) -> None:
        """Publish to the exchange with the rendered routing key and wait for the confirm."""
        routing_key = render(self._template, envelope)
        if len(routing_key.encode()) > MAX_ROUTING_KEY_BYTES:
            raise InvalidDestination(
                f"rendered routing key {routing_key!r} is over {MAX_ROUTING_KEY_BYTES} bytes"
            )
        payload = self.shaped(envelope, body)
        headers: dict[str, aio_pika.abc.FieldValue] = dict(RABBITMQ.headers(payload.attributes))
        message = aio_pika.Message(
            payload.body,
            headers=headers or None,
            content_type=payload.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=str(envelope["id"]),
            type=str(envelope.get("type") or ""),
            timestamp=datetime.now(UTC),
        )
        exchange = await self._link()
        try:
            await asyncio.wait_for(  # also bounds the wait for a channel being restored
                exchange.publish(message, routing_key, mandatory=True, timeout=self._timeout),
                self._timeout,
            )
        except aiormq.exceptions.PublishError as error:
            delivery = error.message.delivery if error.message else None
            reply = getattr(delivery, "reply_text", None) or "returned"
            raise DeliveryError(
                f"unroutable: exchange {self._exchange_name!r} routing key {routing_key!r} "
                f"({reply})"
            ) from None
        except aiormq.exceptions.DeliveryError:
            raise DeliveryError(f"broker refused (nack) routing key {routing_key!r}") from None
        except _FAILURES as error:
            raise DeliveryError(
                f"publish to exchange {self._exchange_name!r} failed: {self._describe(error)}"
            ) from None

    async def _open(self) -> aio_pika.abc.AbstractExchange:
        """The exchange to publish to, connecting and declaring it first if needed."""
        if self._exchange is not None and self._connection is not None:
            return self._exchange
        if self._connection is None:
            self._connection = await self._connect()
        try:
            channel = await asyncio.wait_for(
                self._connection.channel(publisher_confirms=True, on_return_raises=True),
                self._timeout,
            )
            self._exchange = await self._declare_exchange(channel)
        except _FAILURES as error:
            raise DeliveryError(
                f"cannot open exchange {self._exchange_name!r}: {self._describe(error)}"
            ) from None
        return self._exchange

    async def _connect(self) -> aio_pika.abc.AbstractRobustConnection:
        try:
            return await aio_pika.connect_robust(
                self._url,
                timeout=self._timeout,
                reconnect_interval=RECONNECT_INTERVAL_SECONDS,
                client_properties={"connection_name": f"metastudio-receiver-{self.name}"},
            )
        except _FAILURES as error:
            raise DeliveryError(
                f"cannot connect to {self._where}: {self._describe(error)}"
            ) from None

    async def _declare_exchange(
        self, channel: aio_pika.abc.AbstractChannel
    ) -> aio_pika.abc.AbstractExchange:
        if not self._exchange_name:
            return channel.default_exchange
        if self._declare:
            return await channel.declare_exchange(
                self._exchange_name, self._exchange_type, durable=True, timeout=self._timeout
            )
        return await channel.get_exchange(self._exchange_name, ensure=True)

    def _describe(self, error: BaseException) -> str:
        if isinstance(error, aiormq.exceptions.ChannelInvalidStateError):
            return "channel closed (reconnecting)"
        return describe(error, self._url)

"""Produce envelopes to a Kafka topic and wait for the in-sync replicas (``acks=all``).

The record key is the room id, so each room's events land on one partition in order; the
value is the envelope in CloudEvents structured content mode (header ``content-type:
application/cloudevents+json; charset=utf-8``, no ``ce_`` headers; with ``payload``
``data`` or ``message``, binary mode: the data as value, ``content-type: application/json``
and each attribute a ``ce_`` header). The idempotent
producer stays off (not every Kafka-compatible broker supports it), so a retry after a lost
acknowledgement can write a record twice: consumers drop duplicates by the event ``id``.
aiokafka reconnects on its own once started; the sink starts the producer lazily, so a
broker that is down at start-up only delays the first publish.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)

from receiver.envelope import render
from receiver.sink_settings import KafkaSinkSettings
from receiver.sinks.base import BrokerSink, DeliveryError, InvalidDestination
from receiver.sinks.payload import KAFKA

log = logging.getLogger(__name__)

# Errors that no retry can cure: the record or the topic name itself is wrong.
PERMANENT_ERRORS = (
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


class KafkaSink(BrokerSink[AIOKafkaProducer]):
    """Kafka producer: ``publish`` returns once the broker acknowledged the record."""

    def __init__(self, settings: KafkaSinkSettings) -> None:
        super().__init__(
            settings.name,
            critical=settings.critical,
            timeout_seconds=settings.timeout_seconds,
            payload=settings.payload,
        )
        self._servers = settings.bootstrap_servers
        self._template = settings.topic
        self._producer: AIOKafkaProducer | None = None
        self._ready = True

    def __repr__(self) -> str:
        return f"KafkaSink(name={self.name!r}, bootstrap_servers={self._servers!r})"

    async def close(self) -> None:
        """Flush pending records and stop the producer."""
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), self._timeout)
            except (KafkaError, TimeoutError, OSError) as error:
                log.debug("sink %s: stop: %s", self.name, error)

    def is_ready(self) -> bool:
        """Whether the producer is started and the last send went through."""
        return self._producer is not None and self._ready

    async def publish(self, envelope: dict[str, Any], body: bytes) -> None:
        """Send the record keyed by room id and wait for the acknowledgement."""
        topic = render(self._template, envelope)
        if not _TOPIC.match(topic) or topic in (".", ".."):
            raise InvalidDestination(f"rendered topic {topic!r} is not a valid name")
        room = envelope.get("roomid")
        key = str(room).encode() if room else None
        payload = self.shaped(envelope, body)
        headers = [("content-type", payload.content_type.encode())]
        headers += [(k, v.encode()) for k, v in KAFKA.headers(payload.attributes).items()]
        producer = await self._link()
        try:
            await asyncio.wait_for(
                producer.send_and_wait(topic, value=payload.body, key=key, headers=headers),
                self._timeout,
            )
        except PERMANENT_ERRORS as error:
            raise DeliveryError(f"{topic}: {error}", retryable=False) from None
        except TimeoutError:
            self._ready = False
            raise DeliveryError(f"{topic}: no acknowledgement within {self._timeout}s") from None
        except (KafkaError, OSError) as error:
            self._ready = False
            raise DeliveryError(f"{topic}: {error}") from None
        self._ready = True

    async def _open(self) -> AIOKafkaProducer:
        """The running producer, starting one first if needed."""
        if self._producer is not None:
            return self._producer
        producer = AIOKafkaProducer(
            bootstrap_servers=self._servers,
            client_id=f"metastudio-receiver-{self.name}",
            acks="all",
            enable_idempotence=False,  # not supported by every Kafka-compatible broker
            request_timeout_ms=int(self._timeout * 1000),
            retry_backoff_ms=200,
        )
        try:
            await asyncio.wait_for(producer.start(), self._timeout)
        except (KafkaError, TimeoutError, OSError) as error:
            self._ready = False
            await producer.stop()
            raise DeliveryError(f"cannot reach {self._servers}: {error}") from None
        self._producer = producer
        self._ready = True
        return producer

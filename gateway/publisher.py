"""Publishing accepted webhooks to the raw topic: the port the app uses and its Kafka adapter."""

from __future__ import annotations

import asyncio
from typing import Protocol

from gateway.errors import PublishError
from streams.events import Event, RawWebhook

__all__ = [
    "DomainCodec",
    "EventCodec",
    "EventPublisher",
    "KafkaEventPublisher",
    "KafkaRawPublisher",
    "RawPublisher",
    "RecordProducer",
]


class RawPublisher(Protocol):
    """Publishes one raw webhook record; returns only once Kafka acknowledged it."""

    async def publish_raw(self, record: RawWebhook, key: str) -> None:
        """Raise PublishError when the record was not acknowledged (broker unavailable, timeout)."""
        ...


class RecordProducer(Protocol):
    """What KafkaRawPublisher needs of ``streams.producer.EventLogProducer``."""

    async def send(self, topic: str, key: bytes, value: bytes, /) -> None: ...


class EventCodec(Protocol):
    """What KafkaRawPublisher needs of ``streams.codec.AvroCodec``."""

    def encode(self, model: RawWebhook, /) -> bytes: ...


class KafkaRawPublisher:
    """RawPublisher over the event log producer: Avro-encodes the record and awaits Kafka's ack."""

    def __init__(self, producer: RecordProducer, codec: EventCodec, topic: str, timeout_s: float) -> None:
        self._producer = producer
        self._codec = codec
        self._topic = topic
        self._timeout_s = timeout_s

    async def publish_raw(self, record: RawWebhook, key: str) -> None:
        # An encoding failure is a bug, not an outage: it propagates as is.
        value = self._codec.encode(record)
        try:
            await asyncio.wait_for(
                self._producer.send(self._topic, key.encode("utf-8"), value), timeout=self._timeout_s
            )
        except TimeoutError:
            raise PublishError(
                f"Kafka did not acknowledge the record on {self._topic} within {self._timeout_s:g} s"
            ) from None
        except Exception as exc:
            # ProduceError and anything else send raises mean the same thing: no ack, so not durable.
            raise PublishError(f"publishing to {self._topic} failed: {type(exc).__name__}") from exc


class EventPublisher(Protocol):
    """Publishes domain events to ``sms.events`` (the JSON API's send requests, consent changes,
    conversions); returns only once Kafka acknowledged the event."""

    async def publish_event(self, event: Event) -> None:
        """Raise PublishError when the event was not acknowledged."""
        ...


class DomainCodec(Protocol):
    def encode(self, model: Event, /) -> bytes: ...


class KafkaEventPublisher:
    """EventPublisher over the event log producer: Avro, keyed by the profile key (one profile's events
    stay in one partition, in order)."""

    def __init__(self, producer: RecordProducer, codec: DomainCodec, topic: str, timeout_s: float) -> None:
        self._producer = producer
        self._codec = codec
        self._topic = topic
        self._timeout_s = timeout_s

    async def publish_event(self, event: Event) -> None:
        value = self._codec.encode(event)
        try:
            await asyncio.wait_for(
                self._producer.send(self._topic, event.profile_key.encode("utf-8"), value),
                timeout=self._timeout_s,
            )
        except TimeoutError:
            raise PublishError(
                f"Kafka did not acknowledge {event.event_type} on {self._topic} within {self._timeout_s:g} s"
            ) from None
        except Exception as exc:
            raise PublishError(f"publishing to {self._topic} failed: {type(exc).__name__}") from exc

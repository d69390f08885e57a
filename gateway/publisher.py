"""Publishing accepted webhooks to the raw topic: the port the app uses and its Kafka adapter."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from gateway.errors import PublishError
from streams.events import Event, RawWebhook

__all__ = [
    "AckCallback",
    "DomainCodec",
    "EventCodec",
    "EventPublisher",
    "KafkaEventPublisher",
    "KafkaRawPublisher",
    "RawPublisher",
    "RecordProducer",
]


# Called on the event loop with None once Kafka acknowledged a record, or with the reason it did not.
AckCallback = Callable[[Exception | None], None]


class RawPublisher(Protocol):
    """Publishes raw webhook records to Kafka."""

    def start_raw(self, value: bytes, key: str, on_ack: AckCallback) -> None:
        """Enqueue an encoded RawWebhook; ``on_ack`` reports whether Kafka acknowledged it (possibly before
        this returns)."""
        ...


class RecordProducer(Protocol):
    """What the Kafka publishers need of ``streams.producer.EventLogProducer``: enqueue a record and get
    a future that resolves on Kafka's ack (awaiting it directly spares a task per request), or have a
    callback report the ack (no future at all: the webhook path)."""

    def send_nowait(self, topic: str, key: bytes | None, value: bytes, /) -> asyncio.Future[None]: ...

    def produce(self, topic: str, key: bytes | None, value: bytes, on_delivery: AckCallback, /) -> None: ...


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

    def start_raw(self, value: bytes, key: str, on_ack: AckCallback) -> None:
        try:
            self._producer.produce(self._topic, key.encode("utf-8"), value, on_ack)
        except Exception as exc:
            # A full local queue or a stopped producer: an outage, reported like a failed delivery.
            on_ack(PublishError(f"publishing to {self._topic} failed: {exc}"))

    async def publish_raw(self, record: RawWebhook, key: str) -> None:
        """Publish and wait for the ack (up to the timeout); PublishError when there is none."""
        value = self._codec.encode(record)
        try:
            await asyncio.wait_for(
                self._producer.send_nowait(self._topic, key.encode("utf-8"), value), timeout=self._timeout_s
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
                self._producer.send_nowait(self._topic, event.profile_key.encode("utf-8"), value),
                timeout=self._timeout_s,
            )
        except TimeoutError:
            raise PublishError(
                f"Kafka did not acknowledge {event.event_type} on {self._topic} within {self._timeout_s:g} s"
            ) from None
        except Exception as exc:
            raise PublishError(f"publishing to {self._topic} failed: {type(exc).__name__}") from exc

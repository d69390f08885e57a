"""An asyncio wrapper around confluent-kafka's idempotent producer.

``send`` returns only once Kafka acknowledged the record (acks=all); a failed delivery raises
ProduceError. Delivery reports are served on the event loop itself, by a timer that polls while records
are outstanding: no thread of ours contends for the GIL, and a report settles its future (or runs its
callback) directly.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from config.settings import KafkaSettings

__all__ = ["DeliveryCallback", "EventLogProducer", "Headers", "ProduceError", "producer_config"]

# How often delivery reports are served while records are outstanding (an ack waits at most this long
# on top of Kafka's answer), and while none are.
POLL_INTERVAL_S = 0.0005
IDLE_POLL_INTERVAL_S = 1.0


class ProduceError(RuntimeError):
    """Kafka did not acknowledge a record."""


# Record headers as librdkafka takes them: (name, value) pairs, names may repeat.
Headers = list[tuple[str, str | bytes | None]]

# Called on the event loop with None once Kafka acknowledged a record, or with the reason it did not.
DeliveryCallback = Callable[[ProduceError | None], None]


def producer_config(kafka: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    """librdkafka settings for a durable, idempotent producer."""
    config: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": kafka.linger_ms,
        "delivery.timeout.ms": kafka.delivery_timeout_ms,
        "compression.type": kafka.compression_type,
        # The Java client's partitioner, so every producer (Faust's aiokafka included) puts a key on the
        # same partition: all events of one profile stay in order.
        "partitioner": "murmur2_random",
    }
    config.update(overrides)
    return config


class EventLogProducer:
    """Produces records and awaits Kafka's acknowledgement of each."""

    def __init__(
        self, kafka: KafkaSettings, poll_interval_s: float = POLL_INTERVAL_S, **overrides: Any
    ) -> None:
        self._config = producer_config(kafka, **overrides)
        self._poll_interval_s = poll_interval_s
        self._producer: Producer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._poll_timer: asyncio.TimerHandle | None = None
        self._busy = False
        self._settled: list[tuple[DeliveryCallback, ProduceError | None]] = []
        self._settled_lock = threading.Lock()
        self._wakeup_pending = False

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._producer = Producer(self._config)
        self._poll_soon()

    def _poll_soon(self) -> None:
        """Serve delivery reports within the poll interval while records are outstanding, else once a
        second (librdkafka's other events). A poll thread cost more: every report took the GIL from the
        event loop (~12% more CPU per record in the gateway)."""
        assert self._loop is not None
        if self._poll_timer is not None:
            self._poll_timer.cancel()
        self._busy = self._producer is not None and len(self._producer) > 0
        delay = self._poll_interval_s if self._busy else IDLE_POLL_INTERVAL_S
        self._poll_timer = self._loop.call_later(delay, self._poll)

    def _poll(self) -> None:
        self._poll_timer = None
        if self._producer is None:
            return
        self._producer.poll(0)
        self._poll_soon()

    @property
    def started(self) -> bool:
        return self._producer is not None

    async def flush(self, timeout_s: float = 10.0) -> None:
        """Wait for outstanding deliveries (bounded); the producer stays usable."""
        if self._producer is not None:
            # flush() serves the last reports in its thread; they reach the loop through _settle_batch.
            await asyncio.to_thread(self._producer.flush, timeout_s)

    async def stop(self, flush_timeout_s: float = 10.0) -> None:
        """Wait for outstanding deliveries (bounded), then stop polling."""
        if self._producer is None:
            return
        await self.flush(flush_timeout_s)
        if self._poll_timer is not None:
            self._poll_timer.cancel()
            self._poll_timer = None
        self._producer = None

    async def reachable(self, timeout_s: float = 1.0) -> bool:
        """Whether the cluster answers a metadata request within ``timeout_s`` (for readiness checks)."""
        if self._producer is None:
            return False
        producer = self._producer
        try:
            metadata = await asyncio.to_thread(producer.list_topics, None, timeout_s)
        except KafkaException:
            return False
        return bool(metadata.brokers)

    def _on_delivery(self, callback: DeliveryCallback, err: KafkaError | None, _msg: Message) -> None:
        # Runs where poll() or flush() was called: on the loop, report at once; elsewhere (flush() in
        # stop) hand the reports to the loop in batches, one wake-up per round instead of one per record.
        error = None if err is None else ProduceError(err.str())
        if threading.get_ident() == self._loop_thread:
            callback(error)
            return
        assert self._loop is not None
        with self._settled_lock:
            self._settled.append((callback, error))
            if self._wakeup_pending:
                return
            self._wakeup_pending = True
        self._loop.call_soon_threadsafe(self._settle_batch)

    def _settle_batch(self) -> None:
        with self._settled_lock:
            batch, self._settled = self._settled, []
            self._wakeup_pending = False
        for callback, error in batch:
            callback(error)

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        on_delivery: DeliveryCallback,
        headers: Headers | None = None,
    ) -> None:
        """Enqueue a record; ``on_delivery`` reports Kafka's answer on the event loop. Cheaper than a future
        for a caller that needs no more: no future, and no callbacks scheduled to run after it settles."""
        if self._producer is None:
            raise ProduceError("producer is not started")
        try:
            self._producer.produce(
                topic,
                value=value,
                key=key,
                headers=headers,
                on_delivery=partial(self._on_delivery, on_delivery),
            )
        except BufferError as exc:
            raise ProduceError(f"local produce queue is full: {exc}") from exc
        except KafkaException as exc:
            raise ProduceError(str(exc)) from exc
        if not self._busy:
            self._poll_soon()

    def send_nowait(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: Headers | None = None,
    ) -> asyncio.Future[None]:
        """Enqueue a record; the returned future resolves when Kafka acknowledged it."""
        if self._loop is None:
            raise ProduceError("producer is not started")
        future: asyncio.Future[None] = self._loop.create_future()
        self.produce(topic, key, value, partial(_settle, future), headers)
        return future

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: Headers | None = None,
    ) -> None:
        """Produce one record and return once Kafka acknowledged it."""
        await self.send_nowait(topic, key, value, headers)


def _settle(future: asyncio.Future[None], error: ProduceError | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)

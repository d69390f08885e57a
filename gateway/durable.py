"""Durable acknowledgement: a webhook is answered 2xx only once Kafka acknowledged it or, when Kafka did
not answer within the vendor's budget, once it is fsync'd to the local spool."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol

from gateway.errors import PublishError, SpoolError
from gateway.metrics import GatewayMetrics
from gateway.publisher import RawPublisher
from gateway.spool import Spool
from streams.events import RawWebhook

__all__ = ["DurableRecorder", "Durability", "RawCodec"]

log = logging.getLogger(__name__)

RawRecord = tuple[RawWebhook, str]


class Durability(StrEnum):
    """Where an acknowledged request is durable."""

    KAFKA = "kafka"
    SPOOL = "spool"


class RawCodec(Protocol):
    def encode(self, model: RawWebhook, /) -> bytes: ...


class DurableRecorder:
    """Publishes raw records; falls back to the spool for whatever Kafka did not acknowledge in budget."""

    def __init__(
        self,
        publisher: RawPublisher,
        spool: Spool | None,
        codec: RawCodec | None,
        metrics: GatewayMetrics,
    ) -> None:
        if spool is not None and codec is None:
            raise ValueError("a spool needs a codec to encode the records it holds")
        self._publisher = publisher
        self._spool = spool
        self._codec = codec
        self._metrics = metrics
        # Sends that outlived their budget keep running (Kafka may still take them): hold a reference.
        self._late: set[asyncio.Task[None]] = set()

    async def record(self, vendor: str, records: Sequence[RawRecord], budget_s: float) -> Durability:
        """Make ``records`` durable within ``budget_s``; raise PublishError/SpoolError (answer 503) if not."""
        started = time.perf_counter()
        tasks = [asyncio.ensure_future(self._timed(record, key, started)) for record, key in records]
        done, pending = await asyncio.wait(tasks, timeout=budget_s)
        unacked = [
            records[i] for i, task in enumerate(tasks) if task in pending or task.exception() is not None
        ]
        for task in pending:
            self._late.add(task)
            task.add_done_callback(self._forget)
        for task in done:
            error = task.exception()
            # PublishError is an outage (spool it); anything else (an encoding failure) is a bug: a 500.
            if error is not None and not isinstance(error, PublishError):
                raise error
        if not unacked:
            self._metrics.outcome(vendor, Durability.KAFKA.value)
            return Durability.KAFKA
        if self._spool is None or self._codec is None:
            self._metrics.outcome(vendor, "rejected")
            raise PublishError(f"Kafka acknowledged {len(records) - len(unacked)} of {len(records)} records")
        try:
            codec = self._codec
            await self._spool.append([(key.encode("utf-8"), codec.encode(record)) for record, key in unacked])
        except SpoolError:
            self._metrics.outcome(vendor, "rejected")
            raise
        self._metrics.outcome(vendor, Durability.SPOOL.value)
        log.info(
            "%s: %d records spooled after Kafka did not acknowledge within %.1f s",
            vendor,
            len(unacked),
            budget_s,
        )
        return Durability.SPOOL

    async def _timed(self, record: RawWebhook, key: str, started: float) -> None:
        await self._publisher.publish_raw(record, key)
        self._metrics.kafka_ack.observe(time.perf_counter() - started)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._late.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("a late Kafka send failed after its request was spooled: %s", task.exception())

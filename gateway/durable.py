"""Durable acknowledgement: a webhook is answered 2xx only once Kafka acknowledged it or, when Kafka did
not answer within the vendor's budget, once it is fsync'd to the local spool."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from enum import StrEnum
from functools import partial

from gateway.errors import PublishError, SpoolError
from gateway.metrics import GatewayMetrics
from gateway.publisher import RawPublisher
from gateway.spool import Spool

__all__ = ["DurableRecorder", "Durability", "RawRecord"]

log = logging.getLogger(__name__)

# An encoded RawWebhook and its Kafka key.
RawRecord = tuple[bytes, str]


class Durability(StrEnum):
    """Where an acknowledged request is durable."""

    KAFKA = "kafka"
    SPOOL = "spool"


class DurableRecorder:
    """Publishes raw records; falls back to the spool for whatever Kafka did not acknowledge in budget."""

    def __init__(
        self,
        publisher: RawPublisher,
        spool: Spool | None,
        metrics: GatewayMetrics,
    ) -> None:
        self._publisher = publisher
        self._spool = spool
        self._metrics = metrics

    async def record(self, vendor: str, records: Sequence[RawRecord], budget_s: float) -> Durability:
        """Make ``records`` durable within ``budget_s``; raise PublishError/SpoolError (answer 503) if not."""
        acks = _Acks(len(records), self._metrics.kafka_ack.observe)
        for i, (value, key) in enumerate(records):
            self._publisher.start_raw(value, key, partial(acks.settle, i))
        await acks.wait(budget_s)
        unacked = [records[i] for i in acks.unacked()]
        if not unacked:
            self._metrics.outcome(vendor, Durability.KAFKA.value)
            return Durability.KAFKA
        if self._spool is None:
            self._metrics.outcome(vendor, "rejected")
            raise PublishError(f"Kafka acknowledged {len(records) - len(unacked)} of {len(records)} records")
        try:
            await self._spool.append([(key.encode("utf-8"), value) for value, key in unacked])
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


class _Acks:
    """Kafka's answers for one request's records, reported by delivery callbacks on the event loop: one
    waiter and one timer per request, and no future per record (a future per record, its callbacks and a
    waiter woken through them cost ~3 scheduled callbacks per webhook). A late ack (after the budget)
    still reaches the latency histogram."""

    def __init__(self, count: int, observe: Callable[[float], None]) -> None:
        self._started = time.perf_counter()
        self._observe = observe
        self._acked = [False] * count
        self._left = count
        self._waiter: asyncio.Future[None] | None = None

    def settle(self, index: int, error: Exception | None) -> None:
        if error is None:
            self._acked[index] = True
            self._observe(time.perf_counter() - self._started)
        else:
            log.debug("Kafka did not acknowledge a raw record: %s", error)
        self._left -= 1
        if self._left == 0 and self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def wait(self, timeout_s: float) -> None:
        """Return once every record has its answer or ``timeout_s`` passed, whichever comes first."""
        if self._left == 0:
            return
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout_s, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()

    def unacked(self) -> list[int]:
        """The records Kafka has not acknowledged (yet, or ever)."""
        return [i for i, acked in enumerate(self._acked) if not acked]


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)

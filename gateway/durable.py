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

    async def record(self, vendor: str, records: Sequence[RawRecord], budget_s: float) -> Durability:
        """Make ``records`` durable within ``budget_s``; raise PublishError/SpoolError (answer 503) if not."""
        started = time.perf_counter()
        acks = [self._publisher.start_raw(record, key) for record, key in records]
        for ack in acks:
            ack.add_done_callback(lambda done: self._observe(done, started))
        await _settled(acks, budget_s)
        unacked = [records[i] for i, ack in enumerate(acks) if not _acked(ack)]
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

    def _observe(self, ack: asyncio.Future[None], started: float) -> None:
        # Also retrieves the exception of a late failure, which nobody else awaits.
        if _acked(ack):
            self._metrics.kafka_ack.observe(time.perf_counter() - started)
        elif not ack.cancelled():
            log.debug("Kafka did not acknowledge a raw record: %s", ack.exception())


async def _settled(acks: Sequence[asyncio.Future[None]], timeout_s: float) -> None:
    """Return once every future is done or ``timeout_s`` passed, whichever comes first; the futures are
    never cancelled (a late ack still reaches the metrics). One waiter and one timer per request, no task:
    ``wait_for(shield(...))`` costs two more futures, their callbacks and a running-loop lookup each."""
    pending = [ack for ack in acks if not ack.done()]
    if not pending:
        return
    loop = pending[0].get_loop()
    waiter: asyncio.Future[None] = loop.create_future()
    left = len(pending)

    def wake() -> None:
        if not waiter.done():
            waiter.set_result(None)

    def one_done(_ack: asyncio.Future[None]) -> None:
        nonlocal left
        left -= 1
        if left == 0:
            wake()

    for ack in pending:
        ack.add_done_callback(one_done)
    timer = loop.call_later(timeout_s, wake)
    try:
        await waiter
    finally:
        timer.cancel()
        for ack in pending:
            ack.remove_done_callback(one_done)


def _acked(ack: asyncio.Future[None]) -> bool:
    return ack.done() and not ack.cancelled() and ack.exception() is None

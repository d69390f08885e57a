"""Durable acknowledgement: a webhook is answered 2xx only once Kafka acknowledged it or, when Kafka did
not answer within the vendor's budget, once it is fsync'd to the local spool."""

from __future__ import annotations

import asyncio
import logging
import math
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
        self._deadlines = _Deadlines()

    async def record(self, vendor: str, records: Sequence[RawRecord], budget_s: float) -> Durability:
        """Make ``records`` durable within ``budget_s``; raise PublishError/SpoolError (answer 503) if not."""
        acks = _Acks(len(records), self._metrics.kafka_ack.observe)
        for i, (value, key) in enumerate(records):
            self._publisher.start_raw(value, key, partial(acks.settle, i))
        await acks.wait(self._deadlines, budget_s)
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
    waiter per request, and no future per record (a future per record, its callbacks and a waiter woken
    through them cost three scheduled callbacks per webhook). A late ack (after the budget) still
    reaches the latency histogram."""

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

    async def wait(self, deadlines: _Deadlines, timeout_s: float) -> None:
        """Return once every record has its answer or ``timeout_s`` passed, whichever comes first."""
        if self._left == 0:
            return
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        deadlines.add(waiter, timeout_s)
        try:
            await waiter
        finally:
            deadlines.discard(waiter, timeout_s)

    def unacked(self) -> list[int]:
        """The records Kafka has not acknowledged (yet, or ever)."""
        return [i for i, acked in enumerate(self._acked) if not acked]


class _Deadlines:
    """Wakes the waiters whose budget ran out, with one timer for all of them: a timer per request (a
    TimerHandle, its push on the loop's heap, its cancellation and the heap's clean-ups) cost ~3% of a
    webhook's event-loop time. Waiters with the same budget wait in one queue in the order they came,
    which is also the order of their deadlines, so only each queue's head needs the timer."""

    def __init__(self) -> None:
        self._queues: dict[float, dict[asyncio.Future[None], float]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def add(self, waiter: asyncio.Future[None], budget_s: float) -> None:
        loop = waiter.get_loop()
        deadline = loop.time() + budget_s
        self._queues.setdefault(budget_s, {})[waiter] = deadline
        if deadline < self._timer_at:
            self._arm(loop, deadline)

    def discard(self, waiter: asyncio.Future[None], budget_s: float) -> None:
        self._queues[budget_s].pop(waiter, None)

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = loop.call_at(when, self._expire, loop), when

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer, self._timer_at = None, math.inf
        now, heads = loop.time(), []
        for queue in self._queues.values():
            while queue:
                waiter, deadline = next(iter(queue.items()))
                if deadline > now:
                    heads.append(deadline)
                    break
                del queue[waiter]
                if not waiter.done():
                    waiter.set_result(None)
        if heads:
            self._arm(loop, min(heads))

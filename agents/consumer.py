"""The worker's Faust app class, with a Kafka consumer that never commits over an unprocessed record.

faust-streaming (0.15) can skip records for good, which the worker-kill fault test caught (acknowledged
webhooks on ``sms.webhooks.raw``, behind the normalizer's committed offset, never normalized):

1. Around a rebalance Faust drops records it has already fetched (flow-control queues cleared, records of
   a partition that is not active at that moment left out of ``getmany``) without seeking back, so the
   fetcher goes on after them.
2. When the next record it delivers is not the one after the last, Faust takes the missing offsets for a
   compaction or transaction gap (``_add_gap``) and commits over them.
3. It also commits when the first acked offset is one past the committed position: it reads Kafka's
   committed offset ("next to read") as "last done", so a single missing record is committed over; and
   for a partition the group never committed it commits from whatever offset was acked first.

A fourth: when a partition is revoked Faust forgets its committed position before it waits for the batches
still running, whose acks then made it commit from the first of them, over every record between the
group's committed offset and that batch (the same fault test, with the worker fetching every 50 ms).

smsfold's agent topics are never compacted and never written in transactions, so a jump in offsets can
only be records Faust dropped. :class:`WorkerApp`'s consumer records no gaps, takes a partition's first
offset as its committed position when the group has none (the worker reads from the earliest), refuses to
commit while the first acked offset is past the committed position or where that position is unknown
(revoked), and seeks the partition back to the committed position so the dropped records are fetched
again (what was processed meanwhile is processed twice, which deterministic event ids and idempotent
writes absorb).

A rebalance also clears the agents' queues without acking what they held (``flow_control.clear``), so a
record delivered to several agents, one of which had it cleared, is never acked, and Faust's
``wait_empty`` waited for it forever: the revocation hung and no other worker could join (the
second-worker fault test, robinhood/faust#402). :meth:`_HoleSafeConsumer.wait_empty` waits for the
batches agents are running (:class:`BatchActivity`) and then forgets what is still unacked: it was dropped,
so it is not committed and the partition's next owner fetches it again.

It also reports true high watermarks to table recovery (see :meth:`_HoleSafeConsumer.highwaters`), and
takes its fetch wait from the settings: Faust hard-codes 1,500 ms, which on a broker that answers a
waiting fetch only when the wait is over (Tansu) adds up to 1.5 s to every hop between agents.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cached_property
from typing import Any, ClassVar, cast

import faust
from aiokafka import AIOKafkaConsumer
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, ConsumerT, TransportT

from streams.readback import true_ends

__all__ = ["BatchActivity", "WorkerApp"]

log = logging.getLogger("smsfold.worker")

# After a seek back, records fetched before it are still on their way: give the re-fetch this long
# before seeking again.
_REWIND_EVERY_S = 10.0

# Agents take batches off their streams within 0.05 s (run_batches' ``within``): once no batch has run for
# this long, nothing still unacked will be processed by this worker.
_DROPPED_AFTER_S = 0.5


class BatchActivity:
    """How many agent batches are being processed right now, and since when none is (see run_batches)."""

    def __init__(self) -> None:
        self.running = 0
        self._idle_since = time.monotonic()

    @contextmanager
    def batch(self) -> Iterator[None]:
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._idle_since = time.monotonic()

    def idle_for(self) -> float:
        """Seconds since the last batch ended, 0 while one runs."""
        return 0.0 if self.running else time.monotonic() - self._idle_since


class _HoleSafeConsumer(aiokafka_driver.Consumer):
    @cached_property
    def _rewound_at(self) -> dict[TP, float]:
        return {}

    @cached_property
    def _rewinds(self) -> set[asyncio.Task[None]]:
        return set()

    async def perform_seek(self) -> None:
        await super().perform_seek()
        # Faust leaves the committed position unknown (None, or 0 read as None) where the group has none;
        # the first record the worker must process there is the partition's first.
        unknown = [tp for tp in self.assignment()
                   if self._committed_offset[tp] is None and self.app.topics.acks_enabled_for(tp.topic)]
        if unknown and self.app.conf.consumer_auto_offset_reset == "earliest":
            self._committed_offset.update(await self.earliest_offsets(*unknown))

    async def highwaters(self, *partitions: TP) -> Mapping[TP, int]:
        # Table recovery reads a changelog up to its high watermark and refuses to start when a table is
        # ahead of it. The embedded broker (Tansu) reports the base offset of the last batch + 1, so a
        # recovery would stop short of the last batch's records, or crash after a rebalance
        # (ConsistencyError); the real ends are read instead.
        reported = await super().highwaters(*partitions)
        bootstrap = ",".join(f"{url.host}:{url.port}" for url in self.app.conf.broker_consumer)
        ends = await asyncio.to_thread(
            true_ends, bootstrap, {(tp.topic, tp.partition): hw for tp, hw in reported.items()})
        return {tp: ends[(tp.topic, tp.partition)] for tp in reported}

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        # Not a gap: Faust dropped these records. Nothing is recorded, so nothing is committed over them;
        # _new_offset seeks back to fetch them again.
        log.warning("%s: records %d..%d were skipped by the fetcher; they will be fetched again",
                    tp, offset_from, offset_to - 1)

    def _new_offset(self, tp: TP) -> int | None:
        acked = self._acked[tp]
        committed = self._committed_offset[tp]
        if committed is None:
            # A revoked partition (Faust forgets its position first, then waits for the batches running):
            # the acks of those batches must not commit from nowhere over records the partition's next
            # owner has not processed. Its owner commits.
            self._forget_acked(tp, list(acked))
            return None
        if stale := [offset for offset in acked if offset < committed]:
            # Acked here before another worker committed past them: committing from them would go back.
            self._forget_acked(tp, stale)
        if acked and (head := min(acked)) > committed:
            self._rewind(tp, committed, head)
            return None
        return super()._new_offset(tp)

    def _forget_acked(self, tp: TP, offsets: list[int]) -> None:
        gone = set(offsets)
        self._acked[tp][:] = [offset for offset in self._acked[tp] if offset not in gone]
        self._acked_index[tp].difference_update(gone)

    def _rewind(self, tp: TP, committed: int, head: int) -> None:
        now = time.monotonic()
        if now - self._rewound_at.get(tp, -_REWIND_EVERY_S) < _REWIND_EVERY_S:
            return
        self._rewound_at[tp] = now
        log.warning("not committing %s past offset %d, never processed (processed from %d on): seeking "
                    "back to it", tp, committed, head)
        task = asyncio.get_running_loop().create_task(self.seek(tp, committed))
        self._rewinds.add(task)
        task.add_done_callback(self._rewinds.discard)

    async def wait_empty(self) -> None:
        # Faust's own waits until every record delivered to a stream is acked, which records dropped by
        # flow_control.clear() never are (see the module docstring).
        activity = cast(WorkerApp, self.app).batch_activity
        while not self.should_stop and self._unacked_messages:
            await self.commit()
            self._clean_unacked_messages()
            if not self._unacked_messages:
                break
            if activity.idle_for() >= _DROPPED_AFTER_S:
                log.warning("%d fetched records were dropped from the agents' queues before processing; "
                            "not committed, they are fetched again", len(self._unacked_messages))
                self._unacked_messages.clear()
                break
            await asyncio.sleep(0.1)
        await self.commit_and_end_transactions()

    def _new_consumer_thread(self) -> aiokafka_driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _ConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: aiokafka_driver.Transport) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # The aiokafka consumer hands this to its fetcher when it starts (Faust passes a constant).
        consumer._fetch_max_wait_ms = cast(WorkerApp, self.app).fetch_max_wait_ms
        return consumer


class _Transport(aiokafka_driver.Transport):
    Consumer: ClassVar[type[ConsumerT]] = _HoleSafeConsumer


class WorkerApp(faust.App):
    """faust.App with the hole-safe consumer (the producer transport is Faust's own)."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int = 1500, **kwargs: Any) -> None:
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.batch_activity = BatchActivity()
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> TransportT:
        return _Transport(self.conf.broker_consumer, self)

"""The worker's consumer never commits over a record that was not processed (agents/consumer.py).

faust-streaming's own rule commits over a one-record hole at the head of the acked offsets and over
recorded "gaps"; these tests pin the corrected rule, and that the Faust methods it overrides still exist
(a renamed method would silently bring the loss back)."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from faust.transport.consumer import Consumer as FaustConsumer
from faust.types import TP

from agents.consumer import WorkerApp

TP0 = TP("sms.webhooks.raw", 0)


def test_the_faust_methods_the_worker_consumer_overrides_still_exist() -> None:
    for name in ("_new_offset", "_add_gap", "perform_seek", "highwaters", "seek"):
        assert callable(getattr(FaustConsumer, name, None)), name


@pytest.fixture
def consumer() -> Any:
    app = WorkerApp("unit-consumer", broker="kafka://127.0.0.1:1", web_enabled=False)
    consumer = app.consumer
    consumer.seeks = []

    async def record_seek(tp: TP, offset: int) -> None:  # the broker is not the subject here
        consumer.seeks.append((tp, offset))

    consumer.seek = record_seek
    return consumer


def _acked(consumer: Any, committed: int | None, offsets: list[int]) -> None:
    consumer._committed_offset[TP0] = committed
    consumer._acked[TP0] = list(offsets)
    consumer._acked_index[TP0] = set(offsets)


async def test_processed_records_after_the_committed_position_are_committed(consumer: Any) -> None:
    _acked(consumer, 10, [10, 11, 12])
    assert consumer._new_offset(TP0) == 13
    assert consumer.seeks == []


async def test_a_single_unprocessed_record_is_not_committed_over_and_is_fetched_again(consumer: Any) -> None:
    # Faust's own rule commits 13 here (it reads the committed offset 10 as "last done").
    _acked(consumer, 10, [11, 12])
    assert consumer._new_offset(TP0) is None
    await asyncio.sleep(0)
    assert consumer.seeks == [(TP0, 10)]
    # Asked again at once: no second seek while the re-fetch is on its way.
    assert consumer._new_offset(TP0) is None
    await asyncio.sleep(0)
    assert consumer.seeks == [(TP0, 10)]


async def test_an_offset_jump_is_not_taken_for_a_gap(consumer: Any) -> None:
    _acked(consumer, 10, [10, 11])
    await consumer._add_gap(TP0, 12, 20)  # Faust calls this when record 21 follows record 11
    consumer._acked[TP0].append(21)
    assert consumer._new_offset(TP0) == 12  # up to the hole, never past it
    _acked(consumer, 12, [21])
    assert consumer._new_offset(TP0) is None


async def test_the_worker_consumer_takes_its_fetch_wait_from_the_settings() -> None:
    # Faust passes fetch_max_wait_ms=1500 to aiokafka; the worker's consumer thread replaces it, through
    # an attribute aiokafka's consumer hands its fetcher at start (checked here to still be that one).
    app = WorkerApp("unit-fetch-wait", broker="kafka://127.0.0.1:1", web_enabled=False, fetch_max_wait_ms=40)
    thread = app.consumer._new_consumer_thread()
    aiokafka_consumer = thread._create_worker_consumer(app.transport)
    assert aiokafka_consumer._fetch_max_wait_ms == 40
    assert "self._fetch_max_wait_ms" in inspect.getsource(type(aiokafka_consumer).start)


async def test_acks_for_a_revoked_partition_commit_nothing(consumer: Any) -> None:
    # Faust forgets a revoked partition's committed position, then the batches still running ack their
    # records: committing from the first of them would skip what lies between the group's committed
    # offset and that batch (its next owner had not processed it).
    _acked(consumer, None, [71, 72, 73])
    assert consumer._new_offset(TP0) is None
    assert consumer._acked[TP0] == [] and consumer._acked_index[TP0] == set()


async def test_offsets_acked_before_another_worker_committed_past_them_do_not_move_it_back(
    consumer: Any,
) -> None:
    _acked(consumer, 95, [71, 72, 95, 96])
    assert consumer._new_offset(TP0) == 97
    assert consumer.seeks == []


class _Message:
    """What the consumer tracks of a delivered record (weakly referenced, like Faust's messages)."""

    acked = False


async def test_a_revocation_waits_for_running_batches_then_forgets_records_dropped_unprocessed() -> None:
    app = WorkerApp("unit-wait-empty", broker="kafka://127.0.0.1:1", web_enabled=False)
    consumer = app.consumer
    dropped, in_batch = _Message(), _Message()
    consumer._unacked_messages.update({dropped, in_batch})

    async def batch() -> None:
        with app.batch_activity.batch():
            await asyncio.sleep(0.3)
            in_batch.acked = True

    running = asyncio.create_task(batch())
    await asyncio.sleep(0)
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(consumer.wait_empty(), 5)  # Faust's own never returns: `dropped` is never acked
    assert running.done(), "returned while a batch was still running"
    assert asyncio.get_running_loop().time() - started >= 0.3 + 0.5  # the batch, then the quiet period
    assert len(consumer._unacked_messages) == 0

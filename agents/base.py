"""What every agent module shares: the worker context, safe batching and retry-until-written."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import faust
from faust.types import EventT

from agents.consumer import WorkerApp
from agents.metrics import PipelineMetrics
from config.companies import CompanyDirectory
from config.settings import Settings
from streams.checks import event_problem
from streams.codec import AvroCodec, DecodeError
from streams.events import Event
from streams.producer import EventLogProducer, Headers

__all__ = ["WorkerContext", "retry_forever", "run_batches"]

log = logging.getLogger("smsfold.worker")

_MAX_BACKOFF_S = 5.0
T = TypeVar("T")
E = TypeVar("E", bound=Event)

# The delivery futures of the records sent while the current task's batch runs (see run_batches).
_batch_sends: ContextVar[list[Awaitable[Any]] | None] = ContextVar("batch_sends", default=None)


async def retry_forever(what: str, func: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run a read-model write until it succeeds; the batch's offsets stay uncommitted meanwhile."""
    delay = 0.1
    while True:
        try:
            return await func(*args)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the store is down or refused the write: back off and retry the batch
            log.warning("%s failed (%s: %s); retrying in %.1fs", what, type(exc).__name__, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_BACKOFF_S)


async def run_batches(
    stream: faust.StreamT[bytes],
    max_events: int,
    within_s: float,
    handle: Callable[[Sequence[EventT[bytes]]], Awaitable[None]],
) -> None:
    """Feed batches to ``handle`` and ack a batch only after ``handle`` returned and Kafka acknowledged
    every record it sent.

    Faust's own ``take_events`` acks a batch even when its body raised or was cancelled, and Faust
    commits acked offsets on errors and on stop, which would skip unprocessed events. Faust also
    commits after a producer flush that does not raise when a send failed (it only logs a warning),
    so an output Kafka refused would be lost behind a committed input. Here an unexpected error or a
    refused send stops the whole process instead: nothing past the last confirmed batch is committed,
    and the restarted worker processes the batch again.
    """
    # noack_take is faust-streaming's manual-ack variant of take_events (absent from StreamT's stubs).
    activity = cast(WorkerApp, stream.app).batch_activity  # a rebalance waits while a batch runs
    async for batch in stream.noack_take(max_events, within=within_s):  # type: ignore[attr-defined]
        events = cast(Sequence[EventT[bytes]], batch)
        with activity.batch():
            sends: list[Awaitable[Any]] = []
            token = _batch_sends.set(sends)
            try:
                await handle(events)
                await asyncio.gather(*sends)  # each resolves to Kafka's ack, or raises what the send met
            except Exception:
                log.critical("unexpected error in %s; exiting, batch not committed", stream, exc_info=True)
                logging.shutdown()
                os._exit(70)
            finally:
                _batch_sends.reset(token)
            for event in events:
                await stream.ack(event)


def _track(delivery: Awaitable[Any]) -> None:
    """Make the running batch wait for this send's acknowledgement (outside a batch: nothing to wait on)."""
    sends = _batch_sends.get()
    if sends is not None:
        sends.append(delivery)


@dataclass
class WorkerContext:
    """The app and what its agents share: settings, companies, codec, the topics they read and the producer
    they write with."""

    app: faust.App
    settings: Settings
    companies: CompanyDirectory
    codec: AvroCodec
    raw_topic: faust.TopicT
    events_topic: faust.TopicT
    # What the agents emit goes through librdkafka, not Faust's aiokafka producer: the same records, keys
    # and partitions (both partition with murmur2), with the batching and protocol work in C threads
    # instead of the event loop. run_batches waits for each send's ack before it acks the batch, which is
    # what Faust's flush before a commit provided.
    producer: EventLogProducer
    metrics: PipelineMetrics = field(default_factory=PipelineMetrics)

    async def _send(self, topic: str, key: bytes | None, value: bytes, headers: Headers | None) -> None:
        if not self.producer.started:
            await self.producer.start()  # on the worker's event loop, by the first agent that sends
        _track(self.producer.send_nowait(topic, key, value, headers))

    async def dead_letter(self, key: bytes | None, value: bytes, reason: str, source: str) -> None:
        """Park a record that cannot be processed, with its reason and original bytes."""
        log.warning("dead-lettered a record from %s: %s", source, reason)
        headers: Headers = [("reason", reason.encode()), ("source_topic", source.encode())]
        await self._send(self.settings.topics.deadletter, key, value, headers)

    async def emit(self, event: Event) -> None:
        """Send a domain event to ``sms.events``; the batch is acked only after Kafka acknowledged it."""
        await self._send(
            self.settings.topics.events, event.profile_key.encode(), self.codec.encode(event), None
        )

    def decode_event(self, value: bytes, types: tuple[type[E], ...]) -> E | None:
        """A record of ``sms.events`` as an event if it is one of ``types``, else None; records of other
        types are skipped by their schema fingerprint, undecoded (most of the log, for most agents).
        Poison (undecodable, not an event, or failing :func:`streams.checks.event_problem`) is None too:
        the ClickHouse projector dead-letters it, the deciders skip it, so poison never makes a decider
        emit anything."""
        model = self.codec.model_of(value)
        if model is None or not issubclass(model, types):
            return None
        try:
            record = cast(E, self.codec.decode(value))  # a model of ``types``: its header said so
        except DecodeError:
            return None
        envelope = {"event_type": record.event_type, "event_id": record.event_id,
                    "company_id": record.company_id, "profile_key": record.profile_key}
        return None if event_problem(type(record).__name__, envelope) else record

    def decode_events(self, batch: Sequence[EventT[bytes]], types: tuple[type[E], ...]) -> list[E]:
        """The events of ``types`` in a batch from ``sms.events``, poison left out."""
        return [e for ev in batch if (e := self.decode_event(ev.value, types)) is not None]

    async def refuse(self, agent: str, ev: EventT[bytes], exc: Exception) -> None:
        """Dead-letter an event whose pure fold raised: the same event would raise again after a restart,
        so exiting (as for an unexpected error) would be a crash loop."""
        reason = f"{agent}: {type(exc).__name__}: {exc}"[:500]
        log.error("%s could not fold a record of %s", agent, self.settings.topics.events, exc_info=exc)
        await self.dead_letter(ev.key, ev.value, reason, self.settings.topics.events)

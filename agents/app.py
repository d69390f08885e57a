"""The Faust worker: an app factory and its agents (deciders and projectors).

Deciders read events and emit events; projectors fold ``sms.events`` into read models. Outputs go
through Faust's producer, which Faust flushes before it commits the source offsets, and every agent
works in batches whose offsets are acked only after the batch body ran: a crash re-delivers, never
loses. Deterministic event ids and guarded read-model writes make the re-delivery harmless.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import faust
import redis.asyncio as aioredis
from faust.types import EventT

from agents.consent import ConsentState, fold_consent
from agents.normalize import NormalizationError, normalize
from config.companies import CompanyDirectory
from config.settings import Settings
from projections.clickhouse import ClickHouseEventWriter
from projections.redis_store import RedisConsentStore
from streams.codec import AvroCodec, DecodeError
from streams.events import ConsentChanged, Event, InboundReceived, RawWebhook

__all__ = ["create_worker_app"]

log = logging.getLogger("smsfold.worker")

_MAX_BACKOFF_S = 5.0


def _broker_urls(bootstrap_servers: str) -> list[str]:
    return [f"kafka://{server.strip()}" for server in bootstrap_servers.split(",") if server.strip()]


async def _retry_forever(what: str, func: Any, *args: Any) -> Any:
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


async def _run_batches(
    stream: faust.StreamT[bytes],
    max_events: int,
    within_s: float,
    handle: Callable[[Sequence[EventT[bytes]]], Awaitable[None]],
) -> None:
    """Feed batches to ``handle`` and ack a batch only after ``handle`` returned.

    Faust's own ``take_events`` acks a batch even when its body raised or was cancelled, and Faust
    commits acked offsets on errors and on stop, which would skip unprocessed events. Here an
    unexpected error stops the whole process instead: nothing past the last finished batch is
    committed, and the restarted worker processes the batch again.
    """
    # noack_take is faust-streaming's manual-ack variant of take_events (absent from StreamT's stubs).
    async for batch in stream.noack_take(max_events, within=within_s):  # type: ignore[attr-defined]
        events = cast(Sequence[EventT[bytes]], batch)
        try:
            await handle(events)
        except Exception:
            log.critical("unexpected error in %s; exiting without committing the batch", stream,
                         exc_info=True)
            logging.shutdown()
            os._exit(70)
        for event in events:
            await stream.ack(event)


def create_worker_app(settings: Settings, companies: CompanyDirectory) -> faust.App:
    """Build the Faust app with its agents; nothing connects until the worker starts."""
    kafka, topics, worker = settings.kafka, settings.topics, settings.worker
    app = faust.App(
        worker.app_id,
        broker=_broker_urls(kafka.bootstrap_servers),
        store=worker.store,
        topic_partitions=topics.events_partitions,
        topic_replication_factor=topics.replication_factor,
        topic_disable_leader=True,
        broker_session_timeout=kafka.session_timeout_ms / 1000,
        broker_heartbeat_interval=kafka.heartbeat_interval_ms / 1000,
        broker_commit_every=worker.projector_batch_size,
        broker_commit_interval=worker.projector_batch_seconds,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
    )
    codec = AvroCodec()
    raw_topic = app.topic(topics.raw, key_type=bytes, value_type=bytes, partitions=topics.raw_partitions)
    events_topic = app.topic(topics.events, key_type=bytes, value_type=bytes)
    deadletter_topic = app.topic(topics.deadletter, key_type=bytes, value_type=bytes)
    # Keyed like sms.events and partitioned by the same murmur2 hash, so a profile's consent lives in
    # the changelog partition of its events whatever the batch it was written in.
    consent_table = app.Table(
        "consent",
        default=None,
        partitions=topics.events_partitions,
        schema=faust.Schema(key_type=str, value_type=None, key_serializer="raw", value_serializer="json"),
        use_partitioner=True,
    )

    async def dead_letter(key: bytes | None, value: bytes, reason: str, source: str) -> None:
        log.warning("dead-lettered a record from %s: %s", source, reason)
        await deadletter_topic.send(
            key=key, value=value, headers={"reason": reason.encode(), "source_topic": source.encode()}
        )

    async def emit(event: Event) -> None:
        await events_topic.send(key=event.profile_key.encode(), value=codec.encode(event))

    async def decode_events(batch: Sequence[EventT[bytes]], *, dead_letter_poison: bool) -> list[Event]:
        out: list[Event] = []
        for ev in batch:
            try:
                record = codec.decode(ev.value)
            except DecodeError as exc:
                if dead_letter_poison:
                    await dead_letter(ev.key, ev.value, exc.reason, topics.events)
                continue
            if isinstance(record, Event):
                out.append(record)
        return out

    @app.agent(raw_topic, name="normalizer")
    async def normalizer(stream: faust.StreamT[bytes]) -> None:
        async def handle(batch: Sequence[EventT[bytes]]) -> None:
            for ev in batch:
                try:
                    raw = codec.decode(ev.value)
                    if not isinstance(raw, RawWebhook):
                        raise NormalizationError(f"expected RawWebhook, got {type(raw).__name__}")
                    await emit(normalize(raw, companies))
                except (DecodeError, NormalizationError) as exc:
                    await dead_letter(ev.key, ev.value, exc.reason, topics.raw)

        await _run_batches(stream, 500, 0.05, handle)

    @app.agent(events_topic, name="inbound-decider")
    async def inbound_decider(stream: faust.StreamT[bytes]) -> None:
        async def handle(batch: Sequence[EventT[bytes]]) -> None:
            for event in await decode_events(batch, dead_letter_poison=False):
                if not isinstance(event, InboundReceived):
                    continue
                state = ConsentState.from_json(consent_table.get(event.profile_key))
                new_state, changed = fold_consent(state, event)
                if new_state != state:
                    consent_table[event.profile_key] = new_state.to_json()
                if changed is not None:
                    await emit(changed)

        await _run_batches(stream, 500, 0.05, handle)

    ch_writer = ClickHouseEventWriter(settings.clickhouse)

    @app.agent(events_topic, name="clickhouse-projector")
    async def clickhouse_projector(stream: faust.StreamT[bytes]) -> None:
        async def handle(batch: Sequence[EventT[bytes]]) -> None:
            events = await decode_events(batch, dead_letter_poison=True)
            await _retry_forever("ClickHouse insert", asyncio.to_thread, ch_writer.write, events)

        await _run_batches(stream, worker.projector_batch_size, worker.projector_batch_seconds, handle)

    redis_client: aioredis.Redis = aioredis.Redis.from_url(settings.redis.url)
    consent_store = RedisConsentStore(redis_client, settings.redis)

    @app.agent(events_topic, name="redis-projector")
    async def redis_projector(stream: faust.StreamT[bytes]) -> None:
        async def handle(batch: Sequence[EventT[bytes]]) -> None:
            events = await decode_events(batch, dead_letter_poison=False)
            changes = [e for e in events if isinstance(e, ConsentChanged)]
            await _retry_forever("Redis consent write", consent_store.apply, changes)

        await _run_batches(stream, 500, 0.2, handle)

    @app.service
    class _ReadModelClients(faust.Service):
        """Closes the read-model connections when the worker stops."""

        async def on_stop(self) -> None:
            ch_writer.close()
            await redis_client.aclose()

    return app

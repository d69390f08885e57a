"""Projector agents: pure folds of ``sms.events`` into the ClickHouse and Redis read models."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import faust
import redis.asyncio as aioredis
from faust.types import EventT

from agents.base import WorkerContext, retry_forever, run_batches
from projections.clickhouse import ClickHouseEventWriter
from projections.conversation import RedisConversationStore
from projections.message_status import RedisMessageStatusStore
from projections.redis_store import RedisConsentStore
from streams.events import ConsentChanged

__all__ = ["register_projectors"]


def register_projectors(ctx: WorkerContext) -> None:
    settings = ctx.settings
    worker = settings.worker
    ch_writer = ClickHouseEventWriter(settings.clickhouse)

    @ctx.app.agent(ctx.events_topic, name="clickhouse-projector")
    async def clickhouse_projector(stream: faust.StreamT[bytes]) -> None:
        async def handle(batch: Sequence[EventT[bytes]]) -> None:
            events = await ctx.decode_events(batch, dead_letter_poison=True)
            await retry_forever("ClickHouse insert", asyncio.to_thread, ch_writer.write, events)
            ctx.metrics.observe_projected("event_log", events)

        await run_batches(stream, worker.projector_batch_size, worker.projector_batch_seconds, handle)

    redis_client: aioredis.Redis = aioredis.Redis.from_url(settings.redis.url)
    consent_store = RedisConsentStore(redis_client, settings.redis)
    conversation_store = RedisConversationStore(redis_client, settings.redis)
    status_store = RedisMessageStatusStore(redis_client, settings.redis)

    @ctx.app.agent(ctx.events_topic, name="redis-projector")
    async def redis_projector(stream: faust.StreamT[bytes]) -> None:
        async def handle(batch: Sequence[EventT[bytes]]) -> None:
            events = await ctx.decode_events(batch, dead_letter_poison=False)
            changes = [e for e in events if isinstance(e, ConsentChanged)]
            await retry_forever("Redis consent write", consent_store.apply, changes)
            await retry_forever("Redis conversation write", conversation_store.apply, events)
            await retry_forever("Redis message status write", status_store.apply, events)
            ctx.metrics.observe_projected("timeline", events)

        await run_batches(stream, 500, 0.2, handle)

    @ctx.app.service
    class _ReadModelClients(faust.Service):
        """Closes the read-model connections when the worker stops."""

        async def on_stop(self) -> None:
            ch_writer.close()
            await redis_client.aclose()

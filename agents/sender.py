"""The sender agent: ``SendApproved`` decisions on ``sms.events`` → links, segments, the vendor call →
``LinkCreated`` and ``MessageSent`` / ``MessageFailed`` back onto ``sms.events``.

It is separate from the profile decider on purpose: vendor calls wait on per-number rate limits (a long
code takes about one message a second) and on vendor retries, and none of that may hold up consent
changes, which the decider must fold at once. The at-most-once guarantee and its reconciliation are in
``agents.send.dispatch``; the attempt marks live in the ``sends`` table (changelog-backed, keyed and
partitioned like ``sms.events``), flushed before any vendor call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiohttp
import faust
import redis.asyncio as aioredis
from faust.types import EventT, TableT

from agents.base import WorkerContext, run_batches
from agents.send.dispatch import DONE, Dispatcher
from agents.send.vendors.base import SMSClient
from agents.send.vendors.factory import build_client
from agents.send.vendors.ratelimit import SendingRateLimiter
from agents.send.vendors.retry import RetryPolicy
from agents.send.vendors.simulated import SimulatedVendor
from config.companies import Company
from projections.links import RedisLinkStore
from streams.events import SendApproved

__all__ = ["TableAttemptLog", "register_sender"]

# Marks kept per profile: enough to recognise any redelivery (it comes right behind the original).
_MARKS_PER_PROFILE = 128


class TableAttemptLog:
    """Attempt marks in a Faust table: profile key → {message id: mark}."""

    def __init__(self, table: TableT[str, Any], app: faust.App) -> None:
        self._table = table
        self._app = app

    def get(self, approved: SendApproved) -> str | None:
        marks = self._table.get(approved.profile_key) or {}
        mark = marks.get(str(approved.message_id))
        return str(mark) if mark is not None else None

    def put(self, approved: SendApproved, mark: str) -> None:
        marks = dict(self._table.get(approved.profile_key) or {})
        marks.pop(str(approved.message_id), None)
        marks[str(approved.message_id)] = mark
        self._table[approved.profile_key] = dict(list(marks.items())[-_MARKS_PER_PROFILE:])

    async def flush(self) -> None:
        # The table's changelog records go through the app's producer: flushing waits for their acks.
        await self._app.producer.flush()


class _Resources:
    """The sender's connections, opened in the worker's loop on first use and closed on stop."""

    def __init__(self, ctx: WorkerContext) -> None:
        self._ctx = ctx
        self._session: aiohttp.ClientSession | None = None
        self._redis: aioredis.Redis | None = None
        self._clients: dict[str, SMSClient] = {}
        self._dispatcher: Dispatcher | None = None

    def dispatcher(self) -> Dispatcher:
        if self._dispatcher is None:
            settings = self._ctx.settings
            self._session = aiohttp.ClientSession()
            self._redis = aioredis.Redis.from_url(settings.redis.url)
            metrics = self._ctx.metrics
            self._dispatcher = Dispatcher(
                self._ctx.companies, self._client_for, RedisLinkStore(self._redis, settings.redis),
                SendingRateLimiter(settings.vendor), RetryPolicy.from_settings(settings.vendor),
                settings.gateway.public_base_url,
                on_outcome=lambda vendor, company, outcome: metrics.vendor_sends.labels(
                    vendor, company, outcome).inc(),
            )
        return self._dispatcher

    def _client_for(self, company: Company) -> SMSClient:
        # One client per company for the life of the worker: the simulator keeps its accepted
        # messages (idempotency) and pending callbacks in the instance.
        client = self._clients.get(company.id)
        if client is None:
            assert self._session is not None
            client = build_client(self._ctx.settings, company, self._ctx.companies, self._session)
            self._clients[company.id] = client
        return client

    async def close(self) -> None:
        for client in self._clients.values():
            if isinstance(client, SimulatedVendor):
                await client.close()
        if self._session is not None:
            await self._session.close()
        if self._redis is not None:
            await self._redis.aclose()


def register_sender(ctx: WorkerContext) -> None:
    sends = ctx.app.Table(
        "sends",
        default=None,
        partitions=ctx.settings.topics.events_partitions,
        schema=faust.Schema(key_type=str, value_type=None, key_serializer="raw", value_serializer="json"),
        use_partitioner=True,
    )
    attempts = TableAttemptLog(sends, ctx.app)
    resources = _Resources(ctx)

    @ctx.app.agent(ctx.events_topic, name="sender")
    async def sender(stream: faust.StreamT[bytes]) -> None:
        async def handle(batch: Sequence[EventT[bytes]]) -> None:
            approvals = ctx.decode_events(batch, (SendApproved,))
            if not approvals:
                return
            for outcome in await resources.dispatcher().dispatch(approvals, attempts):
                for event in outcome.events:
                    await ctx.emit(event)
                attempts.put(outcome.approved, DONE)

        await run_batches(stream, ctx.settings.worker.sender_batch_size, 0.05, handle)

    @ctx.app.service
    class _SenderResources(faust.Service):
        """Closes the sender's vendor sessions and Redis connection when the worker stops."""

        async def on_stop(self) -> None:
            await resources.close()

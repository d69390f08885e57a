"""The profile API's reads (gateway.profiles.ProfileReads) over the read models: consent and timeline from
projections.queries (blocking Redis and ClickHouse clients, so run in a thread, never on the event loop),
the conversation from projections.conversation (asyncio Redis)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

import redis
import redis.asyncio as aioredis

from config import Settings
from gateway.errors import ApiError
from projections.clickhouse import clickhouse_client
from projections.conversation import RedisConversationStore
from projections.queries import ProfileQueries, QueryError
from streams.events import profile_key

__all__ = ["StoreProfileReads"]

P = ParamSpec("P")
T = TypeVar("T")


class StoreProfileReads:
    """ProfileReads over Redis and ClickHouse; a refused query is a 400 naming the field."""

    def __init__(self, settings: Settings, async_redis: aioredis.Redis) -> None:
        self._sync_redis: redis.Redis = redis.Redis.from_url(settings.redis.url)
        self._queries = ProfileQueries(
            self._sync_redis, settings.redis.key_prefix, lambda: clickhouse_client(settings.clickhouse),
            settings.projector.timeline_entries)
        self._conversation = RedisConversationStore(async_redis, settings.redis)

    async def consent(self, company_id: str, phone: str) -> Mapping[str, Any] | None:
        view = await self._run(self._queries.consent, company_id, phone)
        return dataclasses.asdict(view) if view is not None else None

    async def timeline(
        self, company_id: str, phone: str, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        page = await self._run(self._queries.timeline, company_id, phone, limit, cursor)
        return page.items, page.next_cursor

    async def conversation(self, company_id: str, phone: str, limit: int) -> list[dict[str, Any]]:
        messages = await self._conversation.messages(profile_key(company_id, phone), limit)
        return [message.to_json() for message in messages]

    def close(self) -> None:
        self._sync_redis.close()

    async def _run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except QueryError as exc:
            raise ApiError(400, "invalid_field", str(exc), field=exc.field) from None

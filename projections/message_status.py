"""Redis read model: each outbound message's delivery status now, folded by rank, never arrival order.

Keyed by vendor and vendor message id, as the callbacks report it; and by our own message id from
``DeliveryStatusChanged`` (the profile decider joins callbacks to the message they are about). The Redis
projector (projections.redis_store.RedisSink) writes both in the same script as the rest of its batch,
applying a status only when it ranks higher than the stored one: a late ``sent`` never overwrites
``delivered``, a part's success never overwrites a failure, and duplicates change nothing.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from config.settings import RedisSettings
from projections.keys import AsyncActiveKeys
from streams.statuses import DeliveryStatus

__all__ = ["RedisMessageStatusStore", "status_of"]

_STATUS_OF_TYPE = {
    "MessageDelivered": DeliveryStatus.DELIVERED.value,
    "MessageFailed": DeliveryStatus.FAILED.value,
}


def status_of(event: dict[str, Any]) -> str | None:
    """The canonical status a vendor callback reports, or None for other events.

    The sender's own refusals carry no vendor message id: they are known by our message id only.
    """
    kind = event["event_type"]
    if kind not in _STATUS_OF_TYPE and kind != "MessageStatusUpdated" or not event.get("vendor_message_id"):
        return None
    if kind == "MessageStatusUpdated":
        return str(event["status"])
    return _STATUS_OF_TYPE.get(kind)


class RedisMessageStatusStore:
    """Reads status per message under ``{prefix}:message-status:{vendor}:{vendor_message_id}``."""

    def __init__(self, client: aioredis.Redis, settings: RedisSettings) -> None:
        self._redis = client
        self._keys = AsyncActiveKeys(client, settings.key_prefix)

    async def get(self, vendor: str, vendor_message_id: str) -> dict[str, str]:
        raw = await self._redis.hgetall((await self._keys.keys()).message_status(vendor, vendor_message_id))
        return {_text(k): _text(v) for k, v in raw.items()}

    async def get_message(self, message_id: str) -> dict[str, str]:
        """Our message's status now (empty until the vendor accepted or refused it)."""
        raw = await self._redis.hgetall((await self._keys.keys()).message_status_by_id(message_id))
        return {_text(k): _text(v) for k, v in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

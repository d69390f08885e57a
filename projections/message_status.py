"""Redis read model: each outbound message's delivery status now, folded by rank, never arrival order.

Keyed by vendor and vendor message id, as the callbacks report it; and by our own message id from
``DeliveryStatusChanged`` (the profile decider joins callbacks to the message they are about). A write
applies only when its status ranks higher than the stored one, so a late ``sent`` never overwrites
``delivered``, a part's success never overwrites a failure, and duplicates change nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis

from config.settings import RedisSettings
from streams.events import DeliveryStatusChanged, Event, MessageDelivered, MessageFailed, MessageStatusUpdated
from streams.statuses import DeliveryStatus, status_rank

__all__ = ["RedisMessageStatusStore", "status_of"]

# KEYS[1] = status hash; ARGV = rank, then field/value pairs.
_RANKED_HSET = """
local current = tonumber(redis.call('HGET', KEYS[1], 'rank') or '-1')
if tonumber(ARGV[1]) <= current then return 0 end
redis.call('HSET', KEYS[1], 'rank', ARGV[1], unpack(ARGV, 2))
return 1
"""

_StatusEvent = MessageDelivered | MessageFailed | MessageStatusUpdated


def status_of(event: Event) -> str | None:
    """The canonical status an event reports, or None for events that are not delivery statuses."""
    if isinstance(event, MessageDelivered):
        return DeliveryStatus.DELIVERED.value
    if isinstance(event, MessageFailed):
        return DeliveryStatus.FAILED.value
    if isinstance(event, MessageStatusUpdated):
        return event.status
    return None


class RedisMessageStatusStore:
    """Status per message under ``{prefix}:message-status:{vendor}:{vendor_message_id}``."""

    def __init__(self, client: aioredis.Redis, settings: RedisSettings) -> None:
        self._redis = client
        self._prefix = settings.key_prefix
        self._script = client.register_script(_RANKED_HSET)

    def key(self, vendor: str, vendor_message_id: str) -> str:
        return f"{self._prefix}:message-status:{vendor}:{vendor_message_id}"

    def message_key(self, message_id: str) -> str:
        return f"{self._prefix}:message-status-by-id:{message_id}"

    async def apply(self, events: Sequence[Event]) -> int:
        """Fold the status events among ``events``; returns how many moved a status forward."""
        # The sender's own refusals have no vendor message id: they are known by our id only.
        updates = [(e, s) for e in events if isinstance(e, _StatusEvent) and e.vendor_message_id
                   and (s := status_of(e)) is not None]
        ours = [e for e in events if isinstance(e, DeliveryStatusChanged) and e.message_id]
        if not updates and not ours:
            return 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for c in ours:
                await self._script(
                    keys=[self.message_key(str(c.message_id))],
                    args=[status_rank(c.status), "status", c.status, "profile_key", c.profile_key,
                          "vendor", c.vendor, "vendor_message_id", c.vendor_message_id,
                          "error_code", c.error_code, "failure_category", c.failure_category,
                          "occurred_at", c.occurred_at, "event_id", c.event_id],
                    client=pipe,
                )
            for e, status in updates:
                failure = (e.error_code, e.failure_category) if isinstance(e, MessageFailed) else ("", "")
                await self._script(
                    keys=[self.key(e.vendor, e.vendor_message_id)],
                    args=[status_rank(status), "status", status, "profile_key", e.profile_key,
                          "message_id", e.message_id or "", "error_code", failure[0],
                          "failure_category", failure[1], "occurred_at", e.occurred_at,
                          "event_id", e.event_id],
                    client=pipe,
                )
            results = await pipe.execute()
        return sum(int(r) for r in results)

    async def get(self, vendor: str, vendor_message_id: str) -> dict[str, str]:
        raw = await self._redis.hgetall(self.key(vendor, vendor_message_id))
        return {_text(k): _text(v) for k, v in raw.items()}

    async def get_message(self, message_id: str) -> dict[str, str]:
        """Our message's status now (empty until the vendor accepted or refused it)."""
        raw = await self._redis.hgetall(self.message_key(message_id))
        return {_text(k): _text(v) for k, v in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

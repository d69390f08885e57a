"""Redis read model: the conversation, i.e. the unrecognized inbound messages a human should answer.

One sorted set per profile, scored by the message's time, with the full body, written by the Redis
projector in the same script as the rest of its batch. An entry is immutable and names its event id, so
adding it again (redelivery, replay) changes nothing, and the order is the messages' time, not arrival.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from config.settings import RedisSettings
from projections.keys import AsyncActiveKeys
from streams.events import MessageType

__all__ = ["ConversationMessage", "RedisConversationStore"]

# How many conversation messages a profile keeps in Redis (older ones stay in ClickHouse's events).
CONVERSATION_KEEP = 1000


@dataclass(frozen=True, slots=True)
class ConversationMessage:
    """One message of a profile's conversation, as kept for a human."""

    event_id: str
    occurred_at: int
    received_at: int
    body: str
    media_urls: tuple[str, ...]
    vendor: str
    vendor_message_id: str
    to_number: str

    def to_json(self) -> dict[str, object]:
        """The shape the API returns for one message (GET /v1/profiles/{phone}/conversation)."""
        return {
            "event_id": self.event_id, "occurred_at": self.occurred_at, "received_at": self.received_at,
            "body": self.body, "media_urls": list(self.media_urls), "vendor": self.vendor,
            "vendor_message_id": self.vendor_message_id, "to_number": self.to_number,
        }


def is_conversation(event: dict[str, Any]) -> bool:
    """Unrecognized inbound messages are routed to a human; keywords and reactions are not."""
    inbound = event["event_type"] == "InboundReceived"
    return bool(inbound and event["message_type"] == MessageType.UNRECOGNIZED)


def conversation_entry(event: dict[str, Any]) -> str:
    """A conversation message as stored: the fields a human needs, compact JSON with sorted keys."""
    return json.dumps({k: event[k] for k in _ENTRY_FIELDS}, separators=(",", ":"), sort_keys=True)


_ENTRY_FIELDS = ("event_id", "occurred_at", "received_at", "body", "media_urls", "vendor",
                 "vendor_message_id", "to_number")


class RedisConversationStore:
    """Reads the conversation the Redis projector (projections.redis_store.RedisSink) writes."""

    def __init__(self, client: aioredis.Redis, settings: RedisSettings) -> None:
        self._redis = client
        self._keys = AsyncActiveKeys(client, settings.key_prefix)

    async def messages(self, profile: str, limit: int = 100) -> list[ConversationMessage]:
        """The profile's latest ``limit`` conversation messages, oldest first."""
        if limit <= 0:
            raise ValueError(f"limit must be positive, got {limit}")
        raw = await self._redis.zrange((await self._keys.keys()).conversation(profile), -limit, -1)
        out = []
        for item in raw:
            data = json.loads(str(item, "utf-8") if isinstance(item, bytes) else str(item))
            data["media_urls"] = tuple(data["media_urls"])
            out.append(ConversationMessage(**data))
        return out

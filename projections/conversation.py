"""Redis read model: the conversation, i.e. the unrecognized inbound messages a human should answer.

One Redis list per profile, oldest first, with the full body. Each message is appended at most once:
a set of the event ids already appended guards the list, so redelivery and replay never duplicate a
message. Both keys share a hash tag, so the guarded append also works on Redis Cluster.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

from config.settings import RedisSettings
from streams.events import Event, InboundReceived, MessageType

__all__ = ["ConversationMessage", "RedisConversationStore"]

# KEYS[1] = list, KEYS[2] = seen ids; ARGV = event id, entry, max length (0 = unbounded).
_GUARDED_APPEND = """
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[2])
local keep = tonumber(ARGV[3])
if keep > 0 then redis.call('LTRIM', KEYS[1], -keep, -1) end
return 1
"""


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


def is_conversation(event: Event) -> bool:
    """Unrecognized inbound messages are routed to a human; keywords and reactions are not."""
    return isinstance(event, InboundReceived) and event.message_type == MessageType.UNRECOGNIZED


class RedisConversationStore:
    """Conversation messages per profile under ``{prefix}:conversation:{{profile_key}}``."""

    def __init__(self, client: aioredis.Redis, settings: RedisSettings, max_messages: int = 1000) -> None:
        self._redis = client
        self._prefix = settings.key_prefix
        self._max = max_messages
        self._script = client.register_script(_GUARDED_APPEND)

    def key(self, profile: str) -> str:
        return f"{self._prefix}:conversation:{{{profile}}}"

    def _seen_key(self, profile: str) -> str:
        return f"{self._prefix}:conversation-seen:{{{profile}}}"

    async def apply(self, events: Sequence[Event]) -> int:
        """Append the conversation messages among ``events``; returns how many were new."""
        messages = [e for e in events if isinstance(e, InboundReceived) and is_conversation(e)]
        if not messages:
            return 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for m in messages:
                entry = {
                    "event_id": m.event_id, "occurred_at": m.occurred_at, "received_at": m.received_at,
                    "body": m.body, "media_urls": m.media_urls, "vendor": m.vendor,
                    "vendor_message_id": m.vendor_message_id, "to_number": m.to_number,
                }
                await self._script(
                    keys=[self.key(m.profile_key), self._seen_key(m.profile_key)],
                    args=[m.event_id, json.dumps(entry, separators=(",", ":")), self._max],
                    client=pipe,
                )
            results = await pipe.execute()
        return sum(int(r) for r in results)

    async def messages(self, profile: str, limit: int = 100) -> list[ConversationMessage]:
        """The profile's latest ``limit`` conversation messages, oldest first."""
        if limit <= 0:
            raise ValueError(f"limit must be positive, got {limit}")
        raw = await self._redis.lrange(self.key(profile), -limit, -1)
        out = []
        for item in raw:
            data = json.loads(item)
            data["media_urls"] = tuple(data["media_urls"])
            out.append(ConversationMessage(**data))
        return out

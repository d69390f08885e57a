"""The Redis key layout of every read model, and the live version's prefix as readers resolve it.

A rebuilt Redis projection lives under ``{prefix}:v{N}``; readers follow the pointer
``{prefix}:active-version`` (absent: version 0, the bare prefix). They re-read it at most once per
``ttl_s`` (one GET per second per process, not one per request), so a swap reaches every reader within
about a second, and a request that straddles it reads one version or the other, never a mix within a key.
"""

from __future__ import annotations

import time

import redis
import redis.asyncio as aioredis

__all__ = [
    "KINDS", "ActiveKeys", "AsyncActiveKeys", "RedisKeys", "pointer_key", "prefix_of", "versioned_prefix",
]

KINDS = ("consent", "timeline", "timeline-entries", "link", "vendor-message", "message-status",
         "message-status-by-id", "conversation")
"""Every kind of key a Redis projection writes: ``{prefix}:{kind}:...``."""


class RedisKeys:
    """The key layout; the profile key already holds the company id, which scopes every lookup."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def consent(self, profile: str) -> str:
        return f"{self.prefix}:consent:{profile}"

    def timeline(self, profile: str) -> str:
        return f"{self.prefix}:timeline:{profile}"

    def timeline_entries(self, profile: str) -> str:
        return f"{self.prefix}:timeline-entries:{profile}"

    def link(self, code: str) -> str:
        return f"{self.prefix}:link:{code}"

    def vendor_message(self, vendor: str, vendor_message_id: str) -> str:
        return f"{self.prefix}:vendor-message:{vendor}:{vendor_message_id}"

    def message_status(self, vendor: str, vendor_message_id: str) -> str:
        return f"{self.prefix}:message-status:{vendor}:{vendor_message_id}"

    def message_status_by_id(self, message_id: str) -> str:
        return f"{self.prefix}:message-status-by-id:{message_id}"

    def conversation(self, profile: str) -> str:
        return f"{self.prefix}:conversation:{profile}"


def versioned_prefix(base: str, version: int) -> str:
    """The key prefix of version ``version``; 0 is the bare prefix of before any rebuild."""
    return base if version == 0 else f"{base}:v{version}"


def pointer_key(base: str) -> str:
    """The key every reader resolves the live version from (absent means version 0)."""
    return f"{base}:active-version"


def prefix_of(base: str, pointer: bytes | str | None) -> str:
    """The live prefix for the pointer's value."""
    return versioned_prefix(base, int(pointer) if pointer else 0)


class ActiveKeys:
    """The live version's :class:`RedisKeys` for a synchronous client, cached for ``ttl_s``."""

    def __init__(self, client: redis.Redis, base: str, ttl_s: float = 1.0) -> None:
        self._client = client
        self._base = base
        self._ttl = ttl_s
        self._keys = RedisKeys(base)
        self._until = 0.0

    def keys(self) -> RedisKeys:
        now = time.monotonic()
        if now >= self._until:
            prefix = prefix_of(self._base, self._client.get(pointer_key(self._base)))
            if prefix != self._keys.prefix:
                self._keys = RedisKeys(prefix)
            self._until = now + self._ttl
        return self._keys


class AsyncActiveKeys:
    """:class:`ActiveKeys` for an asyncio client; :attr:`current` is the last resolved layout."""

    def __init__(self, client: aioredis.Redis, base: str, ttl_s: float = 1.0) -> None:
        self._client = client
        self._base = base
        self._ttl = ttl_s
        self.current = RedisKeys(base)
        self._until = 0.0

    async def keys(self) -> RedisKeys:
        now = time.monotonic()
        if now >= self._until:
            prefix = prefix_of(self._base, await self._client.get(pointer_key(self._base)))
            if prefix != self.current.prefix:
                self.current = RedisKeys(prefix)
            self._until = now + self._ttl
        return self.current

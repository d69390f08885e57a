"""Redis read model: current consent per profile, every write guarded by a version.

A write applies only if its version is newer than the stored one, so a redelivered or replayed older
event can never overwrite newer state. Writes of a batch go in one pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis

from config.settings import RedisSettings
from streams.events import ConsentChanged

__all__ = ["RedisConsentStore"]

# KEYS[1] = consent hash; ARGV = version, then field/value pairs.
_GUARDED_HSET = """
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '-1')
if tonumber(ARGV[1]) <= current then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[1], unpack(ARGV, 2))
return 1
"""


class RedisConsentStore:
    """Current consent per profile under ``{prefix}:consent:{profile_key}``."""

    def __init__(self, client: aioredis.Redis, settings: RedisSettings) -> None:
        self._redis = client
        self._prefix = settings.key_prefix
        self._script = client.register_script(_GUARDED_HSET)

    def key(self, profile: str) -> str:
        return f"{self._prefix}:consent:{profile}"

    async def apply(self, changes: Sequence[ConsentChanged]) -> int:
        """Apply a batch of consent changes; returns how many were newer than what Redis held."""
        if not changes:
            return 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for c in changes:
                await self._script(
                    keys=[self.key(c.profile_key)],
                    args=[c.version, "status", c.status, "source", c.source, "method", c.method,
                          "updated_at", c.occurred_at, "event_id", c.event_id],
                    client=pipe,
                )
            results = await pipe.execute()
        return sum(int(r) for r in results)

    async def get(self, profile: str) -> dict[str, str]:
        raw = await self._redis.hgetall(self.key(profile))
        return {_text(k): _text(v) for k, v in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

"""The short-link map in Redis: code → (URL, company, profile, message), expiring with the link.

``{prefix}:link:{code}`` holds the record as JSON with a Redis expiry (the sender creates it; the Redis
projector writes the same bytes, only if absent, when it folds ``LinkCreated``, so a rebuilt namespace
has the map too); ``{prefix}:linkref:{message}:{n}``
remembers which code the n-th link of a message got, so deciding the same message again (a redelivered
send request) finds its codes instead of minting new ones. Both are written by one Lua script: a code is
created only if absent (a collision is reported, never overwritten).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import redis.asyncio as aioredis

from config.settings import RedisSettings
from projections.keys import AsyncActiveKeys
from streams.events import LinkCreated
from streams.urls import UnsafeUrlError, safe_url

__all__ = ["CREATED", "EXISTING", "RedisLinkStore", "StoredLink", "encode_link", "link_from_event"]

CREATED, EXISTING, COLLISION = 1, 2, 0

# KEYS = link key, ref key; ARGV = record JSON, ttl ms, code.
# Returns {EXISTING, code} when the ref already names a code, {CREATED, code} when the link was
# inserted, {COLLISION, ''} when another link owns the code.
_PUT_IF_ABSENT = """
local existing = redis.call('GET', KEYS[2])
if existing then return {2, existing} end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
  return {1, ARGV[3]}
end
return {0, ''}
"""


@dataclass(frozen=True, slots=True)
class StoredLink:
    """One short link: where it goes and whose message it was in."""

    code: str
    url: str
    company_id: str
    profile_key: str
    message_id: str
    created_at: int
    expires_at: int


def link_from_event(event: dict[str, Any]) -> StoredLink:
    """The stored link a ``LinkCreated`` event (as a field dict) describes."""
    return StoredLink(code=event["code"], url=event["url"], company_id=event["company_id"],
                      profile_key=event["profile_key"], message_id=event.get("message_id") or "",
                      created_at=event["occurred_at"], expires_at=event["expires_at"])


def encode_link(link: StoredLink) -> str:
    """A link as stored under its code; the sender and the Redis projector write exactly these bytes."""
    return json.dumps(asdict(link))


class RedisLinkStore:
    """Insert-if-absent and lookup of short links."""

    def __init__(self, client: aioredis.Redis, settings: RedisSettings) -> None:
        self._redis = client
        self._prefix = settings.key_prefix
        # Links are part of the Redis projection, so they follow its live version; a message's link
        # references are the sender's own state and stay under the bare prefix.
        self._active = AsyncActiveKeys(client, settings.key_prefix)
        self._put = client.register_script(_PUT_IF_ABSENT)

    def key(self, code: str) -> str:
        """The code's key in the live version last resolved (see :meth:`AsyncActiveKeys.keys`)."""
        return self._active.current.link(code)

    def ref_key(self, message_id: str, index: int) -> str:
        return f"{self._prefix}:linkref:{message_id}:{index}"

    async def put_if_absent(self, link: StoredLink, index: int) -> tuple[int, str]:
        """Store ``link`` under its code unless taken. Returns (CREATED, code), (EXISTING, code already
        given to this message's ``index``-th link) or (COLLISION, "")."""
        safe_url(link.url)
        await self._active.keys()
        ttl_ms = link.expires_at - link.created_at
        if ttl_ms <= 0:
            raise ValueError(f"link {link.code} expires before it is created")
        result: list[Any] = await self._put(
            keys=[self.key(link.code), self.ref_key(link.message_id, index)],
            args=[encode_link(link), ttl_ms, link.code],
        )
        status, code = int(result[0]), _text(result[1])
        return status, code

    async def get(self, code: str, now_ms: int | None = None) -> StoredLink | None:
        """The link for ``code``; None when unknown, expired, or not a safe URL."""
        raw = await self._redis.get((await self._active.keys()).link(code))
        if raw is None:
            return None
        try:
            link = StoredLink(**json.loads(_text(raw)))
            safe_url(link.url)
        except (ValueError, TypeError, UnsafeUrlError):
            return None
        if now_ms is not None and link.expires_at <= now_ms:
            return None
        return link

    async def restore(self, events: list[LinkCreated], now_ms: int) -> int:
        """Rebuild links from LinkCreated events (replay); expired ones are skipped. Returns how many
        were written."""
        written = 0
        await self._active.keys()
        for e in events:
            if e.expires_at <= now_ms or e.message_id is None:
                continue
            link = StoredLink(code=e.code, url=e.url, company_id=e.company_id, profile_key=e.profile_key,
                              message_id=e.message_id, created_at=e.occurred_at, expires_at=e.expires_at)
            ok = await self._redis.set(self.key(e.code), encode_link(link), nx=True,
                                       px=e.expires_at - now_ms)
            written += int(bool(ok))
        return written


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

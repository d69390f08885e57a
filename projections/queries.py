"""The query side for the profile APIs: consent now, and the timeline newest first.

Company scoping is part of every query: the caller passes the company its API key belongs to, and the
profile key ``{company_id}:{phone}`` is built from it, so one company can never name another's profile.
Timeline pages come from Redis (the newest N entries) and continue from ClickHouse with an opaque cursor
that is bound to the profile it was issued for.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import orjson
import redis
from clickhouse_driver import Client

from projections.keys import ActiveKeys
from streams.events import profile_key

__all__ = ["ConsentView", "ProfileQueries", "QueryError", "TimelinePage", "timeline_item"]

_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_COMPANY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Envelope fields a timeline item does not show (the same in Redis and ClickHouse).
_HIDDEN = frozenset(("company_id", "profile_key", "received_at", "causation_id"))
_MAX_LIMIT = 200
_TIMELINE_SQL = """\
SELECT occurred_at, event_id, event_type, message_id, flow_id, campaign_id, payload
FROM timeline FINAL
WHERE company_id = %(company)s AND profile_key = %(profile)s
  AND (occurred_at < %(before_t)s OR (occurred_at = %(before_t)s AND event_id < %(before_id)s))
ORDER BY occurred_at DESC, event_id DESC
LIMIT %(limit)s"""


class QueryError(ValueError):
    """A request the query side refuses; ``field`` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True, slots=True)
class ConsentView:
    """A profile's current consent as the Redis projection holds it."""

    status: str
    source: str
    method: str
    version: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class TimelinePage:
    """Timeline items, newest first, and the cursor of the next (older) page, or None at the end."""

    items: list[dict[str, Any]]
    next_cursor: str | None


def timeline_item(event: dict[str, Any]) -> dict[str, Any]:
    """What the API shows for one event: the event's fields without the hidden envelope ones."""
    return {k: v for k, v in event.items() if k not in _HIDDEN}


def _profile(company_id: str, phone: str) -> str:
    if not _COMPANY.match(company_id):
        raise QueryError("company_id", "must be 1-64 letters, digits, '-' or '_'")
    if not _E164.match(phone):
        raise QueryError("phone", f"{phone!r} is not an E.164 number like +14155550100")
    return profile_key(company_id, phone)


def _bind(profile: str) -> str:
    return hashlib.sha256(profile.encode()).hexdigest()[:16]


def encode_cursor(profile: str, occurred_at: int, event_id: str) -> str:
    raw = orjson.dumps({"p": _bind(profile), "t": occurred_at, "id": event_id})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(profile: str, cursor: str) -> tuple[int, str]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        bound, t, event_id = data["p"], int(data["t"]), str(data["id"])
    except (ValueError, KeyError, TypeError):
        raise QueryError("cursor", "not a cursor this API issued") from None
    if bound != _bind(profile):
        raise QueryError("cursor", "was issued for another profile")
    return t, event_id


class ProfileQueries:
    """Reads consent and timelines for one company's profiles."""

    def __init__(self, client: redis.Redis, key_prefix: str, clickhouse: Callable[[], Client],
                 timeline_entries: int) -> None:
        self._redis = client
        # The live version's keys, resolved from the pointer at most once a second.
        self._active = ActiveKeys(client, key_prefix)
        self._clickhouse = clickhouse
        self._n = timeline_entries

    def consent(self, company_id: str, phone: str) -> ConsentView | None:
        """The profile's consent, or None if it never changed."""
        raw = self._redis.hgetall(self._active.keys().consent(_profile(company_id, phone)))
        if not raw:
            return None
        state = {_text(k): _text(v) for k, v in raw.items()}
        return ConsentView(state["status"], state["source"], state["method"], int(state["version"]),
                           int(state["updated_at"]))

    def timeline(
        self, company_id: str, phone: str, limit: int = 50, cursor: str | None = None
    ) -> TimelinePage:
        """One page of the profile's timeline, newest first; pass ``next_cursor`` for the next page."""
        profile = _profile(company_id, phone)
        if not 1 <= limit <= _MAX_LIMIT:
            raise QueryError("limit", f"must be between 1 and {_MAX_LIMIT}")
        before = decode_cursor(profile, cursor) if cursor else None
        keys = self._active.keys()
        scored = cast(list[tuple[bytes, float]],
                      self._redis.zrevrange(keys.timeline(profile), 0, -1, withscores=True))
        newest = [(int(score), _text(eid)) for eid, score in scored]
        # Entries sorted by (occurred_at, event_id) descending, as the projection trims them.
        newest.sort(reverse=True)
        candidates = [k for k in newest if before is None or k < before][: limit + 1]
        items: list[tuple[tuple[int, str], dict[str, Any]]] = []
        if candidates:
            raw = self._redis.hmget(keys.timeline_entries(profile), [eid for _, eid in candidates])
            items = [(key, timeline_item(orjson.loads(entry)))
                     for key, entry in zip(candidates, raw, strict=True) if entry is not None]
        # Redis holds only the newest N: when it is full, what is older than its oldest is in ClickHouse.
        if len(items) <= limit and len(newest) >= self._n:
            oldest = min(newest) if newest else None
            start = min(before, oldest) if before and oldest else (before or oldest)
            if start is not None:
                items += self._older(company_id, profile, start, limit + 1 - len(items))
        page, more = items[:limit], len(items) > limit
        next_cursor = encode_cursor(profile, *page[-1][0]) if more and page else None
        return TimelinePage([item for _, item in page], next_cursor)

    def _older(self, company_id: str, profile: str, before: tuple[int, str], limit: int
               ) -> list[tuple[tuple[int, str], dict[str, Any]]]:
        client = self._clickhouse()
        try:
            rows = client.execute(_TIMELINE_SQL, {"company": company_id, "profile": profile,
                                                  "before_t": before[0], "before_id": before[1],
                                                  "limit": limit})
        finally:
            client.disconnect()
        out = []
        for occurred_at, event_id, event_type, message_id, flow_id, campaign_id, payload in rows:
            item = {"event_id": event_id, "event_type": event_type, "occurred_at": occurred_at,
                    "message_id": message_id or None, "flow_id": flow_id or None,
                    "campaign_id": campaign_id or None, **orjson.loads(payload)}
            out.append(((int(occurred_at), str(event_id)), item))
        return out


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

"""Redis read model: consent now, latest timeline entries, link map, vendor message id → message.

Every write is guarded so an older or repeated event never overwrites newer state:
- keyed state (consent, link, vendor message) is a hash written by a Lua script only when the event's
  version is newer than the stored one (ConsentChanged.version; occurred_at for the immutable maps);
- the timeline is a sorted set of event ids scored by occurred_at plus a hash of entries, trimmed to the
  newest N in the same script: re-adding an id is a no-op and an event older than the newest N is
  trimmed at once, so the result is "newest N by (occurred_at, event_id)" whatever the delivery order.
A batch's writes go in one script call per chunk of events, sent without waiting for the replies, so
Redis applies one chunk while the client packs the next; a chunk bounds how long Redis is busy with one
script (readers wait meanwhile).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import orjson
import redis

from config.settings import RedisSettings
from projections.conversation import CONVERSATION_KEEP, conversation_entry, is_conversation
from projections.keys import RedisKeys
from projections.links import encode_link, link_from_event
from projections.message_status import status_of
from streams.statuses import status_rank

__all__ = ["RedisKeys", "RedisSink", "timeline_entry"]

# One script call per chunk of a batch: ARGV[1] is the chunk as JSON (Redis' Lua has cjson), so the client
# packs one string instead of a dozen arguments per event (redis-py's per-argument packing was the
# bottleneck).
# {"n": N, "t": [[ids_key, entries_key, [score, id, entry, ...]], ...],
#  "g": [[key, version, expire_at_ms, [field, value, ...]], ...],
#  "c": [[conversation_key, score, entry, keep], ...],
#  "l": [[link_key, stored_link_json, expire_at_ms], ...]}; numbers travel as strings.
# Keys are computed in the script, so this needs a single Redis (or one slot per batch in a cluster).
APPLY_BATCH = """
local batch = cjson.decode(ARGV[1])
local applied = 0
for _, g in ipairs(batch.g) do
  local current = tonumber(redis.call('HGET', g[1], 'version') or '-1')
  if tonumber(g[2]) > current then
    redis.call('HSET', g[1], 'version', g[2], unpack(g[4]))
    if tonumber(g[3]) > 0 then redis.call('PEXPIREAT', g[1], g[3]) end
    applied = applied + 1
  end
end
local n = tonumber(batch.n)
for _, t in ipairs(batch.t) do
  local items = t[3]
  for i = 1, #items, 3 do
    redis.call('ZADD', t[1], items[i], items[i + 1])
    redis.call('HSET', t[2], items[i + 1], items[i + 2])
  end
  local excess = redis.call('ZCARD', t[1]) - n
  if excess > 0 then
    local old = redis.call('ZRANGE', t[1], 0, excess - 1)
    for j = 1, #old, 500 do
      redis.call('HDEL', t[2], unpack(old, j, math.min(j + 499, #old)))
    end
    redis.call('ZREMRANGEBYRANK', t[1], 0, excess - 1)
  end
end
for _, l in ipairs(batch.l) do
  redis.call('SET', l[1], l[2], 'NX', 'PXAT', l[3])
end
for _, c in ipairs(batch.c) do
  redis.call('ZADD', c[1], c[2], c[3])
  redis.call('ZREMRANGEBYRANK', c[1], 0, -tonumber(c[4]) - 1)
end
return applied
"""

# Redis errors that are its state, not the data's: out of memory, busy script, loading, failover.
_TRANSIENT_REPLIES = ("OOM", "BUSY", "LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN",
                      "MISCONF", "NOREPLICAS", "NOSCRIPT")

# The profile's key holds these already.
_NOT_IN_ENTRY = frozenset(("company_id", "profile_key"))


def timeline_entry(event: dict[str, Any]) -> str:
    """A timeline entry: the event's fields as compact JSON (bytes fields left out), keys sorted."""
    entry = event.copy()  # copying and dropping two keys is twice as fast as filtering every key
    for key in _NOT_IN_ENTRY:
        entry.pop(key, None)
    try:
        return orjson.dumps(entry, option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError:
        # A bytes field (orjson writes none): leave the bytes fields out (anything else raises again).
        entry = {k: v for k, v in entry.items() if v.__class__ is not bytes}
        return orjson.dumps(entry, option=orjson.OPT_SORT_KEYS).decode()


def _guarded_args(event: dict[str, Any]) -> tuple[str, list[Any]] | None:
    """The guarded-hash write an event makes besides the timeline: (kind, [version, expire_at, pairs])."""
    kind = event["event_type"]
    if kind == "ConsentChanged":
        return "consent", [event["version"], 0, ["status", event["status"], "source", event["source"],
                           "method", event["method"], "updated_at", event["occurred_at"],
                           "event_id", event["event_id"]]]
    status = status_of(event)
    if status is not None:
        # Status folds by rank, never arrival: a late "sent" cannot overwrite "delivered", nor a part's
        # success an earlier failure (the rank is the guard's version).
        rank = status_rank(status)
        return "status", [rank, 0, ["status", status, "rank", rank, "profile_key", event["profile_key"],
                          "message_id", event.get("message_id") or "",
                          "error_code", event.get("error_code") or "",
                          "failure_category", event.get("failure_category") or "",
                          "occurred_at", event["occurred_at"], "event_id", event["event_id"]]]
    if kind == "DeliveryStatusChanged" and event.get("message_id"):
        rank = status_rank(event["status"])
        return "status_by_id", [rank, 0, ["status", event["status"], "rank", rank,
                                "profile_key", event["profile_key"], "vendor", event["vendor"],
                                "vendor_message_id", event["vendor_message_id"],
                                "error_code", event["error_code"],
                                "failure_category", event["failure_category"],
                                "occurred_at", event["occurred_at"], "event_id", event["event_id"]]]
    if kind == "MessageSent":
        return "vendor", [event["occurred_at"], 0, ["message_id", event.get("message_id") or "",
                          "company_id", event["company_id"], "profile_key", event["profile_key"],
                          "flow_id", event.get("flow_id") or "",
                          "campaign_id", event.get("campaign_id") or "",
                          "event_id", event["event_id"]]]
    return None


# Events per script call: a few tens of milliseconds of Redis time.
_CHUNK = 5_000


class RedisSink:
    """The projector's sink: script calls apply a batch, every write guarded."""

    def __init__(self, settings: RedisSettings, timeline_entries: int) -> None:
        self._client = redis.Redis.from_url(settings.url)
        self.keys = RedisKeys(settings.key_prefix)
        self._n = timeline_entries
        self._apply = self._client.register_script(APPLY_BATCH)

    def _key(self, kind: str, event: dict[str, Any]) -> str:
        if kind == "consent":
            return self.keys.consent(event["profile_key"])
        if kind == "status":
            return self.keys.message_status(event["vendor"], event["vendor_message_id"])
        if kind == "status_by_id":
            return self.keys.message_status_by_id(event["message_id"])
        return self.keys.vendor_message(event["vendor"], event["vendor_message_id"])

    def payload(self, events: Sequence[dict[str, Any]]) -> bytes:
        """The batch as the script's JSON argument."""
        by_profile: dict[str, list[str]] = defaultdict(list)
        guarded: list[list[Any]] = []
        conversation: list[list[str]] = []
        links: list[list[str]] = []
        now_ms = int(time.time() * 1000)
        for e in events:
            if e["event_type"] == "LinkCreated" and e["expires_at"] > now_ms:
                link = encode_link(link_from_event(e))
                links.append([self.keys.link(e["code"]), link, str(e["expires_at"])])
            if is_conversation(e):
                conversation.append([self.keys.conversation(e["profile_key"]), str(e["occurred_at"]),
                                     conversation_entry(e), str(CONVERSATION_KEEP)])
            by_profile[e["profile_key"]] += (str(e["occurred_at"]), e["event_id"], timeline_entry(e))
            write = _guarded_args(e)
            if write is not None:
                kind, (version, expire_at, pairs) = write
                guarded.append([self._key(kind, e), str(version), str(expire_at), [str(v) for v in pairs]])
        timelines = [[self.keys.timeline(p), self.keys.timeline_entries(p), items]
                     for p, items in by_profile.items()]
        return orjson.dumps({"n": str(self._n), "t": timelines, "g": guarded, "c": conversation, "l": links})

    def write(self, events: Sequence[dict[str, Any]]) -> None:
        """Apply a batch; raises on failure so the runner retries the same batch."""
        try:
            self._send(events)
        except redis.exceptions.NoScriptError:
            self._apply.sha = self._client.script_load(APPLY_BATCH)  # Redis restarted or flushed scripts
            self._send(events)

    def _send(self, events: Sequence[dict[str, Any]]) -> None:
        """One script call per chunk, all sent before the first reply is read; then the first error, if
        any, is raised (the chunks that succeeded are written again with the retry, harmlessly)."""
        pool = self._client.connection_pool
        conn = pool.get_connection()
        errors: list[redis.ResponseError] = []
        try:
            chunks = range(0, len(events), _CHUNK)
            for i in chunks:
                payload = self.payload(events[i:i + _CHUNK])
                conn.send_command("EVALSHA", self._apply.sha, 0, payload)  # type: ignore[no-untyped-call]
            for _ in chunks:
                try:
                    conn.read_response()
                except redis.ResponseError as exc:
                    errors.append(exc)
        except BaseException:
            # Replies may be left unread: never hand this connection out again.
            conn.disconnect()  # type: ignore[no-untyped-call]
            raise
        finally:
            pool.release(conn)
        if errors:
            raise errors[0]

    def refused_for_good(self, exc: Exception) -> bool:
        """An error reply about this data (WRONGTYPE on a key, a script error), not an outage."""
        if isinstance(exc, (TypeError, ValueError)) and not isinstance(exc, redis.RedisError):
            return True  # the batch could not even be encoded
        if not isinstance(exc, redis.ResponseError):
            return False
        # A script error quotes the failing command's reply (e.g. "... WRONGTYPE Operation against ...").
        return not set(str(exc).replace(":", " ").split()) & set(_TRANSIENT_REPLIES)

    def close(self) -> None:
        self._client.close()

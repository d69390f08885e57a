"""Checks a built projection version against the topic before it is swapped in.

The topic is read independently of the rebuild, up to the offsets the rebuild committed: the count of
unique events per type must equal the shadow's (ClickHouse), the number of profiles must equal the
number of timelines (Redis), and for a sample of profiles every row or key must equal the in-process
fold (projections/fold.py) of their events.
"""

from __future__ import annotations

import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import redis

from config.settings import Settings
from projections.clickhouse import clickhouse_client
from projections.fold import FoldedRedis, fold_redis
from projections.keys import RedisKeys
from projections.offsets import scan
from projections.runner import decode_batch
from streams.codec import AvroCodec

__all__ = ["TopicSummary", "VerifyError", "read_folded", "summarize", "verify"]

# About one profile in this many is sampled (by a hash of its key, so the sample is stable).
_SAMPLE_ONE_IN = 50


class VerifyError(RuntimeError):
    """The built version does not match the topic; it is not swapped in."""


@dataclass
class TopicSummary:
    """What the topic holds up to some offsets: unique events per type, profiles, a sample's events."""

    by_type: Counter[str] = field(default_factory=Counter)
    profiles: set[str] = field(default_factory=set)
    sample: list[dict[str, Any]] = field(default_factory=list)
    records: int = 0


def _sampled(profile: str) -> bool:
    return zlib.crc32(profile.encode()) % _SAMPLE_ONE_IN == 0


def summarize(settings: Settings, until: dict[int, int], codec: AvroCodec | None = None) -> TopicSummary:
    """Read ``sms.events`` up to ``until`` and summarize it (duplicates counted once)."""
    codec = codec or AvroCodec()
    out = TopicSummary()
    seen: set[str] = set()
    for messages in scan(settings, until):
        out.records += len(messages)
        for e in decode_batch(codec, messages).events:
            profile = e["profile_key"]
            out.profiles.add(profile)
            if _sampled(profile):
                out.sample.append(e)
            if e["event_id"] not in seen:
                seen.add(e["event_id"])
                out.by_type[e["event_type"]] += 1
    return out


def read_folded(client: Any, keys: RedisKeys, folded: FoldedRedis) -> FoldedRedis:
    """The Redis keys ``folded`` knows about, read back in the fold's shape (decode_responses client)."""
    out = FoldedRedis()
    for profile in folded.consent:
        if state := client.hgetall(keys.consent(profile)):
            out.consent[profile] = state
    for profile in folded.timeline:
        ids = client.zrevrange(keys.timeline(profile), 0, -1)
        entries = client.hmget(keys.timeline_entries(profile), ids) if ids else []
        out.timeline[profile] = list(zip(ids, entries, strict=True))
    for code in folded.links:
        if (stored := client.get(keys.link(code))) is not None:
            out.links[code] = stored
    for vendor_key in folded.vendor_messages:
        out.vendor_messages[vendor_key] = client.hgetall(keys.vendor_message(*vendor_key.split(":", 1)))
    for status_key in folded.message_status:
        out.message_status[status_key] = client.hgetall(keys.message_status(*status_key.split(":", 1)))
    for message_id in folded.message_status_by_id:
        out.message_status_by_id[message_id] = client.hgetall(keys.message_status_by_id(message_id))
    for profile in folded.conversation:
        out.conversation[profile] = client.zrange(keys.conversation(profile), 0, -1)
    return out


def _verify_clickhouse(settings: Settings, database: str, topic: TopicSummary) -> list[str]:
    problems: list[str] = []
    client = clickhouse_client(settings.clickhouse)
    try:
        rows = client.execute(f"SELECT event_type, count() FROM {database}.events FINAL GROUP BY event_type")
        got = Counter({str(k): int(v) for k, v in rows})
        if got != topic.by_type:
            problems.append(f"events per type: {database} has {dict(got)}, the topic {dict(topic.by_type)}")
        fact_counts = {"timeline": sum(topic.by_type.values()),
                       "consent_history": topic.by_type["ConsentChanged"],
                       "inbound_latency": topic.by_type["InboundReceived"]}
        for table, want in fact_counts.items():
            # Distinct ids, not rows: an id logged twice with different content (never by our producers,
            # but a hand-made log can) is two rows where the sorting key holds content, and one event.
            have = client.execute(f"SELECT uniqExact(event_id) FROM {database}.{table}")[0][0]
            if have != want:
                problems.append(f"{database}.{table}: {have} rows, the topic has {want} events for it")
        sample = {e["profile_key"] for e in topic.sample}
        want_ids = {(e["profile_key"], e["event_id"]) for e in topic.sample}
        if sample:
            got_ids = {(str(p), str(i)) for p, i in client.execute(
                f"SELECT profile_key, event_id FROM {database}.timeline FINAL "
                "WHERE profile_key IN %(profiles)s", {"profiles": tuple(sample)})}
            if got_ids != want_ids:
                problems.append(f"timeline of {len(sample)} sampled profiles: {len(want_ids - got_ids)} "
                                f"events missing, {len(got_ids - want_ids)} not in the topic")
    finally:
        client.disconnect()
    return problems


def _verify_redis(settings: Settings, prefix: str, topic: TopicSummary) -> list[str]:
    problems: list[str] = []
    # Typed loosely: with decode_responses the client returns str, which redis-py's stubs cannot express.
    client: Any = redis.Redis.from_url(settings.redis.url, decode_responses=True)
    try:
        timelines = sum(1 for _ in client.scan_iter(f"{prefix}:timeline:*", count=1000))
        if timelines != len(topic.profiles):
            problems.append(f"{timelines} timelines under {prefix}, "
                            f"the topic has {len(topic.profiles)} profiles")
        folded = fold_redis(topic.sample, settings.projector.timeline_entries, int(time.time() * 1000))
        got = read_folded(client, RedisKeys(prefix), folded)
        for part in ("consent", "timeline", "links", "vendor_messages", "message_status",
                     "message_status_by_id", "conversation"):
            want_part, got_part = getattr(folded, part), getattr(got, part)
            if want_part != got_part:
                wrong = sum(1 for k in want_part if want_part[k] != got_part.get(k))
                problems.append(f"{part}: {wrong} of {len(want_part)} sampled keys differ from the fold")
    finally:
        client.close()
    return problems


def verify(name: str, settings: Settings, home: str, topic: TopicSummary) -> None:
    """Raise :class:`VerifyError` listing every mismatch between the version at ``home`` and ``topic``."""
    if name == "clickhouse":
        problems = _verify_clickhouse(settings, home, topic)
    elif name == "redis":
        problems = _verify_redis(settings, home, topic)
    else:
        raise ValueError(f"no verification for projection {name!r}")
    if problems:
        raise VerifyError(f"{name} version at {home} does not match the topic: " + "; ".join(problems))

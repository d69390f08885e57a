"""The verifier: fold ``sms.events`` in-process and compare every projection with it, field by field.

The topic is read from the beginning of every partition and decoded exactly as the projectors decode it
(:func:`projections.runner.decode_batch`), so poison records are left out on both sides. The reference
fold is :mod:`projections.fold`. Each read model is one :class:`Check`; a record is *missing* (the fold
has it, the store does not), *doubled* (counted more than once), *differing* (present, other content) or
*extra* (the store has it, the fold does not). Used by ``smsfold verify`` and by the tests.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import redis
from clickhouse_driver import Client

from config.settings import Settings
from projections.clickhouse import ClickHouseSink, clickhouse_client
from projections.fold import STAT_COLUMNS, FoldedRedis, fold_message_stats, fold_redis, unique_events
from projections.keys import RedisKeys
from projections.runner import decode_batch
from streams.codec import AvroCodec
from streams.events import RawWebhook
from streams.readback import read_topic
from streams.statuses import delivery_outcome

__all__ = ["KINDS", "Check", "EventLog", "VerifyReport", "missing_from_raw", "raw_positions",
           "read_event_log", "read_redis", "verify"]

KINDS = ("missing", "doubled", "differing", "extra")


def _types(*names: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["event_type"] in names


def _message_fact(e: dict[str, Any]) -> bool:
    if e["event_type"] == "DeliveryStatusChanged":
        return bool(delivery_outcome(e["status"], e["previous_status"]))
    return e["event_type"] in ("SendRequested", "SendSkipped", "MessageSent", "LinkClicked",
                               "ConversionAttributed")


# ClickHouse fact tables fed by materialized views from ``events``: which events each holds.
_FACT_TABLES: dict[str, Callable[[dict[str, Any]], bool]] = {
    "message_facts": _message_fact,
    "inbound_latency": _types("InboundReceived"),
    "consent_history": _types("ConsentChanged"),
    "attributed_conversions": _types("ConversionAttributed"),
    "timeline": lambda e: True,  # every event
}
# The ``events`` columns compared field by field (projected_at is the projector's clock, not the event's).
_EVENT_COLUMNS = ("event_id", "event_type", "company_id", "profile_key", "occurred_at", "received_at",
                  "event_date", "causation_id", "message_id", "flow_id", "campaign_id", "payload")
# Redis key families the projector writes; other keys under the prefix (link refs, rate limits) are not
# a projection's and are not counted as extra.
_REDIS_FAMILIES = ("consent", "timeline", "timeline-entries", "link", "vendor-message", "message-status",
                   "message-status-by-id", "conversation")


@dataclass
class Check:
    """One read model compared with the fold: counts per kind of mismatch and the first examples."""

    name: str
    checked: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    max_examples: int = 5

    def add(self, kind: str, example: str) -> None:
        self.counts[kind] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append(f"{kind}: {example}")

    @property
    def ok(self) -> bool:
        return not any(self.counts.values())

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "checked": self.checked, **{k: self.counts[k] for k in KINDS},
                "examples": self.examples}


@dataclass
class EventLog:
    """``sms.events`` as read back: decoded events (redeliveries included) and poison records."""

    records: int
    events: list[dict[str, Any]]
    poison: int

    @property
    def unique(self) -> dict[str, dict[str, Any]]:
        return unique_events(self.events)

    def last_copies(self) -> tuple[dict[str, dict[str, Any]], int]:
        """Each event's last copy in log order, and how many events were redelivered with other content.

        A redelivered event keeps its id but may differ in timing metadata (``stage_times`` stamped by a
        normalizer or decider that ran again after a crash). ClickHouse keeps the last copy (the highest
        ``projected_at``), so that is the copy its row must equal.
        """
        first = self.unique
        last: dict[str, dict[str, Any]] = {}
        variants: set[str] = set()
        for e in self.events:
            last[e["event_id"]] = e
            if e != first[e["event_id"]]:
                variants.add(e["event_id"])
        return last, len(variants)


@dataclass
class VerifyReport:
    """Every check of one verification run."""

    topic: str
    records: int
    unique_events: int
    poison: int
    checks: list[Check]
    seconds: float = 0.0
    # Events redelivered with other content (timing metadata only, or the checks would show it).
    variants: int = 0

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def total(self, kind: str) -> int:
        return sum(c.counts[kind] for c in self.checks)

    def summary(self) -> str:
        """One line: the totals, then the first failing check's examples."""
        totals = ", ".join(f"{self.total(k)} {k}" for k in KINDS)
        bad = [f"{c.name}: {c.examples}" for c in self.checks if not c.ok]
        return f"{self.unique_events} events, {totals}" + (f"; {bad[0]}" if bad else "")

    def to_json(self) -> dict[str, Any]:
        return {"topic": self.topic, "records": self.records, "unique_events": self.unique_events,
                "poison": self.poison, "variants": self.variants, "ok": self.ok,
                **{k: self.total(k) for k in KINDS}, "seconds": round(self.seconds, 3),
                "checks": [c.to_json() for c in self.checks]}


def read_event_log(settings: Settings, codec: AvroCodec | None = None, timeout_s: float = 120.0) -> EventLog:
    """Read ``sms.events`` to its end and decode it as the projectors do."""
    messages = read_topic(settings.kafka, settings.topics.events, timeout_s)
    decoded = decode_batch(codec or AvroCodec(), messages)
    return EventLog(len(messages), decoded.events, len(decoded.poison))


def verify(settings: Settings, *, max_examples: int = 5, log: EventLog | None = None) -> VerifyReport:
    """Fold the event log and compare ClickHouse and Redis with it."""
    started = time.monotonic()
    log = log or read_event_log(settings)
    unique = log.unique
    last, variants = log.last_copies()
    client = clickhouse_client(settings.clickhouse)
    try:
        checks = [_check_events(settings, client, last, max_examples),
                  *_check_fact_tables(client, unique, max_examples),
                  _check_message_stats(client, log.events, max_examples)]
    finally:
        client.disconnect()
    folded = fold_redis(log.events, settings.projector.timeline_entries, int(time.time() * 1000))
    checks += _check_redis(settings, folded, max_examples)
    return VerifyReport(settings.topics.events, log.records, len(unique), log.poison, checks,
                        time.monotonic() - started, variants)


def _rows(client: Client, query: str) -> list[tuple[Any, ...]]:
    return list(client.execute(query))


def _compare_sets(check: Check, expected: Iterable[str], stored: Counter[str]) -> None:
    want = set(expected)
    check.checked += len(want)
    for key in sorted(want - set(stored)):
        check.add("missing", key)
    for key, n in sorted(stored.items()):
        if key not in want:
            check.add("extra", key)
        elif n > 1:
            check.add("doubled", f"{key} ({n} rows)")


def _check_events(
    settings: Settings, client: Client, unique: dict[str, dict[str, Any]], max_examples: int
) -> Check:
    check = Check("clickhouse events", max_examples=max_examples)
    stored = _rows(client, f"SELECT {', '.join(_EVENT_COLUMNS)} FROM events FINAL")
    _compare_sets(check, unique, Counter(row[0] for row in stored))
    # The row the projector would write now, minus projected_at: computed by the sink's own code.
    sink = ClickHouseSink(settings.clickhouse)
    events = list(unique.values())
    columns = sink.columns(events, 0)
    names = ("event_id", "event_type", "company_id", "profile_key", "occurred_at", "received_at",
             "projected_at", "event_date", "causation_id", "message_id", "flow_id", "campaign_id", "payload")
    index = [names.index(c) for c in _EVENT_COLUMNS]
    expected = {row[0]: row for row in zip(*(columns[i] for i in index), strict=True)} if events else {}
    for row in stored:
        want = expected.get(row[0])
        if want is not None and tuple(row) != tuple(want):
            fields = [c for c, a, b in zip(_EVENT_COLUMNS, row, want, strict=True) if a != b]
            check.add("differing", f"{row[0]}: {', '.join(fields)}")
    return check


def _check_fact_tables(client: Client, unique: dict[str, dict[str, Any]], max_examples: int) -> list[Check]:
    checks = []
    for table, holds in _FACT_TABLES.items():
        check = Check(f"clickhouse {table}", max_examples=max_examples)
        stored = Counter(row[0] for row in _rows(client, f"SELECT event_id FROM {table} FINAL"))
        _compare_sets(check, (i for i, e in unique.items() if holds(e)), stored)
        checks.append(check)
    return checks


def _check_message_stats(client: Client, events: list[dict[str, Any]], max_examples: int) -> Check:
    check = Check("clickhouse message_stats", max_examples=max_examples)
    sums = ", ".join(f"sum({c})" for c in STAT_COLUMNS)
    stored = {tuple(r[:4]): dict(zip(STAT_COLUMNS, map(int, r[4:]), strict=True)) for r in _rows(
        client, f"SELECT company_id, flow_id, campaign_id, message_id, {sums} FROM message_stats "
                "GROUP BY company_id, flow_id, campaign_id, message_id")}
    expected = fold_message_stats(events)
    check.checked = len(expected)
    for key in sorted(expected.keys() | stored.keys()):
        want, got = expected.get(key), stored.get(key)
        name = "/".join(key)
        if got is None:
            check.add("missing", name)
        elif want is None:
            check.add("extra", name)
        elif got != want:
            over = {c: (got[c], want[c]) for c in STAT_COLUMNS if got[c] > want[c]}
            under = {c: (got[c], want[c]) for c in STAT_COLUMNS if got[c] < want[c]}
            # An over-count is a record counted twice; an under-count one that never arrived.
            if over:
                check.add("doubled", f"{name}: {over} (stored, folded)")
            if under:
                check.add("missing", f"{name}: {under} (stored, folded)")
    return check


def _hash(r: Any, key: str) -> dict[str, str]:
    """A hash's fields; a key of another type is shown as such (a differing record, not a crash)."""
    try:
        return dict(r.hgetall(key))
    except redis.ResponseError as exc:
        return {"wrong type": str(exc)}


def read_redis(settings: Settings, folded: FoldedRedis) -> tuple[FoldedRedis, list[str]]:
    """The Redis read model for the keys the fold knows about, and the projector's keys it does not."""
    # decode_responses: every reply is str, which redis-py's stubs cannot express.
    r: Any = redis.Redis.from_url(settings.redis.url, decode_responses=True)
    keys = RedisKeys(settings.redis.key_prefix)
    out = FoldedRedis()
    explained: set[str] = set()
    try:
        for profile in {*folded.consent, *folded.timeline}:
            explained |= {keys.consent(profile), keys.timeline(profile), keys.timeline_entries(profile)}
            if state := _hash(r, keys.consent(profile)):
                out.consent[profile] = state
            ids = r.zrevrange(keys.timeline(profile), 0, -1)
            entries = r.hmget(keys.timeline_entries(profile), ids) if ids else []
            out.timeline[profile] = list(zip(ids, entries, strict=True))
            untrimmed = r.hlen(keys.timeline_entries(profile)) - len(ids)
            if untrimmed:  # entries not trimmed with their ids: shown as an extra item
                out.timeline[profile].append((f"{untrimmed} entries without an id", ""))
        for code in folded.links:
            explained.add(keys.link(code))
            if (stored := r.get(keys.link(code))) is not None:
                out.links[code] = stored
        for vendor_key in folded.vendor_messages:
            vendor, vid = vendor_key.split(":", 1)
            explained.add(keys.vendor_message(vendor, vid))
            if state := _hash(r, keys.vendor_message(vendor, vid)):
                out.vendor_messages[vendor_key] = state
        for status_key in folded.message_status:
            vendor, vid = status_key.split(":", 1)
            explained.add(keys.message_status(vendor, vid))
            if state := _hash(r, keys.message_status(vendor, vid)):
                out.message_status[status_key] = state
        for message_id in folded.message_status_by_id:
            explained.add(keys.message_status_by_id(message_id))
            if state := _hash(r, keys.message_status_by_id(message_id)):
                out.message_status_by_id[message_id] = state
        for profile in folded.conversation:
            explained.add(keys.conversation(profile))
            out.conversation[profile] = r.zrange(keys.conversation(profile), 0, -1)
        prefix = settings.redis.key_prefix
        found = {k for family in _REDIS_FAMILIES for k in r.scan_iter(f"{prefix}:{family}:*", count=1000)}
    finally:
        r.close()
    return out, sorted(found - explained)


_REDIS_MAPS = ("consent", "vendor_messages", "message_status", "message_status_by_id", "links")


def _check_redis(settings: Settings, folded: FoldedRedis, max_examples: int) -> list[Check]:
    stored, unexplained = read_redis(settings, folded)
    checks = []
    for name in _REDIS_MAPS:
        check = Check(f"redis {name}", max_examples=max_examples)
        want_map: dict[str, Any] = getattr(folded, name)
        got_map: dict[str, Any] = getattr(stored, name)
        check.checked = len(want_map)
        for key, want in want_map.items():
            got = got_map.get(key)
            if got is None:
                check.add("missing", key)
            elif got != want:
                if isinstance(want, dict):
                    fields = sorted(f for f in want.keys() | got.keys() if want.get(f) != got.get(f))
                    check.add("differing", f"{key}: {', '.join(fields)}")
                else:
                    check.add("differing", key)
        checks.append(check)
    for name in ("timeline", "conversation"):
        check = Check(f"redis {name}", max_examples=max_examples)
        want_lists: dict[str, list[Any]] = getattr(folded, name)
        got_lists: dict[str, list[Any]] = getattr(stored, name)
        for profile, want in want_lists.items():
            got = got_lists.get(profile, [])
            check.checked += len(want)
            _compare_lists(check, profile, want, got)
        checks.append(check)
    keys_check = Check("redis keys", checked=len(unexplained), max_examples=max_examples)
    for key in unexplained:
        keys_check.add("extra", key)
    checks.append(keys_check)
    return checks


def _compare_lists(check: Check, profile: str, want: list[Any], got: list[Any]) -> None:
    """One profile's timeline ((event id, entry) pairs) or conversation (entries), newest-N, in order."""
    def ident(item: Any) -> str:
        return str(item[0]) if isinstance(item, tuple) else str(item)

    wanted = {ident(i): i for i in want}
    stored = Counter(ident(i) for i in got)
    before = sum(check.counts.values())
    for key in wanted.keys() - stored.keys():
        check.add("missing", f"{profile}: {key[:120]}")
    for key, n in stored.items():
        if key not in wanted:
            check.add("extra", f"{profile}: {key[:120]}")
        elif n > 1:
            check.add("doubled", f"{profile}: {key[:120]}")
    for item in got:
        if ident(item) in wanted and item != wanted[ident(item)]:
            check.add("differing", f"{profile}: {ident(item)[:120]}")
    if sum(check.counts.values()) == before and got != want:
        check.add("differing", f"{profile}: order")


def raw_positions(settings: Settings, dedupe_keys: Iterable[str],
                  timeout_s: float = 60.0) -> dict[str, tuple[int, int]]:
    """Where the webhooks with these dedupe keys are on ``sms.webhooks.raw``: key → (partition, offset)
    of its first copy; a key that is not there is left out."""
    wanted = set(dedupe_keys)
    codec = AvroCodec()
    found: dict[str, tuple[int, int]] = {}
    for msg in read_topic(settings.kafka, settings.topics.raw, timeout_s):
        record = codec.decode(msg.value() or b"")
        if isinstance(record, RawWebhook) and record.dedupe_key in wanted:
            found.setdefault(record.dedupe_key, (msg.partition() or 0, msg.offset() or 0))
    return found


def missing_from_raw(settings: Settings, dedupe_keys: Iterable[str], timeout_s: float = 60.0) -> set[str]:
    """The acknowledged webhooks (by dedupe key) that are not on ``sms.webhooks.raw``."""
    wanted = set(dedupe_keys)
    return wanted - raw_positions(settings, wanted, timeout_s).keys()

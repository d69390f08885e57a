"""Each projection equals the in-process fold of its topic: after a mixed workload, after every event was
delivered twice, after a replay with a fresh group, and across a ClickHouse that refuses writes."""

from __future__ import annotations

import time

import pytest
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from config import Settings
from projections.clickhouse import ClickHouseSink
from projections.fold import unique_events
from projections.keys import RedisKeys
from projections.migrate import apply_migrations
from projections.verify import verify
from smsfold.workload import generate_events
from streams.codec import AvroCodec
from streams.events import ConsentChanged, Event
from streams.readback import read_topic
from tests.conftest import wait_until
from tests.integration.projection_helpers import (
    ch_rows,
    private_settings,
    produce,
    running,
    wait_folded,
)

pytestmark = pytest.mark.stack


def _workload() -> list[Event]:
    # Starting two days ago: links (90 days) are live, so the link map is checked with content.
    start = int(time.time() * 1000) - 2 * 86_400_000
    return list(generate_events(120, messages_per_profile=8, seed=11, start_ms=start))


def _assert_projections_equal_fold(settings: Settings, events: list[Event]) -> None:
    # The verifier folds the topic in-process and compares every read model with it, field by field.
    report = verify(settings)
    assert report.ok, report.summary()
    assert report.unique_events == len(unique_events(e.model_dump() for e in events))
    # Every read model was compared with content, not vacuously.
    checked = {c.name: c.checked for c in report.checks}
    assert all(checked[name] > 0 for name in (
        "clickhouse events", "clickhouse message_stats", "clickhouse consent_history",
        "clickhouse inbound_latency", "clickhouse attributed_conversions", "redis consent", "redis timeline",
        "redis links", "redis vendor_messages", "redis message_status")), checked


def _redecided(event: Event) -> Event:
    """The copy a decider emits when it decides a cause again after a crash or a rebalance: same id, a
    later time and, for a consent change, the version of another copy of its cause."""
    update: dict[str, int] = {"occurred_at": event.occurred_at + 1}
    if isinstance(event, ConsentChanged):
        update["version"] = event.version + 1
    return event.model_copy(update=update)


@pytest.mark.parametrize("deliveries", ["once", "every-event-twice", "every-event-twice-restamped"])
def test_projections_equal_the_fold(stack_settings: Settings, deliveries: str) -> None:
    # A small timeline cap so trimming happens (profiles have ~15 events).
    base = stack_settings.model_copy(update={"projector": stack_settings.projector.model_copy(
        update={"timeline_entries": 6})})
    settings = private_settings(base)
    events = _workload()
    stream = {"once": events, "every-event-twice": events + events[::-1],
              "every-event-twice-restamped": events + [_redecided(e) for e in events[::-1]]}[deliveries]
    total = produce(settings, stream)
    with running(settings, "clickhouse", "redis") as runners:
        wait_folded(runners, total)
    _assert_projections_equal_fold(settings, stream)


def test_replay_with_a_fresh_group_changes_nothing(stack_settings: Settings) -> None:
    settings = private_settings(stack_settings)
    events = _workload()[:1500]
    total = produce(settings, events)
    with running(settings, "clickhouse", "redis") as runners:
        wait_folded(runners, total)
    latency_sql = "SELECT event_id, latency_ms FROM inbound_latency FINAL ORDER BY event_id"
    latency_before = ch_rows(settings, latency_sql)
    # Replay: a new group prefix reads the topic from the start into the same stores.
    replay = settings.model_copy(update={"projector": settings.projector.model_copy(
        update={"group_prefix": settings.projector.group_prefix + "-replay"})})
    time.sleep(0.05)  # a later projected_at, so a replay that wrongly won would show
    with running(replay, "clickhouse", "redis") as runners:
        wait_folded(runners, total)
    _assert_projections_equal_fold(settings, events)
    assert ch_rows(settings, latency_sql) == latency_before


def test_clickhouse_refusing_writes_loses_and_doubles_nothing(stack_settings: Settings) -> None:
    # The database does not exist yet: every insert fails until it is migrated while the runner retries.
    settings = private_settings(stack_settings, migrate=False)
    events = _workload()[:800]
    total = produce(settings, events)
    with running(settings, "clickhouse") as (runner,):
        wait_until(lambda: runner.write_failures >= 3, 30, "three refused inserts")
        assert runner.folded == 0  # nothing committed while the store refuses the batch
        apply_migrations(settings.clickhouse)
        wait_folded([runner], total)
    rows = ch_rows(settings, "SELECT count(), uniqExact(event_id) FROM events")
    assert rows[0][1] == len(unique_events(e.model_dump() for e in events))


def test_poison_goes_to_the_dead_letters_once_and_the_projection_moves_on(stack_settings: Settings) -> None:
    settings = private_settings(stack_settings)
    events = _workload()[:50]
    total = produce(settings, [*events[:25], (b"k1", b"not avro at all"), (b"k2", b"\xc3\x01" + b"\x00" * 8),
                               *events[25:]])
    with running(settings, "clickhouse", "redis") as runners:
        wait_folded(runners, total)
        assert [r.poison_records for r in runners] == [2, 2]
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": "dlq-probe",
                         "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(settings.topics.deadletter, 0, OFFSET_BEGINNING)])
    letters = []
    deadline = time.monotonic() + 20
    while len(letters) < 2 and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            letters.append((msg.key(), dict(msg.headers() or [])["reason"]))
    time.sleep(0.5)
    extra = consumer.poll(0.5)
    consumer.close()
    assert sorted(letters) == [(b"k1", b"not single-object Avro"), (b"k2", b"unknown schema fingerprint")]
    assert extra is None, "a poison record was dead-lettered twice (only the clickhouse projector does it)"
    assert ch_rows(settings, "SELECT count() FROM events FINAL")[0][0] == len(unique_events(
        e.model_dump() for e in events))


def test_a_thread_stop_mid_outage_commits_nothing(stack_settings: Settings) -> None:
    settings = private_settings(stack_settings, migrate=False)
    events = _workload()[:100]
    total = produce(settings, events)
    with running(settings, "clickhouse") as (runner,):
        wait_until(lambda: runner.write_failures >= 1, 30, "a refused insert")
    assert runner.folded == 0
    # The uncommitted batch comes back to the next runner of the same group once ClickHouse is there.
    apply_migrations(settings.clickhouse)
    with running(settings, "clickhouse") as (again,):
        wait_folded([again], total)
    assert ch_rows(settings, "SELECT uniqExact(event_id) FROM events")[0][0] == len(unique_events(
        e.model_dump() for e in events))


def test_the_verifier_names_what_is_missing_doubled_differing_or_extra(stack_settings: Settings) -> None:
    settings = private_settings(stack_settings)
    events = _workload()[:300]
    total = produce(settings, events)
    with running(settings, "clickhouse", "redis") as runners:
        wait_folded(runners, total)
    assert verify(settings).ok
    # Tamper with each store the way a lost, doubled or wrong write would look.
    r = redis.Redis.from_url(settings.redis.url, decode_responses=True)
    keys = RedisKeys(settings.redis.key_prefix)
    consent = next(e for e in events if e.event_type == "ConsentChanged")
    r.hset(keys.consent(consent.profile_key), "status", "tampered")
    inbound = next(e for e in events if e.event_type == "InboundReceived")
    r.zrem(keys.timeline(inbound.profile_key), inbound.event_id)
    r.hdel(keys.timeline_entries(inbound.profile_key), inbound.event_id)
    r.close()
    sent = next(e for e in events if e.event_type == "MessageSent")
    stranger = sent.model_copy(update={"event_id": "not-in-the-log"})
    ClickHouseSink(settings.clickhouse).write([stranger.model_dump()])
    report = verify(settings)
    found = {c.name: dict(c.counts) for c in report.checks if not c.ok}
    assert found["redis consent"] == {"differing": 1}
    assert found["redis timeline"] == {"missing": 1}
    assert found["clickhouse events"] == {"extra": 1}
    # The stranger is a MessageSent of a known message: its stats count one send too many.
    assert found["clickhouse message_stats"] == {"doubled": 1}
    assert report.total("missing") == 1 and not report.ok


def test_a_record_the_store_refuses_for_good_is_dead_lettered_and_the_projection_moves_on(
    stack_settings: Settings,
) -> None:
    settings = private_settings(stack_settings)
    events = _workload()[:400]
    consent = [e for e in events if e.event_type == "ConsentChanged"]
    victim = consent[0].profile_key
    refused = [e for e in consent if e.profile_key == victim]
    # Something else wrote a string where the consent hash goes: every consent write there is WRONGTYPE.
    r = redis.Redis.from_url(settings.redis.url)
    r.set(RedisKeys(settings.redis.key_prefix).consent(victim), "not a hash")
    r.close()
    total = produce(settings, events)
    with running(settings, "clickhouse", "redis") as (ch, rd):
        wait_folded([ch, rd], total)
    # Only the refused records are set aside, by the projection that could not write them.
    assert (ch.refused_records, rd.refused_records) == (0, len(refused))
    assert rd.folded == total - len(refused)
    letters = [m for m in read_topic(settings.kafka, settings.topics.deadletter)]
    assert sorted(m.value() for m in letters) == sorted(AvroCodec().encode(e) for e in refused)
    headers = [dict(m.headers() or []) for m in letters]
    assert {h["projector"] for h in headers} == {b"redis"}
    assert all(b"WRONGTYPE" in h["reason"] for h in headers), headers[0]
    # Everything else is exact: the verifier finds the victim's consent key not as folded, and the
    # refused records (set aside whole by the Redis projection) absent from its timeline.
    report = verify(settings)
    assert {c.name: dict(c.counts) for c in report.checks if not c.ok} == {
        "redis consent": {"differing": 1}, "redis timeline": {"missing": len(refused)}}

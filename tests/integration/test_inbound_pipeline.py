"""The inbound pipeline end to end on the real stack: vendor webhooks → normalizer → profile decider →
read models, for every vendor; dead letters; one number racing STOP/START; conversation; metrics.

START/STOP/HELP goes through the gateway for every vendor, signed as the vendor signs; the malformed
and racing cases produce onto ``sms.webhooks.raw`` directly, the contract the gateway writes to.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from clickhouse_driver import Client
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from agents.normalize import Normalizer
from agents.profile import ProfileState, decide
from config import Settings, load_companies
from projections.clickhouse import clickhouse_client
from projections.conversation import RedisConversationStore
from projections.latency import latency_by_message_type
from projections.message_status import RedisMessageStatusStore
from projections.redis_store import RedisSink
from smsfold.webhooks import (
    SignedRequest,
    bandwidth_request,
    dev_telnyx_seed,
    new_twilio_sid,
    telnyx_event,
    telnyx_request,
    twilio_inbound,
)
from smsfold.webhooks import bandwidth_event as signed_bandwidth_event
from streams.codec import AvroCodec
from streams.events import ConsentChanged, ConsentChangeRequested, Event, InboundReceived, RawWebhook
from streams.producer import producer_config
from tests.conftest import stack_ports, wait_until
from tests.payloads import bandwidth_event, raw, telnyx_inbound, twilio_status_form

pytestmark = pytest.mark.stack

ACME_NUMBER = "+14155550100"
CODEC = AvroCodec()


def _phone() -> str:
    return f"+1415{random.randrange(2_000_000, 9_999_999):07d}"


@pytest.fixture(scope="module")
def ch(stack_settings: Settings) -> Iterator[Client]:
    client = clickhouse_client(stack_settings.clickhouse)
    yield client
    client.disconnect()


@pytest.fixture(scope="module")
def raw_producer(stack_settings: Settings) -> Iterator[Producer]:
    producer = Producer(producer_config(stack_settings.kafka))
    yield producer
    producer.flush(10)


def _produce_raw(producer: Producer, settings: Settings, key: str, records: list[RawWebhook]) -> None:
    for record in records:
        producer.produce(settings.topics.raw, key=key.encode(), value=CODEC.encode(record))
        producer.poll(0)
    assert producer.flush(15) == 0, "raw records not acknowledged"


def _post(base: str, req: SignedRequest) -> int:
    request = urllib.request.Request(base + req.path, data=req.body, headers=req.headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _rows(ch: Client, profile: str, event_type: str) -> list[dict[str, Any]]:
    got = ch.execute(
        "SELECT payload FROM events FINAL WHERE profile_key = %(p)s AND event_type = %(t)s "
        "ORDER BY occurred_at, event_id", {"p": profile, "t": event_type})
    return [json.loads(p) for (p,) in got]


def _counts(ch: Client, profile: str) -> dict[str, int]:
    got = ch.execute("SELECT event_type, count() FROM events FINAL WHERE profile_key = %(p)s "
                     "GROUP BY event_type", {"p": profile})
    return {str(t): int(n) for t, n in got}


def _bandwidth_inbound(sender: str, body: str, message_id: str, at: str, now: int) -> RawWebhook:
    event = bandwidth_event("message-received", message_id=message_id, sender=sender, to=ACME_NUMBER,
                            text=body, time=at)
    return raw("bandwidth", "inbound", event, now)


def _send_start_stop_help(vendor: str, settings: Settings, base: str, sender: str) -> None:
    """START, STOP, HELP from one number, through the gateway, signed as each vendor signs."""
    bodies = ("START", "STOP", "HELP")
    acme = load_companies(settings.companies_file).get("acme")
    assert acme is not None and acme.twilio is not None and acme.bandwidth is not None
    if vendor == "twilio":
        token = acme.twilio.auth_tokens[0].get_secret_value()
        for body in bodies:
            req = twilio_inbound(settings.gateway.public_base_url, token, sender=sender, to=ACME_NUMBER,
                                 body=body, account_sid=acme.twilio.account_sid, message_sid=new_twilio_sid())
            assert _post(base, req) == 200
    elif vendor == "telnyx":
        for body in bodies:
            event = telnyx_event("message.received", sender=sender, to=ACME_NUMBER, text=body)
            assert _post(base, telnyx_request(dev_telnyx_seed("acme"), event)) == 200
    else:
        # One Bandwidth callback carrying all three messages: the gateway records each element in order.
        events = [signed_bandwidth_event("message-received", sender=sender, to=ACME_NUMBER, text=body,
                                  application_id=acme.bandwidth.application_id) for body in bodies]
        credential = acme.bandwidth.credentials[0]
        req = bandwidth_request(credential.username, credential.password.get_secret_value(), events)
        assert _post(base, req) == 200


@pytest.mark.parametrize("vendor", ["twilio", "telnyx", "bandwidth"])
def test_start_stop_help_gives_unsubscribed_one_confirmation_and_one_help_reply(
    vendor: str, stack_settings: Settings, pipeline: str, raw_producer: Producer, ch: Client,
) -> None:
    sender = _phone()
    profile = f"acme:{sender}"
    _send_start_stop_help(vendor, stack_settings, pipeline, sender)

    # Redis: the consent read model ends unsubscribed after two changes.
    r = redis.Redis.from_url(stack_settings.redis.url)
    key = f"{stack_settings.redis.key_prefix}:consent:{profile}"
    state = wait_until(lambda: (h := r.hgetall(key)) and h.get(b"version") == b"2" and h, 60,
                       f"{vendor}: two consent changes in Redis")
    assert state[b"status"] == b"unsubscribed" and state[b"method"] == b"sms_keyword:STOP"

    # ClickHouse: three replies requested: the welcome, ONE stop confirmation, ONE help reply.
    replies = wait_until(lambda: (got := _rows(ch, profile, "SendRequested")) and len(got) >= 3 and got, 30,
                         f"{vendor}: three auto replies in ClickHouse")
    time.sleep(0.5)  # anything extra would have arrived by now
    replies = _rows(ch, profile, "SendRequested")
    assert len(replies) == 3
    assert all(p["kind"] == "auto_reply" and p["from_number"] == ACME_NUMBER for p in replies)
    assert sum("unsubscribed" in p["body"] for p in replies) == 1
    assert sum("Help at" in p["body"] for p in replies) == 1
    # Each classified as sent. (Their order is shown by the consent above, ending unsubscribed: the
    # normalizer's stage times cannot show it, three messages of one request share a millisecond.)
    inbound = _rows(ch, profile, "InboundReceived")
    assert sorted(p["message_type"] for p in inbound) == ["help", "subscribe", "unsubscribe"]
    assert all(p["vendor"] == vendor for p in inbound)


def test_malformed_payload_is_dead_lettered_and_the_next_good_one_processed(
    stack_settings: Settings, pipeline: str, raw_producer: Producer, ch: Client,
) -> None:
    sender = _phone()
    bad = raw("telnyx", "inbound", b'{"data": {"event_type": "message.received"')  # truncated JSON
    good = raw("telnyx", "inbound", telnyx_inbound(sender, ACME_NUMBER, "hello, is my order shipped?"))
    consumer = Consumer({"bootstrap.servers": stack_settings.kafka.bootstrap_servers,
                         "group.id": f"dlq-probe-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"})
    # Assigned, not subscribed: a group join takes ~25 s on Tansu with the client's default timeouts.
    topics = stack_settings.topics
    consumer.assign([TopicPartition(topics.deadletter, p, OFFSET_BEGINNING)
                     for p in range(topics.deadletter_partitions)])
    try:
        _produce_raw(raw_producer, stack_settings, sender, [bad, good])
        bad_bytes = CODEC.encode(bad)
        deadline, found = time.monotonic() + 60, None
        while found is None and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None and msg.value() == bad_bytes:
                found = msg
        assert found is not None, "the malformed record never reached the dead-letter topic"
        headers = dict(found.headers() or [])
        assert headers["reason"].startswith(b"telnyx/inbound: body is not JSON")
        assert headers["source_topic"] == stack_settings.topics.raw.encode()
        assert found.key() == sender.encode()
    finally:
        consumer.close()
    rows = wait_until(lambda: _rows(ch, f"acme:{sender}", "InboundReceived"), 30, "the good record after it")
    assert rows[0]["body"] == "hello, is my order shipped?"


def test_one_number_racing_a_thousand_alternating_stop_start_ends_as_the_in_order_fold(
    stack_settings: Settings, pipeline: str, raw_producer: Producer, ch: Client,
) -> None:
    sender = _phone()
    profile = f"acme:{sender}"
    now = int(time.time() * 1000)
    bodies = ["STOP" if i % 2 == 0 else "START" for i in range(1000)]
    records = [_bandwidth_inbound(sender, b, f"race-{sender}-{i}", "2025-11-28T18:20:16.000Z", now)
               for i, b in enumerate(bodies)]
    started = time.monotonic()
    _produce_raw(raw_producer, stack_settings, sender, records)  # as fast as the producer goes

    # The in-order fold of the same messages, in-process.
    expected: ProfileState | None = None
    companies = load_companies(stack_settings.companies_file)
    company, normalizer = companies.get("acme"), Normalizer(companies)
    expected_outputs: list[Event] = []
    for record in records:
        (event,) = normalizer.normalize(record).events
        expected, out = decide(expected, event, company)
        expected_outputs += out
    assert expected is not None

    r = redis.Redis.from_url(stack_settings.redis.url)
    key = f"{stack_settings.redis.key_prefix}:consent:{profile}"
    state = wait_until(
        lambda: (h := r.hgetall(key)) and int(h.get(b"version", 0)) == expected.consent.version and h,
        120, "the 1000th consent change in Redis")
    elapsed = time.monotonic() - started
    assert state[b"status"] == expected.consent.status.encode() == b"subscribed"
    counts = wait_until(lambda: (got := _counts(ch, profile)).get("SendRequested") == 1000 and got, 60,
                        "1000 replies in ClickHouse")
    inbound_side = {t: n for t, n in counts.items()
                    if t in ("InboundReceived", "ConsentChanged", "SendRequested")}
    assert inbound_side == {"InboundReceived": 1000, "ConsentChanged": 1000, "SendRequested": 1000}
    versions = [v for (v,) in ch.execute(
        "SELECT visitParamExtractUInt(payload, 'version') FROM events FINAL WHERE profile_key = %(p)s "
        "AND event_type = 'ConsentChanged' ORDER BY occurred_at", {"p": profile})]
    assert sorted(versions) == list(range(1, 1001))
    stop_confirmations = [p for p in _rows(ch, profile, "SendRequested") if "unsubscribed" in p["body"]]
    assert len(stop_confirmations) == 500
    print(f"\n1000 alternating STOP/START folded into Redis in {elapsed:.1f}s")


def _profile_log(settings: Settings, profile: str, done: Callable[[list[Event]], bool]) -> list[Event]:
    """The profile's events in its sms.events partition, in log order, read until ``done`` says so."""
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers,
                         "group.id": f"log-probe-{uuid.uuid4().hex}", "enable.auto.commit": False})
    consumer.assign([TopicPartition(settings.topics.events, p, OFFSET_BEGINNING)
                     for p in range(settings.topics.events_partitions)])
    events: list[Event] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.5):
                if msg.error() is None and msg.key() == profile.encode():
                    event = CODEC.decode(msg.value())
                    assert isinstance(event, Event)
                    events.append(event)
            if done(events):
                return events
        raise AssertionError(f"only {len(events)} events of {profile} in sms.events")
    finally:
        consumer.close()


def test_alternating_stop_start_raced_through_the_gateway_ends_as_the_fold_of_the_log(
    stack_settings: Settings, pipeline: str, ch: Client,
) -> None:
    # 400 signed Twilio webhooks from one number, 16 at a time: the order they reach Kafka is up to
    # the race; whatever it is, the read models must equal the in-order fold of the log.
    sender, n = _phone(), 400
    profile = f"acme:{sender}"
    acme = load_companies(stack_settings.companies_file).get("acme")
    assert acme is not None and acme.twilio is not None
    token = acme.twilio.auth_tokens[0].get_secret_value()
    requests = [twilio_inbound(stack_settings.gateway.public_base_url, token, sender=sender, to=ACME_NUMBER,
                               body="STOP" if i % 2 == 0 else "START", account_sid=acme.twilio.account_sid)
                for i in range(n)]
    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(lambda req: _post(pipeline, req), requests)) == {200}

    log = _profile_log(stack_settings, profile,
                       lambda got: sum(isinstance(e, InboundReceived) for e in got) >= n)
    expected: ProfileState | None = None
    for event in log:
        if isinstance(event, InboundReceived):
            expected, _ = decide(expected, event, acme)
    assert expected is not None
    r = redis.Redis.from_url(stack_settings.redis.url)
    key = f"{stack_settings.redis.key_prefix}:consent:{profile}"
    state = wait_until(
        lambda: (h := r.hgetall(key)) and int(h.get(b"version", 0)) >= expected.consent.version and h,
        60, "the last consent change in Redis")
    assert state[b"status"] == expected.consent.status.encode()
    assert int(state[b"version"]) == expected.consent.version
    # The decider's own outputs in the log are exactly the fold's, in the same order.
    log = _profile_log(stack_settings, profile, lambda got: sum(
        isinstance(e, ConsentChanged) for e in got) >= expected.consent.version)
    changes = [e for e in log if isinstance(e, ConsentChanged)]
    assert [c.version for c in changes] == list(range(1, expected.consent.version + 1))
    print(f"\n{n} raced webhooks reached the log in an order with {len(changes)} consent changes")


def test_unrecognized_messages_are_kept_as_the_conversation_and_reactions_are_not(
    stack_settings: Settings, pipeline: str, raw_producer: Producer,
) -> None:
    sender = _phone()
    body = "Hi! My order #1234 arrived damaged 😞 — can someone call me?\nThanks, Pat"
    now = int(time.time() * 1000)
    _produce_raw(raw_producer, stack_settings, sender, [
        raw("telnyx", "inbound", telnyx_inbound(sender, ACME_NUMBER, body, media=["https://m.example/1.jpg"]),
            now),
        raw("telnyx", "inbound", telnyx_inbound(sender, ACME_NUMBER, "Loved “Your order shipped”"), now),
        raw("telnyx", "inbound", telnyx_inbound(sender, ACME_NUMBER, "HELP"), now),
    ])

    async def read() -> list[Any]:
        client = aioredis.Redis.from_url(stack_settings.redis.url)
        try:
            return list(await RedisConversationStore(client, stack_settings.redis).messages(f"acme:{sender}"))
        finally:
            await client.aclose()

    messages = wait_until(lambda: asyncio.run(read()), 60, "the conversation message in Redis")
    time.sleep(0.5)
    messages = asyncio.run(read())
    assert [m.body for m in messages] == [body]
    assert messages[0].media_urls == ("https://m.example/1.jpg",) and messages[0].vendor == "telnyx"
    assert json.loads(json.dumps(messages[0].to_json()))["body"] == body


def test_worker_exposes_stage_metrics_per_message_type(
    stack_settings: Settings, pipeline: str, raw_producer: Producer,
) -> None:
    url = f"http://127.0.0.1:{stack_ports()['worker_metrics']}/metrics"
    sender = _phone()
    stop = raw("telnyx", "inbound", telnyx_inbound(sender, ACME_NUMBER, "STOP"), int(time.time() * 1000))
    _produce_raw(raw_producer, stack_settings, sender, [stop])

    def scrape() -> str:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return str(resp.read().decode())
        except OSError:
            return ""

    # Wait until the projectors' stages have seen it too.
    text = wait_until(lambda: (t := scrape()) and 'stage="timeline"' in t and t, 60, "worker metrics")
    for stage in ("validation", "hydration", "normalization", "classification", "consent_update",
                  "event_log", "timeline"):
        assert f'smsfold_stage_records_total{{outcome="ok",stage="{stage}"}}' in text, stage
    assert 'smsfold_stage_latency_seconds_count{message_type="unsubscribe",stage="consent_update"}' in text


def test_status_callbacks_fold_into_profile_keyed_events(
    stack_settings: Settings, pipeline: str, raw_producer: Producer, ch: Client,
) -> None:
    recipient = _phone()
    message_id = f"bw-out-{uuid.uuid4().hex}"
    now = int(time.time() * 1000)
    events = [
        bandwidth_event("message-sending", message_id=message_id, sender=ACME_NUMBER, to=recipient),
        bandwidth_event("message-delivered", message_id=message_id, sender=ACME_NUMBER, to=recipient),
        # Bandwidth retries: the same callback again.
        bandwidth_event("message-delivered", message_id=message_id, sender=ACME_NUMBER, to=recipient),
    ]
    records = [raw("bandwidth", "status", e, now) for e in events]
    _produce_raw(raw_producer, stack_settings, message_id, records)
    profile = f"acme:{recipient}"
    counts = wait_until(lambda: (c := _counts(ch, profile)).get("MessageDelivered") and c, 60,
                        "the delivery in ClickHouse")
    assert counts == {"MessageStatusUpdated": 1, "MessageDelivered": 1}
    (delivered,) = _rows(ch, profile, "MessageDelivered")
    assert delivered["vendor_message_id"] == message_id

    # A late "sending" callback arrives after the delivery: the status read model stays delivered.
    late = bandwidth_event("message-sending", message_id=message_id, sender=ACME_NUMBER, to=recipient,
                           time="2025-11-28T18:20:17.000Z")
    # Behind it, on the same raw key and profile (so in order), a marker message's delivery.
    marker_id = f"bw-marker-{uuid.uuid4().hex}"
    marker = bandwidth_event("message-delivered", message_id=marker_id, sender=ACME_NUMBER, to=recipient)
    _produce_raw(raw_producer, stack_settings, message_id,
                 [raw("bandwidth", "status", late, now), raw("bandwidth", "status", marker, now)])
    r = redis.Redis.from_url(stack_settings.redis.url)
    prefix = f"{stack_settings.redis.key_prefix}:message-status:bandwidth"
    wait_until(lambda: r.hget(f"{prefix}:{marker_id}", "status") == b"delivered", 30, "the marker in Redis")
    assert r.hget(f"{prefix}:{message_id}", "status") == b"delivered"
    assert r.hget(f"{prefix}:{message_id}", "profile_key") == profile.encode()


async def test_message_status_folds_by_rank_not_arrival(stack_settings: Settings) -> None:
    client = aioredis.Redis.from_url(stack_settings.redis.url)
    sink = RedisSink(stack_settings.redis, timeline_entries=200)
    try:
        store = RedisMessageStatusStore(client, stack_settings.redis)
        sid = new_twilio_sid()
        normalizer = Normalizer(load_companies(stack_settings.companies_file))

        def status(word: str, error: str = "") -> dict[str, Any]:
            body = twilio_status_form(sid, word, ACME_NUMBER, "+14155551234", error)
            return normalizer.normalize(raw("twilio", "status", body)).events[0].model_dump()

        # Part 1 failed, then (late, out of order) "sent" and part 2's "delivered": failure stands.
        sink.write([status("undelivered", "30003")])
        sink.write([status("sent"), status("delivered"), status("undelivered", "30003")])
        got = await store.get("twilio", sid)
        assert got["status"] == "failed"
        assert (got["error_code"], got["failure_category"]) == ("30003", "unreachable")
        # A fresh message moves forward step by step, whatever order the batch holds.
        sid = new_twilio_sid()
        sink.write([status("sent"), status("queued")])
        assert (await store.get("twilio", sid))["status"] == "sent"
        sink.write([status("delivered"), status("queued")])
        assert (await store.get("twilio", sid))["status"] == "delivered"
    finally:
        sink.close()
        await client.aclose()


def test_latency_by_message_type_is_projected_from_the_event_log(
    stack_settings: Settings, pipeline: str, raw_producer: Producer, ch: Client,
) -> None:
    sender, started = _phone(), int(time.time() * 1000)
    _send_start_stop_help("bandwidth", stack_settings, pipeline, sender)
    wait_until(lambda: len(_rows(ch, f"acme:{sender}", "InboundReceived")) == 3, 30, "three inbound rows")
    rows = latency_by_message_type(ch, "acme", since_ms=started)
    by_key = {(r.message_type, r.stage): r for r in rows}
    print("\n" + "\n".join(f"{r.message_type:12} {r.stage:10} p50 {r.p50_ms:.0f} ms, max {r.max_ms} ms"
                           for r in rows))
    for message_type in ("subscribe", "unsubscribe", "help"):
        normalized, logged = by_key[(message_type, "normalized")], by_key[(message_type, "event_log")]
        assert normalized.messages >= 1 and logged.messages >= 1
        # Normalizing finishes before the event log row is written, and neither takes minutes here.
        assert 0 <= normalized.p50_ms <= logged.p50_ms < 60_000


async def test_conversation_appends_each_message_once(stack_settings: Settings) -> None:
    client = aioredis.Redis.from_url(stack_settings.redis.url)
    sink = RedisSink(stack_settings.redis, timeline_entries=200)
    try:
        store = RedisConversationStore(client, stack_settings.redis)
        sender = _phone()
        normalizer = Normalizer(load_companies(stack_settings.companies_file))
        events = [normalizer.normalize(raw("telnyx", "inbound", telnyx_inbound(sender, ACME_NUMBER, text)))
                  .events[0].model_dump() for text in ("first", "STOP", "second", "third")]
        sink.write(events)
        sink.write(events)  # redelivered: nothing new
        # STOP is a keyword, not conversation; each message once, oldest first.
        assert [m.body for m in await store.messages(f"acme:{sender}")] == ["first", "second", "third"]
        assert [m.body for m in await store.messages(f"acme:{sender}", limit=1)] == ["third"]
        with pytest.raises(ValueError, match="limit must be positive"):
            await store.messages(f"acme:{sender}", limit=0)
    finally:
        sink.close()
        await client.aclose()


def test_a_form_signup_request_goes_pending_then_yes_confirms(
    stack_settings: Settings, pipeline: str, raw_producer: Producer, ch: Client,
) -> None:
    # Issue 6's API will write ConsentChangeRequested onto sms.events; here it is produced directly.
    sender = _phone()
    profile = f"globex:{sender}"
    now = int(time.time() * 1000)
    requested = ConsentChangeRequested(
        event_id=str(uuid.uuid4()), company_id="globex", profile_key=profile, occurred_at=now,
        received_at=now, status="subscribed", source="form", method="form:footer",
    )
    raw_producer.produce(stack_settings.topics.events, key=profile.encode(), value=CODEC.encode(requested))
    assert raw_producer.flush(15) == 0
    r = redis.Redis.from_url(stack_settings.redis.url)
    key = f"{stack_settings.redis.key_prefix}:consent:{profile}"
    wait_until(lambda: r.hget(key, "status") == b"pending", 60, "pending consent in Redis")
    # The profile confirms by texting Y to the company's number (Bandwidth this time).
    confirm = bandwidth_event("message-received", message_id=uuid.uuid4().hex, sender=sender,
                              to="+13125550199", text="Y")
    _produce_raw(raw_producer, stack_settings, sender, [raw("bandwidth", "inbound", confirm, now)])
    state = wait_until(lambda: (h := r.hgetall(key)) and h.get(b"status") == b"subscribed" and h, 60,
                       "subscribed after YES")
    assert (state[b"source"], state[b"method"], state[b"version"]) == (b"form", b"double_opt_in:Y", b"2")
    replies = wait_until(lambda: (got := _rows(ch, profile, "SendRequested")) and len(got) == 2 and got, 30,
                         "the confirmation request and the welcome")
    assert {p["from_number"] for p in replies} == {"+13125550199"}
    assert any("Reply YES to confirm" in p["body"] for p in replies)
